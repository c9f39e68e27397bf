"""Batched, warm-startable SABR calibration of FX smiles (the Daily SABR playbook).

The problem (weighted vol residuals of :func:`engine.sabr.hagan.hagan_vol`) is kept apart from
the solver (any of :data:`engine.optimize.SOLVERS`), which is vmapped over smiles inside one
``jit``. Shapes are padded to power-of-two buckets, so a stream of varying batches compiles a
handful of programs once and never again.

>>> cal = SABRCalibrator(beta=0.5)
>>> res = cal.calibrate({"forward": 1.1, "maturities": 0.5, "strikes": [1.0, 1.05, 1.1, 1.15, 1.2],
...                      "target_vols": [0.105, 0.098, 0.095, 0.097, 0.102]})
>>> bool(res.converged), res.gate_verdicts()["rmse"]
(True, 'pass')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from engine.arbitrage import strike_arbitrage
from engine.buckets import bucket, chunks
from engine.diagnostics import compute_identifiability_metrics
from engine.gates import Gate, not_applicable, threshold_gate
from engine.optimize import SOLVERS, SolverOutput, Status
from engine.parameters import ParameterSpec, to_constrained, to_unconstrained
from engine.result import CalibrationResult
from engine.sabr.hagan import StrikeTerms, hagan_vol_from_terms, moneyness_terms, strike_terms
from engine.sabr.market import SmileBatch, pack_smiles
from engine.sensitivity import implicit_sensitivities

__all__ = ["PARAM_NAMES", "GateThresholds", "SABRCalibrator"]

PARAM_NAMES = ("alpha", "beta", "rho", "nu")
_ARBITRAGE_GRID = 41  # strikes checked: quoted range plus wings, ~6 per ATM std dev


@dataclass(frozen=True)
class GateThresholds:
    """Playbook thresholds. ``condition`` bounds the scaled-Jacobian condition number."""

    rmse: float = 0.005  # 50 bp of vol
    stability: float = 0.20  # relative change vs prior parameters
    condition: float = 5000.0  # realistic FX smiles: median ~10, 99th percentile ~740
    arbitrage: float = 1e-10  # worst violation of -1 <= dC/dK <= 0, q(K) >= 0 (x F)
    arbitrage_wing: float = 1.0  # grid extends this many ATM std devs beyond the quotes


@dataclass(frozen=True)
class _Config:
    """Everything static about a fit: the jit cache key (with the padded shapes)."""

    free: tuple[int, ...]
    bounds: tuple[tuple[float, float], ...]
    relative: tuple[bool, ...]
    stability_floor: tuple[float, ...]
    solver: str
    max_steps: int
    tol: float
    record_history: bool
    sensitivities: bool
    thresholds: GateThresholds


def _theta(u: Array, fixed: Array, cfg: _Config) -> Array:
    theta = fixed
    for j, (i, (lo, hi)) in enumerate(zip(cfg.free, cfg.bounds)):
        theta = theta.at[i].set(to_constrained(u[j], lo, hi))
    return theta


def _model(theta: Array, smile, terms: StrikeTerms | None = None) -> Array:
    """Model vols of a smile; ``terms`` (precomputed for a fixed beta) skip strike-only work."""
    forward, expiry, strikes = smile[:3]
    if terms is None:
        terms = strike_terms(strikes, forward, theta[1])
    return hagan_vol_from_terms(terms, expiry, theta[0], theta[1], theta[2], theta[3])


def _residuals(u, args, cfg: _Config):
    theta_fixed, smile, terms = args
    vols, sqrt_w = smile[3:]
    model = _model(_theta(u, theta_fixed, cfg), smile, terms)
    return jnp.where(sqrt_w > 0, sqrt_w * (model - vols), 0.0)


def _initial(theta0: Array, smile, mask: Array) -> Array:
    """Fill a NaN alpha from the ATM vol: alpha ~ sigma_ATM * F^(1 - beta)."""
    forward, _, strikes, vols, _ = smile
    distance = jnp.where(mask, jnp.abs(jnp.log(strikes / forward)), jnp.inf)
    atm_vol = vols[jnp.argmin(distance)]
    alpha = jnp.where(jnp.isnan(theta0[0]), atm_vol * forward ** (1.0 - theta0[1]), theta0[0])
    return theta0.at[0].set(alpha)


def _prepare_one(cfg: _Config, forward, expiry, strikes, vols, weights, mask, theta0):
    """Starting point (unconstrained) and solver arguments of one smile."""
    sqrt_w = jnp.sqrt(jnp.where(mask, weights, 0.0))
    smile = (forward, expiry, strikes, vols, sqrt_w)
    theta0 = _initial(theta0, smile, mask)
    u0 = jnp.stack(
        [to_unconstrained(theta0[i], lo, hi) for i, (lo, hi) in zip(cfg.free, cfg.bounds)]
    )
    beta_fixed = 1 not in cfg.free
    terms = strike_terms(strikes, forward, theta0[1]) if beta_fixed else None
    return u0, (theta0, smile, terms)


def _evaluate_one(cfg: _Config, out: SolverOutput, solver_args, weights, mask):
    """Parameters, fit quality and an honest status from one smile's solver output."""
    theta0, smile, terms = solver_args
    vols = smile[3]
    theta = _theta(out.x, theta0, cfg)
    model = _model(theta, smile, terms)
    errors = jnp.where(mask, model - vols, jnp.nan)
    n_obs = jnp.sum(mask)
    sq = jnp.where(mask, (model - vols) ** 2, 0.0)
    rmse = jnp.sqrt(jnp.sum(sq) / n_obs)
    w = jnp.where(mask, weights, 0.0)
    converged = (out.status == Status.CONVERGED) & jnp.all(jnp.isfinite(theta)) & jnp.isfinite(rmse)
    return {
        "theta": theta,
        "status": jnp.where(
            converged | (out.status != Status.CONVERGED), out.status, Status.NONFINITE
        ),
        "converged": converged,
        "iterations": out.iterations,
        "loss": out.cost,
        "loss_history": out.loss_history,
        "rmse": rmse,
        "residuals": errors,
        "weighted_rmse": jnp.sqrt(jnp.sum(w * sq) / jnp.sum(w)),
        "max_abs_error": jnp.sqrt(jnp.max(sq)),
    }


