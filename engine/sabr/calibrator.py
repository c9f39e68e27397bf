"""Batched, warm-startable SABR calibration of FX smiles (the Daily SABR playbook).

The problem (weighted vol residuals of :func:`engine.sabr.hagan.hagan_vol`) is kept apart from
the solver (any callable of :mod:`engine.optimize`'s signature, or a name of its ``SOLVERS``),
which is vmapped over smiles inside one ``jit``. Shapes are padded to power-of-two buckets, so
a stream of varying batches compiles a handful of programs once and never again.

>>> cal = SABRCalibrator(beta=0.5)
>>> res = cal.calibrate({"forward": 1.1, "maturities": 0.5, "strikes": [1.0, 1.05, 1.1, 1.15, 1.2],
...                      "target_vols": [0.105, 0.098, 0.095, 0.097, 0.102]})
>>> bool(res.converged), res.gate_verdicts()["rmse"]
(True, 'pass')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from itertools import chain, pairwise
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from engine.arbitrage import strike_arbitrage
from engine.buckets import bucket, chunks
from engine.core import given, identifiability_at_solution, settle
from engine.diagnostics import IdentifiabilityMetrics, identifiability_at
from engine.gates import FELLER, Gate, not_applicable, threshold_gate
from engine.market import Smile, smiles_of
from engine.optimize import Solver, SolverOutput, Status, solve_batch
from engine.options import Batching, Solving, Varied
from engine.parameters import Free
from engine.programs import kept
from engine.result import CalibrationResult
from engine.sabr.hagan import (
    hagan_vol,
    hagan_vol_from_terms,
    moneyness_terms,
    strike_terms,
)
from engine.sabr.market import SmileBatch, pack_smiles
from engine.sabr.model import PARAM_NAMES, default_specs
from engine.sabr.problem import initial_guess, model_vols
from engine.sensitivity import implicit_sensitivities

__all__ = ["PARAM_NAMES", "SABRCalibrator", "SABRThresholds", "batch_arguments"]

_ARBITRAGE_GRID = 41  # strikes checked: quoted range plus wings, ~6 per ATM std dev


@dataclass(frozen=True)
class SABRThresholds:
    """Playbook thresholds. ``condition`` bounds the scaled-Jacobian condition number."""

    rmse: float = 0.005  # 50 bp of vol
    stability: float = 0.20  # relative change vs prior parameters
    condition: float = 5000.0  # realistic FX smiles: median ~10, 99th percentile ~740
    arbitrage: float = 1e-10  # worst violation of -1 <= dC/dK <= 0, q(K) >= 0 (x F)
    arbitrage_wing: float = 1.0  # grid extends this many ATM std devs beyond the quotes


@dataclass(frozen=True)
class _Config:
    """Everything static about a fit: the jit cache key (with the padded shapes)."""

    free: Free
    stability_floor: tuple[float, ...]
    solver: Solver
    max_steps: int
    tol: float
    record_history: bool
    sensitivities: bool
    thresholds: SABRThresholds


def _residuals(u, args, cfg: _Config):
    theta_fixed, smile, terms = args
    vols, sqrt_w = smile[3:]
    model = model_vols(cfg.free.fill(u, theta_fixed), smile, terms)
    return jnp.where(sqrt_w > 0, sqrt_w * (model - vols), 0.0)


def _prepare_one(cfg: _Config, forward, expiry, strikes, vols, weights, mask, theta0):
    """Starting point (unconstrained) and solver arguments of one smile."""
    sqrt_w = jnp.sqrt(jnp.where(mask, weights, 0.0))
    smile = (forward, expiry, strikes, vols, sqrt_w)
    theta0 = initial_guess(theta0, smile, mask)
    u0 = cfg.free.values(theta0)
    beta_fixed = 1 not in cfg.free.index
    terms = strike_terms(strikes, forward, theta0[1]) if beta_fixed else None
    return u0, (theta0, smile, terms)


def _evaluate_one(cfg: _Config, out: SolverOutput, solver_args, weights, mask):
    """Parameters, fit quality and an honest status from one smile's solver output."""
    theta0, smile, terms = solver_args
    vols = smile[3]
    theta = cfg.free.fill(out.x, theta0)
    model = model_vols(theta, smile, terms)
    errors = jnp.where(mask, model - vols, jnp.nan)
    n_obs = jnp.sum(mask)
    sq = jnp.where(mask, (model - vols) ** 2, 0.0)
    rmse = jnp.sqrt(jnp.sum(sq) / n_obs)
    w = jnp.where(mask, weights, 0.0)
    status = settle(cfg.free, theta, out.status, jnp.isfinite(rmse))
    return {
        "theta": theta,
        "status": status,
        "converged": status == Status.CONVERGED,
        "iterations": out.iterations,
        "loss": out.cost,
        "loss_history": out.loss_history,
        "rmse": rmse,
        "residuals": errors,
        "weighted_rmse": jnp.sqrt(jnp.sum(w * sq) / jnp.sum(w)),
        "max_abs_error": jnp.sqrt(jnp.max(sq)),
    }


