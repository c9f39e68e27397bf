"""Batched, multi-start Heston calibration of equity index surfaces (the weekly Heston playbook).

The market data (:mod:`engine.heston.surface`) and the problem (:mod:`engine.heston.problem`)
live apart; this module runs the fit.

The solver is any callable of :mod:`engine.optimize`'s signature or a name of its ``SOLVERS``
(``optimizer``; Levenberg-Marquardt by default) on unconstrained coordinates (bounds by
reparametrisation, exact forward-mode Jacobian), vmapped over surfaces and starting points in
one ``jit``, with quadrature nodes fitted to each start; padded options weigh zero;
``parameter_specs[name].fixed`` holds a parameter at its ``init``.

A cold surface is fitted in two stages: every start *explores* on a coarse quadrature (48
nodes), then every explored start is *polished* on the fit's own (128 nodes), where the
multi-start agreement is measured and the best converged start kept; warm surfaces only polish.
The solution is priced once more on finer nodes, and a surface whose fit those nodes would
change (rho near -1 with a high vol-of-vol) is polished again on the pricer's 512.

>>> import numpy as np
>>> from engine.heston import heston_price
>>> k, t = np.tile([80.0, 90, 100, 110, 120], 3), np.repeat([0.25, 0.5, 1.0], 5)
>>> prices = heston_price(100.0, k, t, 0.02, 0.0, 0.05, 2.0, 0.06, 0.6, -0.7)
>>> res = HestonCalibrator().calibrate({"spot": 100.0, "strikes": k, "maturities": t,
...     "rate": 0.02, "dividend": 0.0, "target_prices": prices})
>>> bool(res.converged), round(float(res.params["rho"]), 6)
(True, -0.7)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from engine.blackscholes import black_price
from engine.buckets import chunks
from engine.core import given, identifiability_at_solution, settle
from engine.diagnostics import IdentifiabilityMetrics, identifiability_at
from engine.gates import feller_gate, price_error_gate, threshold_gate
from engine.heston.model import PARAM_NAMES, HestonParams, default_specs
from engine.heston.pricer import NODES, heston_price
from engine.heston.problem import fit_errors, model_prices, quadrature_rule
from engine.heston.surface import (
    HestonSurface,
    check_residual,
    pack_every,
    pack_surface,
    pad_surface,
    per_option,
)
from engine.market import Surface
from engine.optimize import Solver, Status
from engine.options import Batching, Solving, Varied
from engine.parameters import Free
from engine.programs import kept
from engine.result import CalibrationResult

__all__ = ["HestonCalibrator", "HestonPricing", "HestonThresholds"]


@dataclass(frozen=True)
class HestonThresholds:
    """Playbook thresholds: price errors below 2% on liquid strikes, multi-start agreement
    within 5%, scaled-Jacobian condition number below 200."""

    price_error: float = 0.02
    agreement: float = 0.05
    condition: float = 200.0


@dataclass(frozen=True)
class HestonPricing:
    """How a Heston fit prices: ``nodes`` quadrature nodes while polishing (checked on 1.5 x
    as many, and polished again on the pricer's own where the two differ by more than
    ``quadrature_tol``), ``explore_nodes`` to ``explore_tol`` while a cold start explores,
    every ``expiry_step``-th expiry padded into one shape, and the ``residual`` fitted
    (:data:`engine.heston.surface.RESIDUALS`; None: the data's own, prices or vols)."""

    nodes: int = 128
    explore_nodes: int = 48
    explore_tol: float = 1e-6
    quadrature_tol: float = 1e-6
    expiry_step: int = 2
    residual: str | None = None

    def __post_init__(self) -> None:
        check_residual(self.residual)


@dataclass(frozen=True)
class _Config:
    """Everything static about one fit program (the jit cache key, with the shapes)."""

    free: Free  # the fitted parameters; the rest are held
    solver: Solver
    nodes: int
    max_steps: int
    tol: float
    vol_fit: bool
    check: int  # > nodes: also price the solution on this many nodes
    penalty: Callable[[Array], Array] | None = None  # (S, 5) segment parameters -> residuals


def _residuals(x, args, cfg: _Config):
    s, held, u, kernel = args
    p = cfg.free.fill(x, held)
    fit = (jnp.sqrt(s.weights) * fit_errors(model_prices(p, s, u, kernel), s, cfg.vol_fit)).ravel()
    if cfg.penalty is None:
        return fit
    return jnp.concatenate([fit, cfg.penalty(p[None, :])])  # one segment


@partial(kept, static_argnames=("cfg",))
def _fit(cfg: _Config, surfaces: HestonSurface, p0: Array):
    """Fit every surface from each of its S starts ``p0`` (B, S, 5; held parameters at their
    values), all in one program. Quadrature nodes are fitted to each start and held fixed
    through its solve, so the strike kernel is computed once and the Jacobian differentiates
    only the characteristic function. ``cfg.check`` > ``cfg.nodes`` also prices the solution
    on that many nodes: the difference, in the fit's error units, is the quadrature error of
    the fit's own nodes."""
    free = jnp.array(cfg.free.index)

    def one(s, start):
        rule = quadrature_rule(s, start, cfg.nodes)
        residuals = partial(_residuals, cfg=cfg)
        args = (s, start, *rule)
        x0 = cfg.free.values(start)
        out = cfg.solver(
            residuals, x0, args, max_steps=cfg.max_steps, tol=cfg.tol, record_history=True
        )
        p = cfg.free.fill(out.x, start)
        status = settle(cfg.free, p, out.status)
        model = model_prices(p, s, *rule)
        rel = jnp.where(s.weights > 0, jnp.abs(model / s.prices - 1.0), 0.0)
        metrics = identifiability_at_solution(
            cfg.free, out, residuals, args, start, jnp.sum(s.weights > 0)
        )
        std = jnp.full(5, jnp.nan).at[free].set(metrics.std_errors)
        corr = jnp.full((5, 5), jnp.nan).at[free[:, None], free[None, :]].set(metrics.correlations)
        quadrature_error = jnp.nan
        if cfg.check:
            finer = model_prices(p, s, *quadrature_rule(s, p, cfg.check))
            quadrature_error = jnp.max(
                jnp.where(s.weights > 0, jnp.abs(finer - model) / s.scale, 0)
            )
        return (
            p,
            status,
            out.iterations,
            out.cost,
            jnp.max(rel),
            out.loss_history,
            metrics.condition_number,
            std,
            corr,
            quadrature_error,
        )

    per_start = jax.vmap(one, in_axes=(None, 0))
    return jax.vmap(per_start)(surfaces, p0)


@partial(jax.jit, static_argnums=0)
def _identifiability(cfg: _Config, s: HestonSurface, p: Array) -> IdentifiabilityMetrics:
    """Identifiability at parameters ``p`` (5,): the free parameters' weighted Jacobian on
    ``cfg.nodes`` quadrature nodes fitted to ``p``, as a fit ending at ``p`` measures it."""
    rule = quadrature_rule(s, p, cfg.nodes)

    def weighted(q):
        model = model_prices(cfg.free.place(q, p), s, *rule)
        return (jnp.sqrt(s.weights) * fit_errors(model, s, cfg.vol_fit)).ravel()

    return identifiability_at(
        weighted, cfg.free.cells(p), cfg.free.scales(p), jnp.sum(s.weights > 0)
    )


_OUTPUTS = ("p", "status", "iterations", "cost", "worst", "history", "condition", "errors")
_OUTPUTS += ("correlations", "quadrature_error")
_V0_MULTIPLIERS = (0.5, 1.0, 1.5)  # the default cold starts: v0's init times these


class HestonCalibrator(Varied):
    """Heston calibrator with the playbook API.

    ``parameter_specs[name]`` (``init``, bounds, ``fixed``) sets the start and which parameters
    are fitted. Cold fits start from several v0: ``v0_starts`` when given, else v0's ``init``
    times 0.5, 1 and 1.5 (0.02, 0.04, 0.06 by default); a fixed v0 starts once. The best
    converged start is kept and the largest relative parameter difference among converged
    starts reported as ``diagnostics["multistart_spread"]``. ``optimizer`` is ``"lm"``
    (default, fastest), ``"optimistix"``, ``"lbfgs"``, ``"adam"`` (the runbook's alternative
    optimizers) or any solver callable of :mod:`engine.optimize`'s signature. ``penalty_fn``
    (hashable, jittable: e.g. :class:`engine.heston.time_dependent.SmoothnessRegularization`)
    maps the parameters, one row per time segment (one row here), to extra residuals that
    the solver minimises with the fit's. Batches run in
    programs of ``min_batch * batch_growth**k`` surfaces, at most ``max_batch``: large batches
    share compiled programs, and a slow surface holds back only its own chunk (a vmapped solve
    runs until its slowest lane ends). The options come in frozen groups
    (:mod:`engine.options`): ``solving``, ``batching``, ``pricing`` (:class:`HestonPricing`)
    and ``thresholds``; :meth:`replace` varies them.
    """

    GROUPS: ClassVar[dict[str, type]] = {
        "solving": Solving, "batching": Batching, "pricing": HestonPricing,
    }  # fmt: skip
    solving: Solving
    batching: Batching
    pricing: HestonPricing

    def __init__(
        self,
        *,
        v0_starts: tuple[float, ...] | None = None,
        max_steps: int = 200,
        tol: float = 1e-8,
        optimizer: str | Solver = "lm",
        thresholds: HestonThresholds | None = None,
        min_open_interest: float = 100.0,
        batch_growth: int = 2,
        min_batch: int = 1,
        max_batch: int = 64,
        nodes: int = 128,
        explore_nodes: int = 48,
        explore_tol: float = 1e-6,
        quadrature_tol: float = 1e-6,
        expiry_step: int = 2,
        residual: str | None = None,
        penalty_fn: Callable[[Array], Array] | None = None,
    ) -> None:
        self._keep(locals())  # the options, as given: replace() varies them; the groups
        if v0_starts is not None and (not v0_starts or min(v0_starts) <= 0):
            raise ValueError("v0_starts must be a non-empty list of positive variances")
        self.parameter_specs = default_specs()
        self.v0_starts = None if v0_starts is None else tuple(v0_starts)
        self.thresholds = thresholds or HestonThresholds()
        self.min_open_interest = min_open_interest
        self.penalty_fn = penalty_fn

    @property
    def free_params(self) -> tuple[str, ...]:
        return tuple(n for n in PARAM_NAMES if not self.parameter_specs[n].fixed)

    def _config(self, nodes: int, tol: float, vol_fit: bool, check: int = 0) -> _Config:
        return _Config(
            free=Free.of(self.parameter_specs, PARAM_NAMES),
            solver=self.solving.solver,
            nodes=nodes,
            max_steps=self.solving.max_steps,
            tol=tol,
            vol_fit=vol_fit,
            check=check,
            penalty=self.penalty_fn,
        )

    def _stages(self, vol_fit: bool) -> tuple[_Config, _Config, _Config]:
        """The fit's programs: the cold starts' exploration (``explore_nodes`` to
        ``explore_tol``), the polish (``nodes`` to the solver's tol, its solution checked on
        1.5 x as many nodes) and the re-polish on the pricer's own nodes."""
        p, tol = self.pricing, self.solving.tol
        return (
            self._config(p.explore_nodes, p.explore_tol, vol_fit),
            self._config(p.nodes, tol, vol_fit, check=3 * p.nodes // 2),
            self._config(NODES, tol, vol_fit),
        )

    def pack(self, market_data: Surface | dict) -> HestonSurface:
        """The market data packed by expiry as this calibrator fits it (its liquidity filter,
        expiry step and residual): what the joint and time-dependent fits compose."""
        return pack_surface(market_data, self.min_open_interest, self.pricing.expiry_step,
                            self.pricing.residual)  # fmt: skip

    def _grid(self) -> np.ndarray:
        """(S, 5) cold starts: ``parameter_specs`` inits, v0 from the multi-start grid."""
        base = np.array([self.parameter_specs[n].init for n in PARAM_NAMES], np.float64)
        if self.parameter_specs["v0"].fixed:
            return base[None, :]
        v0 = self.v0_starts or tuple(base[0] * m for m in _V0_MULTIPLIERS)
        grid = np.repeat(base[None, :], len(v0), 0)
        grid[:, 0] = v0
        return grid

    def _run(self, packed, p0: np.ndarray, cfg: _Config, shape) -> dict:
        """:func:`_fit` on ``packed`` surfaces (padded to a bucketed batch and ``shape``) from
        ``p0`` (n, S, 5); numpy outputs for the n surfaces."""
        parts = []
        for rows in chunks(len(packed), self.batching.largest):
            part, starts = packed[rows], p0[rows]
            n = len(part)
            size = self.batching.rows(n)  # copies of the last surface
            grids = [pad_surface(p, *shape) for p in part] + [pad_surface(part[-1], *shape)] * (
                size - n
            )
            stacked = HestonSurface(*(np.stack(x) for x in zip(*grids)))
            starts = np.concatenate([starts, np.repeat(starts[-1:], size - n, 0)])
            out = _fit(cfg, stacked, jnp.asarray(starts))
            parts.append([np.asarray(x)[:n] for x in out])
        return {name: np.concatenate(x) for name, x in zip(_OUTPUTS, zip(*parts))}

    def _polish(self, packed, starts, cfg: _Config, shape) -> dict:
        """Fit every start of ``starts`` (n, S, 5): per surface, its best converged start's
        outputs, that start (``best``), and the relative parameter ``spread`` among its
        converged starts that pass the price-error gate."""
        out = self._run(packed, starts, cfg, shape)
        ok = out["status"] == Status.CONVERGED  # not a start that ends on a bound (rho at 0.999)
        best = np.argmin(np.where(ok, out["cost"], np.inf), axis=1)
        rows = np.arange(len(packed))
        fit = {key: value[rows, best] for key, value in out.items()}
        # agreement among the starts that reprice the input: one stuck at a bound is no rival
        rivals = ok & (out["worst"] < self.thresholds.price_error)
        return fit | {
            "converged": ok[rows, best],
            "spread": _spread(out["p"], rivals),
            "best": best,
        }

    def errors(self, params: dict[str, float], market_data: Surface | dict) -> np.ndarray:
        """Residuals of every option of ``market_data`` (in input order, unweighted) under
        ``params``, in the fit's own measure (``residual``): relative or vega-scaled errors of
        the out-of-the-money price, or implied-vol errors."""
        surface = Surface.of(market_data)
        s = pack_every(surface, self.pricing.residual)
        vol_fit = bool(np.isfinite(s.vols).any())
        return per_option(_errors_at(params, s, vol_fit), surface)

    def vol_errors(self, params: dict[str, float], market_data: Surface | dict) -> np.ndarray:
        """Model minus market implied vol of every option (input order) under ``params``,
        whatever the fit's target: prices are inverted (out of the money) first."""
        surface = Surface.of(market_data)
        s = pack_every(surface, "vol")
        return per_option(_errors_at(params, s, vol_fit=True), surface)

    def vol_errors_of(self, result: CalibrationResult, market_data: Surface | dict) -> np.ndarray:
        """:meth:`vol_errors` under a fit ``result``'s parameters: the capability every
        calibrator names so (:func:`engine.selection.vol_errors`)."""
        return self.vol_errors(result.params, market_data)

    def calibrate_many(self, datasets: list[dict]) -> list[dict[str, float]]:
        """Fit several surfaces in one batch: each one's parameters (what cross-validation's
        folds need)."""
        result = self.calibrate_batch(datasets)
        return [{n: float(v[i]) for n, v in result.params.items()} for i in range(len(datasets))]

    def identifiability(
        self, params: dict[str, float], market_data: Surface | dict
    ) -> IdentifiabilityMetrics:
        """Condition number, standard errors and correlations of the free parameters at
        ``params`` on ``market_data``, as a fit ending there would report them."""
        s = self.pack(market_data)
        p = jnp.array([float(np.asarray(params[n])) for n in PARAM_NAMES])
        cfg = self._config(self.pricing.nodes, self.solving.tol, bool(np.isfinite(s.vols).any()))
        return IdentifiabilityMetrics(*map(np.asarray, _identifiability(cfg, s, p)))

    def calibrate(self, market_data: Surface | dict) -> CalibrationResult:
        """Fit one surface (multi-start); ``result.params[name]`` are scalars and
        ``result.loss_history`` runs from the first start to the final loss (``[-1]``)."""
        return self.calibrate_batch([market_data]).smile(0).trimmed_history()

    def calibrate_batch(
        self, surfaces: list[Surface | dict], init: dict | None = None
    ) -> CalibrationResult:
        """Fit many surfaces at once; ``init`` (name -> (B,)) warm-starts rows that are finite.

        Cold rows first *explore*: every start of the multi-start grid on ``explore_nodes``
        quadrature nodes to ``explore_tol``, all in one program. Every explored start is then
        *polished* on ``nodes`` nodes to ``tol``, in one program with the warm rows (which
        only polish); the multi-start spread is measured there and the best converged start
        (the lowest cost) kept. Its solution is priced once more on 1.5 x ``nodes`` nodes:
        where the two differ by more than ``quadrature_tol`` (in the fit's error units), the
        surface is polished again on the pricer's own ``NODES``. ``iterations`` and
        ``loss_history`` cover every stage; ``diagnostics["quadrature_nodes"]`` says which rule
        the result was fitted on. Held (``fixed``) parameters keep their ``init`` whatever
        ``init`` says."""
        quoted = [Surface.of(m) for m in surfaces]
        packed = [self.pack(m) for m in quoted]
        b = len(packed)
        shape = (max(p.expiries.shape[0] for p in packed), max(p.strikes.shape[1] for p in packed))
        vol_fit = any(np.isfinite(p.vols).any() for p in packed)  # one program per kind of fit
        explore, polish, fine = self._stages(vol_fit)
        grid = self._grid()
        start = given(init, PARAM_NAMES, self.parameter_specs, b)
        held = [i for i, n in enumerate(PARAM_NAMES) if self.parameter_specs[n].fixed]
        start[:, held] = grid[0, held]
        warm = np.all(np.isfinite(start), axis=-1)
        # (B, S, 5) polish starts: a warm row's start in every slot, or one slot if all are warm
        starts = np.repeat(start[:, None], 1 if warm.all() else len(grid), 1)
        explored = np.zeros(starts.shape[:2], np.int64)
        before = np.zeros((*starts.shape[:2], 0))
        cold = np.flatnonzero(~warm)
        if cold.size:
            out = self._run(
                [packed[i] for i in cold], np.repeat(grid[None], cold.size, 0), explore, shape
            )
            starts[cold], explored[cold] = out["p"], out["iterations"]
            before = np.full((*starts.shape[:2], self.solving.max_steps), np.nan)
            before[cold] = out["history"][..., :-1]  # the polish's own history starts at their end
        fit = self._polish(packed, starts, polish, shape)
        rows = np.arange(b)
        steps = explored[rows, fit["best"]]
        trails = [
            np.concatenate([before[row, fit["best"][row], : steps[row]], h[: n + 1]])
            for row, h, n in zip(rows, fit["history"], fit["iterations"])
        ]
        # where the fit's quadrature is not exact to quadrature_tol at the solution (rho near
        # -1 with a high vol-of-vol), polish again on the pricer's own NODES nodes
        nodes = np.full(b, self.pricing.nodes)
        rough = np.flatnonzero(fit["quadrature_error"] > self.pricing.quadrature_tol)
        if rough.size:
            again = self._polish([packed[i] for i in rough], fit["p"][rough][:, None], fine, shape)
            for row, h, n in zip(rough, again["history"], again["iterations"]):
                trails[row] = np.concatenate([trails[row], h[1 : n + 1]])
            fit["iterations"][rough] += again.pop("iterations")
            for key, value in again.items():
                if key not in ("spread", "best", "history", "quadrature_error"):
                    fit[key][rough] = value
            nodes[rough] = NODES
        result = self._result(fit, packed, quoted, warm, steps, trails, nodes)
        # a warm start that does not converge (a jump, or a poor user guess) is retried cold,
        # multi-start; the better converged fit is kept
        retry = np.flatnonzero(warm & ~result.converged)
        if retry.size:
            result = result.with_better(retry, self.calibrate_batch([surfaces[i] for i in retry]))
        return result

    def warmup(self, shape: tuple[int, int], vol_fit: bool = True) -> None:
        """Compile every program a surface of ``shape`` (expiries, strikes per expiry) can need,
        cold, warm and the fine-node re-polish, before such a surface is first met."""
        m, k = shape
        t = np.repeat(0.25 * np.arange(1, m + 1), k)
        strikes = 100.0 * np.exp(np.tile(np.linspace(-0.3, 0.3, k), m) * np.sqrt(t))
        vols = 0.2 - 0.1 * np.log(strikes / 100.0)
        target = {"target_vols": vols}
        if not vol_fit:
            target = {"target_prices": np.asarray(black_price(100.0, strikes, t, vols))}
        data = {"spot": 100.0, "strikes": strikes, "maturities": t} | target
        packed = [self.pack(data)]
        grid = self._grid()
        explore, polish, fine = self._stages(vol_fit)
        for cfg, starts in (
            (explore, grid[None]),
            (polish, grid[None]),
            (polish, grid[None, :1]),
            (fine, grid[None, :1]),
        ):
            self._run(packed, starts, cfg, packed[0].strikes.shape)

    def _result(self, fit, packed, quoted, warm, steps, trails, nodes) -> CalibrationResult:
        b = len(packed)
        dropped = np.empty(b, object)  # each surface's options with no time value (indices)
        for row, surface in enumerate(quoted):
            dropped[row] = np.array(surface.no_time_value, int)
        p, cost, worst = fit["p"], fit["cost"], fit["worst"]
        condition, errors, spread = fit["condition"], fit["errors"], fit["spread"]
        loss_history = np.full((b, 3 * self.solving.max_steps + 1), np.nan)
        for row, trail in enumerate(trails):
            loss_history[row, : trail.size] = trail
        n_opts = np.array([np.sum(x.weights > 0) for x in packed])
        th = self.thresholds
        return CalibrationResult(
            params={n: p[:, i] for i, n in enumerate(PARAM_NAMES)},
            converged=fit["converged"],
            status=fit["status"],
            iterations=steps + fit["iterations"],
            loss=cost,
            rmse=np.sqrt(2 * cost / n_opts),
            residuals=np.full((b, 0), np.nan),
            diagnostics={
                "multistart_spread": spread,
                "max_price_error": worst,
                "quadrature_error": fit["quadrature_error"],  # of ``nodes``, at the solution
                "quadrature_nodes": nodes,
                "condition_number": condition,
                **{f"std_error_{n}": errors[:, i] for i, n in enumerate(PARAM_NAMES)},
                "correlations": fit["correlations"],
                "cold_retry": np.zeros(b, bool),  # a warm start that failed, fitted again cold
                "no_time_value": dropped,
                "n_options": n_opts,  # fitted (weight > 0): what information criteria count
                "n_free": np.full(b, len(self.free_params)),
            },
            gates={
                "feller": feller_gate(HestonParams(*p.T).feller_gap),
                "identifiability": threshold_gate(
                    condition,
                    th.condition,
                    f"scaled-Jacobian condition number below {th.condition:g}",
                ),
                "price_error": price_error_gate(worst, th.price_error),
                "multistart": threshold_gate(
                    np.nan_to_num(spread, nan=0.0),
                    th.agreement,
                    f"converged starts agree (relative parameter spread below {th.agreement:.0%})",
                ),
            },
            warm=warm,
            loss_history=loss_history,
            model="heston",
        )


def _errors_at(params: dict[str, float], s: HestonSurface, vol_fit: bool) -> np.ndarray:
    """:func:`fit_errors` of every option of a packed surface (padding included) at ``params``."""
    p = HestonParams(*(float(np.asarray(params[k])) for k in PARAM_NAMES))
    model = heston_price(s.spot, s.strikes, s.expiries, s.rates, s.dividends, *p, s.calls > 0)
    return np.asarray(fit_errors(model, s._replace(weights=np.ones_like(s.weights)), vol_fit))


def _spread(p: np.ndarray, converged: np.ndarray) -> np.ndarray:
    """Largest relative difference of any parameter among each surface's converged starts."""
    masked = np.where(converged[..., None], p, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no converged start
        hi, lo = np.nanmax(masked, axis=1), np.nanmin(masked, axis=1)
        rel = (hi - lo) / np.maximum(np.abs(np.nanmean(masked, axis=1)), 1e-12)
        return np.where(np.sum(converged, axis=1) > 1, np.nanmax(rel, axis=-1), np.nan)