def _check_one(cfg: _Config, solver_args, theta, errors, mask, prior):
    """Gate figures and diagnostics of one fitted smile (identifiability, arbitrage, drift)."""
    _, smile, terms = solver_args
    forward, expiry, strikes, vols, sqrt_w = smile
    w = sqrt_w * sqrt_w
    n_obs = jnp.sum(mask)
    free = jnp.array(cfg.free)
    free_theta = theta[free]

    def weighted_model(th_free):
        return sqrt_w * _model(theta.at[free].set(th_free), smile, terms)

    jac = jax.jacfwd(weighted_model)(free_theta)
    scales = jnp.where(jnp.array(cfg.relative), jnp.abs(free_theta), 1.0)
    ident = compute_identifiability_metrics(
        jac, sqrt_w * jnp.where(mask, errors, 0.0), scales, n_obs
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
    change = jnp.abs(free_theta - prior[free]) / jnp.maximum(jnp.abs(prior[free]), floor)
    checks = {
        "condition_number": ident.condition_number,
        "std_errors": ident.std_errors,
        "arbitrage": arbitrage,
        "arbitrage_strike": arbitrage_strike,
        "stability": jnp.max(change),
        "stability_applicable": jnp.all(jnp.isfinite(prior[free])),
    }
    if cfg.sensitivities:
        checks["sensitivities"] = implicit_sensitivities(
            lambda th: _model(theta.at[free].set(th), smile, terms), free_theta, vols, w
        )
    return checks


@partial(jax.jit, static_argnames=("cfg", "checks"))
def _calibrate_batch(
    cfg: _Config, checks: bool, forward, expiry, strikes, vols, weights, mask, theta0, prior
):
    """Fit (and, with ``checks``, gate) a padded batch: one compiled program per shape."""
    smiles = (forward, expiry, strikes, vols, weights, mask)
    u0, solver_args = jax.vmap(partial(_prepare_one, cfg))(*smiles, theta0)
    solve = partial(
        SOLVERS[cfg.solver],
        partial(_residuals, cfg=cfg),
        max_steps=cfg.max_steps,
        tol=cfg.tol,
        record_history=cfg.record_history,
    )
    out = jax.vmap(solve)(u0, solver_args)
    result = jax.vmap(partial(_evaluate_one, cfg))(out, solver_args, weights, mask)
    if checks:
        result.update(
            jax.vmap(partial(_check_one, cfg))(
                solver_args, result["theta"], result["residuals"], mask, prior
            )
        )
    return result


class SABRCalibrator:
    """SABR calibrator with the playbook API.

    ``beta=None`` frees beta; a number fixes it (per smile in :meth:`calibrate_batch` via its
    ``beta`` argument). ``parameter_specs[name].init`` sets cold starts (alpha ``None`` derives
    it from the ATM vol). ``optimizer`` is ``"lm"`` (default, fastest in ``bench/sabr.py``),
    ``"optimistix"``, ``"lbfgs"`` or ``"adam"``. Batches are padded to
    ``min_batch * batch_growth**k`` smiles and split above ``max_batch``, so a stream of varying
    batches compiles a handful of shapes once.
    """

    def __init__(
        self,
        beta: float | None = 0.5,
        *,
        max_steps: int = 500,
        tol: float = 1e-8,
        optimizer: str = "lm",
        thresholds: GateThresholds | None = None,
        max_batch: int = 4096,
        min_batch: int = 1,
        batch_growth: int = 2,
    ) -> None:
        if optimizer not in SOLVERS:
            raise ValueError(f"optimizer must be one of {sorted(SOLVERS)}, not {optimizer!r}")
        if max_steps < 1 or not tol > 0:
            raise ValueError("max_steps must be >= 1 and tol > 0")
        if beta is not None and not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        self.parameter_specs = {
            "alpha": ParameterSpec(None, 0.0, math.inf),
            "beta": ParameterSpec(
                0.5 if beta is None else beta, 0.0, 1.0, fixed=beta is not None, scale="absolute"
            ),
            "rho": ParameterSpec(0.0, -1.0, 1.0, scale="absolute"),
            "nu": ParameterSpec(0.5, 0.0, math.inf),
        }
        self.max_steps = max_steps
        self.tol = tol
        self.optimizer = optimizer
        self.thresholds = thresholds or GateThresholds()
        self.min_batch = bucket(min_batch)  # pad every call to at least this many smiles
        self.batch_growth = batch_growth  # batch shapes: min_batch * batch_growth**k
        self.max_batch = bucket(max_batch, self.min_batch, batch_growth)

    @property
    def free_params(self) -> tuple[str, ...]:
        return tuple(n for n in PARAM_NAMES if not self.parameter_specs[n].fixed)

    def _config(self, record_history: bool, sensitivities: bool) -> _Config:
        specs = [self.parameter_specs[n] for n in self.free_params]
        return _Config(
            free=tuple(PARAM_NAMES.index(n) for n in self.free_params),
            bounds=tuple(s.bounds for s in specs),
            relative=tuple(s.scale == "relative" for s in specs),
            stability_floor=tuple(1e-12 if s.scale == "relative" else 0.1 for s in specs),
            solver=self.optimizer,
            max_steps=self.max_steps,
            tol=self.tol,
            record_history=record_history,
            sensitivities=sensitivities,
            thresholds=self.thresholds,
        )

    def _param_matrix(self, given: dict | None, b: int, fill_defaults: bool, beta) -> np.ndarray:
        """(B, 4) physical values: given ones, else (if ``fill_defaults``) spec inits, else NaN."""
        given = dict(given or {})
        unknown = set(given) - set(PARAM_NAMES)
        if unknown:
            raise ValueError(
                f"unknown parameters {sorted(unknown)}; expected some of {PARAM_NAMES}"
            )
        out = np.full((b, 4), np.nan)
        for i, name in enumerate(PARAM_NAMES):
            spec = self.parameter_specs[name]
            if fill_defaults and spec.init is not None:
                out[:, i] = spec.init
            if name in given:
                value = np.broadcast_to(np.asarray(given[name], np.float64), (b,))
                ok = np.isnan(value) | ((value >= spec.lower) & (value <= spec.upper))
                if not ok.all():
                    raise ValueError(
                        f"{name} values {value[~ok][:5].tolist()} outside [{spec.lower}, {spec.upper}]"
                    )
                if fill_defaults:
                    value = np.where(np.isnan(value), out[:, i], value)
                out[:, i] = value
        if beta is not None and fill_defaults:
            beta = np.broadcast_to(np.asarray(beta, np.float64), (b,))
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
        batch = pack_smiles(forward, expiry, strikes, vols, weights, min_quotes=len(cfg.free))
        b = batch.strikes.shape[0]
        theta0 = self._param_matrix(init, b, True, beta)
        warm = np.ones(b, bool)
        for name in self.free_params:
            warm &= np.isfinite(np.asarray((init or {}).get(name, np.nan), np.float64)) * np.ones(
                b, bool
            )
        prior_m = self._param_matrix(prior, b, False, None)
        parts = [
            self._run(cfg, batch.rows(s), theta0[s], prior_m[s], gates)
            for s in chunks(b, self.max_batch)
        ]
        out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return self._result(out, batch, warm, cfg)

    def _run(
        self, cfg: _Config, batch: SmileBatch, theta0: np.ndarray, prior: np.ndarray, gates: bool
    ) -> dict:
        b, n = batch.strikes.shape
        rows = bucket(b, self.min_batch, self.batch_growth)
        padded = batch.pad(rows, bucket(n, 8))
        pad_rows = rows - b
        theta0 = np.concatenate([theta0, np.tile([0.2, 0.5, 0.0, 0.5], (pad_rows, 1))])
        prior = np.concatenate([prior, np.full((pad_rows, 4), np.nan)])
        out = _calibrate_batch(cfg, gates or cfg.sensitivities, *padded, theta0, prior)
        trimmed = {}
        for k, v in out.items():
            v = np.asarray(v)[:b]
            if k in ("residuals",):
                v = v[:, :n]
            elif k == "sensitivities":
                v = v[:, :, :n]
            trimmed[k] = v
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
            "rmse": threshold_gate(out["rmse"], th.rmse, "RMSE of vols below 50 bp"),
        }
        diagnostics = {
            "weighted_rmse": out["weighted_rmse"],
            "max_abs_error": out["max_abs_error"],
            "forward": batch.forward,
            "expiry": batch.expiry,
            "n_quotes": batch.n_quotes,
        }
        if "condition_number" in out:  # the checks ran
            gates["stability"] = threshold_gate(
                out["stability"],
                th.stability,
                "largest parameter change vs prior below 20%",
                applicable=out["stability_applicable"],
            )
            gates["no_arbitrage"] = threshold_gate(
                out["arbitrage"], th.arbitrage, "calls decreasing and convex in strike (q >= 0)"
            )
            gates["identifiability"] = threshold_gate(
                out["condition_number"], th.condition, "scaled-Jacobian condition number"
            )
            gates["feller"] = not_applicable(shape, "Feller condition: Heston only, n/a to SABR")
            for key in (
                "condition_number",
                "std_errors",
                "arbitrage",
                "arbitrage_strike",
                "stability",
            ):
                diagnostics[key] = out[key]
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
        )

    def calibrate(
        self, market_data: dict, *, prior: dict | None = None, sensitivities: bool = False
    ) -> CalibrationResult:
        """Calibrate the playbook's ``market_data`` dict.

        Keys: ``forward`` (scalar or per option), ``strikes``, ``maturities`` (scalar or per
        option), ``target_vols``, optional ``weights`` (array or ``"atm"``). One expiry gives a
        single-smile result; several give a batch result, one row per expiry in ascending
        order (``diagnostics["expiry"]``). Starts come from ``parameter_specs``.
        """
        missing = {"forward", "strikes", "maturities", "target_vols"} - set(market_data)
        if missing:
            raise ValueError(f"market_data lacks {sorted(missing)}")
        strikes = np.atleast_1d(np.asarray(market_data["strikes"], np.float64))
        vols = np.atleast_1d(np.asarray(market_data["target_vols"], np.float64))
        if strikes.ndim != 1 or strikes.shape != vols.shape:
            raise ValueError(
                f"strikes and target_vols must be 1-D of equal length, got {strikes.shape} and {vols.shape}"
            )
        n = strikes.size
        if n == 0:
            raise ValueError("empty smile: no strikes given")
        forward = np.broadcast_to(np.asarray(market_data["forward"], np.float64), (n,))
        maturities = np.broadcast_to(np.asarray(market_data["maturities"], np.float64), (n,))
        weights = market_data.get("weights")
        if weights is not None and not isinstance(weights, str):
            weights = np.broadcast_to(np.asarray(weights, np.float64), (n,))
        groups = (
            np.unique(maturities[np.isfinite(maturities)])
            if np.isfinite(maturities).all()
            else None
        )
        if groups is None:
            raise ValueError("maturities must be finite")
        rows = [np.flatnonzero(maturities == t) for t in groups]
        for r in rows:
            if np.ptp(forward[r]) > 0:
                raise ValueError(f"one expiry ({maturities[r[0]]}) has several forwards")
        pick = lambda a: [a[r] for r in rows]  # noqa: E731
        result = self.calibrate_batch(
            forward=[forward[r[0]] for r in rows],
            expiry=groups,
            strikes=pick(strikes),
            vols=pick(vols),
            weights=weights if weights is None or isinstance(weights, str) else pick(weights),
            prior=None if prior is None else {k: np.full(len(rows), v) for k, v in prior.items()},
            sensitivities=sensitivities,
            history=True,
        )
        if len(rows) == 1:
            result = result.smile(0)
            if result.loss_history is not None:
                result = _trim_history(result)
        return result


def _trim_history(result: CalibrationResult) -> CalibrationResult:
    hist = np.asarray(result.loss_history)
    return replace(result, loss_history=hist[: int(result.iterations) + 1])