def _check_one(cfg: _Config, out: SolverOutput, solver_args, theta, mask, prior):
    """Gate figures and diagnostics of one fitted smile (identifiability, arbitrage, drift)."""
    theta0, smile, terms = solver_args
    forward, expiry, strikes, vols, sqrt_w = smile
    w = sqrt_w * sqrt_w
    free_theta, free_prior = cfg.free.cells(theta), cfg.free.cells(prior)
    ident = identifiability_at_solution(
        cfg.free, out, partial(_residuals, cfg=cfg), solver_args, theta0, jnp.sum(mask)
    )

    log_k = jnp.log(strikes / forward)
    atm_std = theta[0] * forward ** (theta[1] - 1.0) * jnp.sqrt(expiry)
    wing = cfg.thresholds.arbitrage_wing * atm_std
    lo = jnp.min(jnp.where(mask, log_k, jnp.inf)) - wing
    hi = jnp.max(jnp.where(mask, log_k, -jnp.inf)) + wing

    def total_variance(k):
        terms = moneyness_terms(k, forward, theta[1])
        return hagan_vol_from_terms(terms, expiry, *theta) ** 2 * expiry

    arbitrage, arbitrage_k = strike_arbitrage(total_variance, jnp.linspace(lo, hi, _ARBITRAGE_GRID))
    arbitrage_strike = forward * jnp.exp(arbitrage_k)

    floor = jnp.array(cfg.stability_floor)
    change = jnp.abs(free_theta - free_prior) / jnp.maximum(jnp.abs(free_prior), floor)
    checks = {
        "condition_number": ident.condition_number,
        "std_errors": ident.std_errors,
        "arbitrage": arbitrage,
        "arbitrage_strike": arbitrage_strike,
        "stability": jnp.max(change),
        "stability_applicable": jnp.all(jnp.isfinite(free_prior)),
    }
    if cfg.sensitivities:
        checks["sensitivities"] = implicit_sensitivities(
            lambda th: model_vols(cfg.free.place(th, theta), smile, terms), free_theta, vols, w
        )
    return checks


@kept
def _cold_starts(forward, expiry, strikes, vols, weights, mask, theta0):
    def one(forward, expiry, strikes, vols, weights, mask, theta0):
        sqrt_w = jnp.sqrt(jnp.where(mask, weights, 0.0))
        return initial_guess(theta0, (forward, expiry, strikes, vols, sqrt_w), mask)

    return jax.vmap(one)(forward, expiry, strikes, vols, weights, mask, theta0)


@partial(jax.jit, static_argnums=0)
def _identifiability(cfg: _Config, forward, expiry, strikes, vols, weights, mask, theta):
    """Identifiability of the free parameters at ``theta`` (B, 4), per smile."""

    def one(forward, expiry, strikes, vols, weights, mask, theta):
        sqrt_w = jnp.sqrt(jnp.where(mask, weights, 0.0))
        smile = (forward, expiry, strikes, vols, sqrt_w)

        def weighted(th):
            return sqrt_w * (model_vols(cfg.free.place(th, theta), smile) - vols)

        scales = cfg.free.scales(theta)
        return identifiability_at(weighted, cfg.free.cells(theta), scales, jnp.sum(mask))

    return jax.vmap(one)(forward, expiry, strikes, vols, weights, mask, theta)


@partial(kept, static_argnames=("cfg", "checks"))
def _calibrate_batch(
    cfg: _Config, checks: bool, forward, expiry, strikes, vols, weights, mask, theta0, prior
):
    """Fit (and, with ``checks``, gate) a padded batch: one compiled program per shape."""
    smiles = (forward, expiry, strikes, vols, weights, mask)
    u0, solver_args = jax.vmap(partial(_prepare_one, cfg))(*smiles, theta0)
    out = solve_batch(
        cfg.solver,
        partial(_residuals, cfg=cfg),
        u0,
        solver_args,
        max_steps=cfg.max_steps,
        tol=cfg.tol,
        record_history=cfg.record_history,
    )
    result = jax.vmap(partial(_evaluate_one, cfg))(out, solver_args, weights, mask)
    if checks:
        result.update(
            jax.vmap(partial(_check_one, cfg))(out, solver_args, result["theta"], mask, prior)
        )
    return result


class SABRCalibrator(Varied):
    """SABR calibrator with the playbook API.

    ``beta=None`` frees beta; a number fixes it (per smile in :meth:`calibrate_batch` via its
    ``beta`` argument). ``parameter_specs[name].init`` sets cold starts (``None``, the default
    for alpha, rho and nu, derives them from the smile's level, skew and curvature); a free beta
    starts cold from each of ``beta_starts`` and keeps the best. ``optimizer`` is ``"lm"``
    (default, fastest in ``bench/sabr.py``), ``"optimistix"``, ``"lbfgs"``, ``"adam"``, or any
    solver callable of :mod:`engine.optimize`'s signature. Batches are padded to
    ``min_batch * batch_growth**k`` smiles and split above ``max_batch``, so a stream of
    varying batches compiles a handful of shapes once. The options come in frozen groups
    (:mod:`engine.options`): ``solving`` (optimizer, max_steps, tol), ``batching`` and
    ``thresholds``; :meth:`replace` varies them.
    """

    GROUPS: ClassVar[dict[str, type]] = {"solving": Solving, "batching": Batching}
    solving: Solving
    batching: Batching

    def __init__(
        self,
        beta: float | None = 0.5,
        *,
        max_steps: int = 500,
        tol: float = 1e-8,
        optimizer: str | Solver = "lm",
        thresholds: SABRThresholds | None = None,
        max_batch: int = 4096,
        min_batch: int = 1,
        batch_growth: int = 2,
        beta_starts: tuple[float, ...] | None = None,
    ) -> None:
        self._keep(locals())  # the options, as given: replace() varies them; the groups
        self.parameter_specs = default_specs(beta)
        self.thresholds = thresholds or SABRThresholds()
        self._beta_starts = beta_starts

    @property
    def beta_starts(self) -> tuple[float, ...]:
        """Cold starts of a free beta: as given, else beta's ``init`` and 0.4 either side."""
        if self._beta_starts is not None:
            return self._beta_starts
        init = self.parameter_specs["beta"].init
        return tuple(sorted({init, max(init - 0.4, 0.0), min(init + 0.4, 1.0)}))

    @property
    def free_params(self) -> tuple[str, ...]:
        return tuple(n for n in PARAM_NAMES if not self.parameter_specs[n].fixed)

    def _config(self, record_history: bool, sensitivities: bool) -> _Config:
        free = Free.of(self.parameter_specs, PARAM_NAMES)
        return _Config(
            free=free,
            stability_floor=tuple(1e-12 if r else 0.1 for r in free.relative),
            solver=self.solving.solver,
            max_steps=self.solving.max_steps,
            tol=self.solving.tol,
            record_history=record_history,
            sensitivities=sensitivities,
            thresholds=self.thresholds,
        )

    def _starts(self, values: np.ndarray, beta=None) -> np.ndarray:
        """``values`` (B, 4) with its NaNs filled from the specs' inits (NaN for those derived
        from the smile), beta set where ``beta`` gives per-smile values."""
        inits = np.array([self.parameter_specs[n].init for n in PARAM_NAMES], np.float64)
        out = np.where(np.isnan(values), inits, values)
        if beta is not None:
            beta = np.asarray(beta, np.float64)
            if not np.all((beta >= 0) & (beta <= 1)):
                raise ValueError("beta must lie in [0, 1]")
            out[:, 1] = beta
        return out

    def calibrate_batch(
        self,
        forward,
        expiry,
        strikes,
        vols,
        weights=None,
        init: dict | None = None,
        *,
        beta=None,
        prior: dict | None = None,
        sensitivities: bool = False,
        history: bool = False,
        gates: bool = True,
    ) -> CalibrationResult:
        """Calibrate B smiles at once; every array of the result has a leading (B,) axis.

        ``strikes``/``vols`` are (B, N) or lists of per-smile arrays (ragged smiles are padded
        with zero weight). ``init`` maps parameter names to (B,) warm starts (NaN: cold start
        for that smile). ``beta`` gives per-smile fixed betas; ``prior`` the previous
        parameters for the stability gate; ``gates=False`` skips every gate but convergence
        (for inner loops such as cross-validation). Raises ``ValueError`` on invalid input.
        """
        cfg = self._config(history, sensitivities)
        batch = pack_smiles(forward, expiry, strikes, vols, weights, min_quotes=len(cfg.free.index))
        b = batch.strikes.shape[0]
        start = given(init, PARAM_NAMES, self.parameter_specs, b)
        warm = np.isfinite(start[:, list(cfg.free.index)]).all(axis=1)  # every free one given
        theta0 = self._starts(start, beta)
        prior_m = given(prior, PARAM_NAMES, self.parameter_specs, b)
        if "beta" in self.free_params:
            theta0 = self._explore_beta(batch, theta0, warm)
        result = self._result(
            self._run_chunks(cfg, batch, theta0, prior_m, gates), batch, warm, cfg
        )
        # a warm start that does not converge or reprice its smile (a jump, or a poor user
        # guess) is retried cold, and the better converged fit kept
        retry = np.flatnonzero(warm & ~(result.converged & (result.rmse < self.thresholds.rmse)))
        if retry.size:
            part = batch.rows(retry)
            starts = self._starts(np.full((retry.size, 4), np.nan), theta0[retry, 1])
            if "beta" in self.free_params:
                starts = self._explore_beta(part, starts, np.zeros(retry.size, bool))
            again = self._run_chunks(cfg, part, starts, prior_m[retry], gates)
            result = result.with_better(retry, self._result(again, part, warm[retry], cfg))
        return result

    def warmup(self, batch_sizes=(8, 32, 128, 512), widths=(8, 16)) -> None:
        """Compile the programs that batches of these sizes and strike widths run (cold and
        warm share them), so a stream never compiles once it takes traffic."""
        free = self.free_params
        for b in batch_sizes:
            for n in widths:
                strikes = np.exp(np.linspace(-0.2, 0.2, n))[None, :].repeat(b, 0)
                vols = 0.1 + 0.05 * np.log(strikes) ** 2
                nan = {name: np.full(b, np.nan) for name in free}
                self.calibrate_batch(np.ones(b), np.ones(b), strikes, vols, init=nan, prior=nan)

    def cold_starts(self, forward, expiry, strikes, vols, weights=None) -> dict[str, np.ndarray]:
        """The starting parameters a cold fit of these smiles uses (``parameter_specs`` inits,
        ``None`` ones derived from each smile): what a like-for-like peer starts from."""
        batch = pack_smiles(forward, expiry, strikes, vols, weights)
        theta0 = self._starts(np.full((len(batch.forward), 4), np.nan))
        theta = np.asarray(_cold_starts(*batch, theta0))
        return {name: theta[:, i] for i, name in enumerate(PARAM_NAMES)}

    def _run_chunks(self, cfg, batch: SmileBatch, theta0, prior, gates: bool) -> dict:
        """:meth:`_run` in chunks of at most ``max_batch`` smiles."""
        parts = [
            self._run(cfg, batch.rows(s), theta0[s], prior[s], gates)
            for s in chunks(len(theta0), self.batching.largest)
        ]
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def _explore_beta(self, batch: SmileBatch, theta0: np.ndarray, warm: np.ndarray):
        """Starts of a free-beta fit: every smile is fitted from each of :attr:`beta_starts`
        (alpha, rho and nu derived from the smile for each) and, if warm, from its own start;
        the best converged solution becomes its start. Beta trades off against rho and alpha
        along a valley: one start can settle at a bound on its far side (beta at 0 or 1)."""
        starts = np.asarray(self.beta_starts)
        b, s = len(theta0), starts.size + 1
        trial = np.repeat(self._starts(np.full((b, 4), np.nan))[:, None], s, 1)
        trial[:, :-1, 1] = starts
        trial[:, -1] = np.where(warm[:, None], theta0, trial[:, 0])
        trial = trial.reshape(b * s, -1)
        rows = np.repeat(np.arange(b), s)
        out = self._run_chunks(
            self._config(False, False), batch.rows(rows), trial, np.full_like(trial, np.nan), False
        )
        loss = np.where(out["converged"], out["loss"], np.inf).reshape(b, s)
        loss = np.where(np.isfinite(loss).any(1, keepdims=True), loss, out["loss"].reshape(b, s))
        best = np.argmin(np.nan_to_num(loss, nan=np.inf), axis=1)
        return out["theta"].reshape(b, s, -1)[np.arange(b), best]

    def _run(
        self, cfg: _Config, batch: SmileBatch, theta0: np.ndarray, prior: np.ndarray, gates: bool
    ) -> dict:
        b, n = batch.strikes.shape
        rows = self.batching.rows(b)
        padded = batch.pad(rows, bucket(n, 8))
        if rows > b:
            theta0 = np.concatenate([theta0, np.tile([0.2, 0.5, 0.0, 0.5], (rows - b, 1))])
            prior = np.concatenate([prior, np.full((rows - b, 4), np.nan)])
        out = _calibrate_batch(cfg, gates or cfg.sensitivities, *padded, theta0, prior)
        trimmed = {k: None if v is None else np.asarray(v)[:b] for k, v in out.items()}
        trimmed["residuals"] = trimmed["residuals"][:, :n]
        if "sensitivities" in trimmed:
            trimmed["sensitivities"] = trimmed["sensitivities"][:, :, :n]
        return trimmed

    def _result(
        self, out: dict, batch: SmileBatch, warm: np.ndarray, cfg: _Config
    ) -> CalibrationResult:
        th = self.thresholds
        shape = out["converged"].shape
        gates = {
            "converged": Gate(
                out["iterations"].astype(np.float64),
                float(cfg.max_steps),
                out["converged"],
                np.ones(shape, bool),
                "converged within max_steps",
            ),
            "rmse": threshold_gate(
                out["rmse"], th.rmse, f"RMSE of vols below {th.rmse * 1e4:g} bp"
            ),
        }
        diagnostics = {
            "weighted_rmse": out["weighted_rmse"],
            "max_abs_error": out["max_abs_error"],
            "forward": batch.forward,
            "expiry": batch.expiry,
            "n_options": np.count_nonzero(batch.weights > 0, axis=1),  # fitted (weight > 0)
            "cold_retry": np.zeros(shape, bool),  # a warm start that failed, fitted again cold
            "n_free": np.full(shape, len(self.free_params)),  # what information criteria count
        }
        if "condition_number" in out:  # the checks ran
            gates["stability"] = threshold_gate(
                out["stability"],
                th.stability,
                f"largest parameter change vs prior below {th.stability:.0%}",
                applicable=out["stability_applicable"],
            )
            gates["no_arbitrage"] = threshold_gate(
                out["arbitrage"],
                th.arbitrage,
                f"calls decreasing and convex in strike (q >= 0), to {th.arbitrage:g}",
            )
            gates["identifiability"] = threshold_gate(
                out["condition_number"],
                th.condition,
                f"scaled-Jacobian condition number below {th.condition:g}",
            )
            gates["feller"] = not_applicable(shape, f"{FELLER}: Heston only, n/a to SABR")
            for key in ("condition_number", "arbitrage", "arbitrage_strike", "stability"):
                diagnostics[key] = out[key]
            std = np.full((*shape, len(PARAM_NAMES)), np.nan)  # NaN for a held parameter
            std[:, list(cfg.free.index)] = out["std_errors"]
            diagnostics |= {f"std_error_{n}": std[:, i] for i, n in enumerate(PARAM_NAMES)}
        theta = out["theta"]
        return CalibrationResult(
            params={name: theta[:, i] for i, name in enumerate(PARAM_NAMES)},
            converged=out["converged"],
            status=out["status"],
            iterations=out["iterations"],
            loss=out["loss"],
            rmse=out["rmse"],
            residuals=out["residuals"],
            diagnostics=diagnostics,
            gates=gates,
            warm=warm,
            loss_history=out["loss_history"] if cfg.record_history else None,
            sensitivities=out.get("sensitivities"),
            sensitivity_params=self.free_params if cfg.sensitivities else (),
            model="sabr",
        )

    def calibrate(
        self,
        market_data: Smile | list[Smile] | dict,
        *,
        prior: dict | None = None,
        sensitivities: bool = False,
    ) -> CalibrationResult:
        """Calibrate the playbook's ``market_data`` dict.

        Keys: ``forward`` (scalar or per option; or an equity surface's ``spot`` with ``rate``
        and ``dividend``, continuously compounded), ``strikes``, ``maturities`` (scalar or per
        option), ``target_vols``, optional ``weights`` (array or ``"atm"``). One expiry gives a
        single-smile result; several give a batch result, one row per expiry in ascending
        order (``diagnostics["expiry"]``). Starts come from ``parameter_specs``.
        """
        smiles = smiles_of(market_data)
        result = self.calibrate_batch(
            *batch_arguments(smiles),
            prior=None if prior is None else {k: np.full(len(smiles), v) for k, v in prior.items()},
            sensitivities=sensitivities,
            history=True,
        )
        if len(smiles) == 1:
            result = result.smile(0)
            if result.loss_history is not None:
                result = result.trimmed_history()
        return result

    def calibrate_many(self, datasets: list[dict]) -> list[dict[str, np.ndarray]]:
        """Fit several ``market_data`` dicts in one batch (no gates): each one's parameters,
        one value per expiry. What cross-validation's folds need."""
        every = [smiles_of(d) for d in datasets]
        if any(isinstance(s.weights, str) for smiles in every for s in smiles):
            raise ValueError("calibrate_many needs numeric weights, not 'atm'")
        joined = [list(chain.from_iterable(p)) for p in zip(*(batch_arguments(s) for s in every))]
        result = self.calibrate_batch(*joined, gates=False)
        bounds = np.cumsum([0] + [len(s) for s in every])
        return [
            {name: np.asarray(v)[lo:hi] for name, v in result.params.items()}
            for lo, hi in pairwise(bounds)
        ]

    def errors(self, params: dict, market_data: Smile | list[Smile] | dict) -> np.ndarray:
        """Model minus market vol of every option of ``market_data`` (input order) under
        ``params`` (scalars, or one value per expiry in ascending order)."""
        smiles = smiles_of(market_data)
        values = _per_smile(params, len(smiles))
        rows = _rows(smiles)
        out = np.empty(max(int(r.max()) for r in rows) + 1)
        for i, (s, r) in enumerate(zip(smiles, rows)):
            model = hagan_vol(s.strikes, s.forward, s.expiry, *(values[n][i] for n in PARAM_NAMES))
            out[r] = np.asarray(model) - s.vols
        return out

    def vol_errors_of(
        self, result: CalibrationResult, market_data: Smile | list[Smile] | dict
    ) -> np.ndarray:
        """Model minus market vol of every option (input order) under a fit ``result``: the
        capability every calibrator names so (:func:`engine.selection.vol_errors`)."""
        return self.errors(result.params, market_data)

    def identifiability(
        self, params: dict, market_data: Smile | list[Smile] | dict
    ) -> IdentifiabilityMetrics:
        """Condition number, standard errors and correlations of the free parameters at
        ``params`` on ``market_data`` (one row per expiry for several), as a fit reports them."""
        smiles = smiles_of(market_data)
        batch = pack_smiles(*batch_arguments(smiles), min_quotes=len(self.free_params))
        theta = np.stack(list(_per_smile(params, len(smiles)).values()), -1)
        out = _identifiability(self._config(False, False), *batch, theta)
        metrics = IdentifiabilityMetrics(*map(np.asarray, out))
        return metrics if len(smiles) > 1 else IdentifiabilityMetrics(*(m[0] for m in metrics))


def _per_smile(params: dict, count: int) -> dict[str, np.ndarray]:
    """Each parameter (a scalar, or one value per smile) as one value per smile, in
    :data:`PARAM_NAMES` order."""
    return {n: np.broadcast_to(np.asarray(params[n], np.float64), (count,)) for n in PARAM_NAMES}


def batch_arguments(smiles: Sequence[Smile]) -> tuple:
    """:meth:`SABRCalibrator.calibrate_batch`'s forward, expiry, strikes, vols and weights of ``smiles``: the
    weights ``"atm"`` when every smile says so, else one array per smile (equal where a smile
    gives none)."""
    atm = [isinstance(s.weights, str) for s in smiles]
    if any(atm) and not all(atm):
        raise ValueError("weights: 'atm' for every smile or for none")
    weights = smiles[0].weights if all(atm) else [
        np.ones(len(s)) if s.weights is None else s.weights for s in smiles
    ]  # fmt: skip
    return (
        [s.forward for s in smiles],
        [s.expiry for s in smiles],
        [s.strikes for s in smiles],
        [s.vols for s in smiles],
        weights,
    )


def _rows(smiles: tuple[Smile, ...]) -> list[np.ndarray]:
    """Each smile's options in the input's order; a Smile built by hand (no rows) follows the
    last one's options."""
    rows, start = [], 0
    for s in smiles:
        rows.append(s.rows if s.rows is not None else np.arange(start, start + len(s)))
        start = max(start, int(rows[-1].max()) + 1)
    return rows
