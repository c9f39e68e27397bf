"""Time-dependent Heston calibration (the term-structure playbook): piecewise-constant
parameters on :class:`~engine.heston.piecewise.TimeSegment` s, priced exactly, with a
smoothness penalty, and the playbook's gates.

The fit starts from the plain Heston fit of the same surface (every segment at its values),
so it is never worse than the constant model it generalises; it runs the base calibrator's
solver on the same packed surface (:func:`engine.heston.surface.pack_surface`) and errors
(:func:`engine.heston.problem.fit_errors`) on the base calibrator's quadrature (128 nodes)
fitted to the start, then polishes from that solution on the pricer's 512 nodes fitted to it.

>>> import numpy as np
>>> from engine.heston.piecewise import TimeSegment, ptd_heston_price
>>> k, t = np.tile([80.0, 90, 100, 110, 120], 4), np.repeat([0.25, 0.5, 1.0, 1.5], 5)
>>> segs = [TimeSegment(0.0, 0.5, ["theta"]), TimeSegment(0.5, 2.0, ["theta"])]
>>> prices = ptd_heston_price(100.0, k, t, 0.0, 0.0, 0.04, [0.0, 0.5], [2.0] * 2,
...     [0.04, 0.09], [0.5] * 2, [-0.7] * 2)
>>> res = TimeDependentCalibrator(segs).calibrate({"spot": 100.0, "strikes": k,
...     "maturities": t, "target_prices": prices})
>>> bool(res.converged), np.round(res.params["theta"], 6).tolist()
(True, [0.04, 0.09])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from engine.blackscholes import forward_price, implied_vol
from engine.core import settle
from engine.diagnostics import IdentifiabilityMetrics, identifiability_at
from engine.gates import feller_gate, price_error_gate, threshold_gate
from engine.heston.calibrator import HestonCalibrator
from engine.heston.model import PARAM_NAMES, HestonParams
from engine.heston.piecewise import (
    TimeSegment,
    ptd_heston_price,
    ptd_price_on,
    ptd_rule,
    segment_starts,
)
from engine.heston.pricer import NODES, lewis_kernel
from engine.heston.problem import fit_errors
from engine.heston.surface import HestonSurface, pack_every, per_option
from engine.market import Surface
from engine.optimize import Solver, Status
from engine.parameters import Slots
from engine.result import CalibrationResult

__all__ = [
    "CalendarReport",
    "SmoothnessRegularization",
    "TimeDependentCalibrator",
    "check_calendar_arbitrage",
    "fitted_segments",
    "segment_jumps",
]

MAX_JUMP = 0.30  # the playbook's smoothness gate: no jump > 30% between segments


@dataclass(frozen=True)
class SmoothnessRegularization:
    """The penalty ``weight * sum_j (ln p_{j+1} - ln p_j)^2`` over the segmented parameters
    (``rho``: plain differences), as extra least-squares residuals: a relative jump of 30%
    costs as much as a vol error of ``0.26 * sqrt(weight)``. Hashable and jittable, so it is
    part of the compiled fit (``HestonCalibrator(penalty_fn=...)``)."""

    time_segments: tuple[TimeSegment, ...]
    weight: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_segments", tuple(self.time_segments))
        if not self.weight >= 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        segment_starts(self.time_segments)  # checks them

    def __call__(self, p: Array) -> Array:
        """Residuals of ``p`` (S, 5): segment rows, :data:`PARAM_NAMES` columns."""
        _, names = segment_starts(self.time_segments)
        parts = []
        for name in names:
            col = p[:, PARAM_NAMES.index(name)]
            step = jnp.diff(col) if name == "rho" else jnp.diff(jnp.log(col))
            parts.append(jnp.sqrt(self.weight) * step)
        return jnp.concatenate(parts) if parts else jnp.zeros(0)


@dataclass(frozen=True)
class _Config:
    layout: Slots
    solver: Solver
    nodes: int
    max_steps: int
    tol: float
    vol_fit: bool
    penalty: object  # hashable callable (S, 5) -> residuals, or None


def _price(p: Array, s: HestonSurface, starts: Array, u: Array, kernel: Array) -> Array:
    return ptd_price_on(
        u, kernel, s.spot, s.strikes, s.expiries, s.rates, s.dividends,
        p[0, 0], starts, p[:, 1], p[:, 2], p[:, 3], p[:, 4], s.calls > 0,
    )  # fmt: skip


def _rule(s: HestonSurface, starts: Array, p: Array, nodes: int):
    u, weights = ptd_rule(s.expiries, p[0, 0], starts, *p[:, 1:].T, nodes=nodes)
    forward = forward_price(s.spot, s.rates[:, :1], s.dividends[:, :1], s.expiries)
    return u, lewis_kernel(s.strikes, forward, u, weights)


@partial(jax.jit, static_argnums=0)
def _fit(cfg: _Config, s: HestonSurface, starts: Array, p0: Array):
    """One surface from segment parameters ``p0`` (S, 5) on nodes fitted to ``p0``."""
    rule = _rule(s, starts, p0, cfg.nodes)

    def residuals(x, args):
        p = cfg.layout.fill(x, p0)
        fit = (
            jnp.sqrt(s.weights) * fit_errors(_price(p, s, starts, *rule), s, cfg.vol_fit)
        ).ravel()
        return fit if cfg.penalty is None else jnp.concatenate([fit, cfg.penalty(p)])

    x0 = cfg.layout.values(p0)
    out = cfg.solver(residuals, x0, None, max_steps=cfg.max_steps, tol=cfg.tol, record_history=True)
    p = cfg.layout.fill(out.x, p0)
    status = settle(cfg.layout, p, out.status)
    model = _price(p, s, starts, *rule)
    errors = fit_errors(model, s, cfg.vol_fit)  # zero on padding
    rel = jnp.where(s.weights > 0, jnp.abs(model / s.prices - 1.0), 0.0)
    penalty = 0.0 if cfg.penalty is None else 0.5 * jnp.sum(cfg.penalty(p) ** 2)
    return p, status, out.iterations, out.cost, out.loss_history, errors, jnp.max(rel), penalty


@partial(jax.jit, static_argnums=0)
def _identifiability(cfg: _Config, s: HestonSurface, starts: Array, p: Array):
    """Identifiability at segment parameters ``p`` (S, 5): the weighted Jacobian of the
    quotes' errors (the penalty left out: it is not data) in the free slots' physical values,
    on nodes fitted to ``p``, scaled relative but ``rho`` absolute."""
    rule = _rule(s, starts, p, cfg.nodes)
    q = cfg.layout.cells(p)

    def weighted(values):
        model = _price(cfg.layout.place(values, p), s, starts, *rule)
        return (jnp.sqrt(s.weights) * fit_errors(model, s, cfg.vol_fit)).ravel()

    return identifiability_at(weighted, q, cfg.layout.scales(p), jnp.sum(s.weights > 0))


def segment_jumps(params: dict, segments: Sequence[TimeSegment]) -> dict[str, float]:
    """Largest jump between adjacent segments of each segmented parameter: relative
    (``|p_{j+1} / p_j - 1|``), but absolute for ``rho``."""
    _, names = segment_starts(segments)
    out = {}
    for name in names:
        col = np.asarray(params[name], np.float64)
        step = np.diff(col) if name == "rho" else np.diff(col) / col[:-1]
        out[name] = float(np.max(np.abs(step))) if step.size else 0.0
    return out


class CalendarReport(NamedTuple):
    """``check_calendar_arbitrage``'s finding: ``passed`` when total implied variance never
    falls with maturity at any probed log-moneyness and the forward variance is positive."""

    passed: bool
    worst_decrease: float  # most negative w(k, T2) - w(k, T1) seen (>= 0: none)
    at: tuple[float, float, float]  # (log-moneyness, T1, T2) of it
    min_forward_variance: float  # smallest (w(0, T2) - w(0, T1)) / (T2 - T1), at the money
    maturities: np.ndarray
    total_variance: np.ndarray  # (T, k) model total implied variance


@jax.jit
def _total_variance(strikes, t, calls, v0, starts, kappa, theta, sigma, rho) -> Array:
    """Model total implied variance on a grid (forward 1, zero rates): one program."""
    price = ptd_heston_price(1.0, strikes, t, 0.0, 0.0, v0, starts, kappa, theta, sigma, rho, calls)
    return implied_vol(price, 1.0, strikes, t, calls) ** 2 * t


def check_calendar_arbitrage(
    result: CalibrationResult,
    segments: Sequence[TimeSegment],
    maturities: Sequence[float] | None = None,
    log_moneyness: Sequence[float] = tuple(np.linspace(-0.4, 0.4, 9)),
    tol: float = 1e-10,
) -> CalendarReport:
    """Total implied variance :math:`w(k, T) = \\sigma^2_{imp} T` of the fitted model on every
    forward log-moneyness ``k`` must not decrease in ``T`` (no calendar arbitrage), and the
    at-the-money forward variance between probed maturities must be positive. Probed at
    ``maturities`` (default: each segment's start, middle and end, the last one to twice its
    length) with zero rates (``k`` is forward moneyness, so rates do not change ``w``)."""
    starts, _ = segment_starts(segments)
    if maturities is None:
        ends = np.array([s.end for s in segments])
        maturities = np.concatenate([starts, 0.5 * (starts + ends), ends, [2.0 * ends[-1]]])
        maturities = maturities[maturities > 0]
    t = np.unique(np.asarray(maturities, np.float64))[:, None]
    k = np.asarray(log_moneyness, np.float64)[None, :]
    p = result.params
    seg = [np.broadcast_to(np.asarray(p[n], np.float64), starts.shape) for n in PARAM_NAMES[1:]]
    strikes = np.exp(k) * np.ones_like(t)
    calls = k >= 0
    w = np.asarray(_total_variance(strikes, t, calls, float(p["v0"]), starts, *seg))
    dw = np.diff(w, axis=0)
    i, j = np.unravel_index(np.nanargmin(dw), dw.shape) if dw.size else (0, 0)
    worst = float(dw[i, j]) if dw.size else 0.0
    atm = int(np.argmin(np.abs(k[0])))
    forward = np.diff(w[:, atm]) / np.diff(t[:, 0]) if t.size > 1 else np.array([np.inf])
    finite = bool(np.all(np.isfinite(w)))
    passed = finite and worst >= -tol and float(np.min(forward)) > 0
    return CalendarReport(
        passed=passed,
        worst_decrease=worst,
        at=(float(k[0, j]), float(t[i, 0]), float(t[min(i + 1, t.size - 1), 0])),
        min_forward_variance=float(np.min(forward)),
        maturities=t[:, 0],
        total_variance=w,
    )


def fitted_segments(result: CalibrationResult, segments: Sequence[TimeSegment]):
    """The segments with every parameter's fitted value on each (``segment.value(name)``;
    ``v0`` on the first only, being the variance at time 0)."""
    out = []
    for j, seg in enumerate(segments):
        values = [(n, float(np.asarray(result.params[n])[j])) for n in PARAM_NAMES[1:]]
        if j == 0:
            values.insert(0, ("v0", float(result.params["v0"])))
        out.append(replace(seg, values=tuple(values)))
    return out


class TimeDependentCalibrator:
    """Piecewise-constant Heston on ``time_segments`` (the playbook's
    ``TimeDependentCalibrator(time_segments, base_calibrator=HestonCalibrator(penalty_fn=...))``).

    The base calibrator supplies everything but the segments: ``parameter_specs`` (bounds,
    ``fixed`` parameters held at ``init``), solver, tolerance, step limit, residual, liquidity
    filter, thresholds and ``penalty_fn``. ``result.params[name]`` is an array over the
    segments for ``kappa``, ``theta``, ``sigma``, ``rho`` (a constant one repeated) and a
    scalar for ``v0``. Gates: the largest relative price error, Feller on every segment, no
    jump above 30% between segments, and no calendar arbitrage
    (:func:`check_calendar_arbitrage`).
    """

    def __init__(
        self,
        time_segments: Sequence[TimeSegment],
        base_calibrator: HestonCalibrator | None = None,
        max_jump: float = MAX_JUMP,
    ) -> None:
        self.time_segments = tuple(time_segments)
        self.starts, self.varying = segment_starts(self.time_segments)
        self.base = base_calibrator or HestonCalibrator()
        self.max_jump = max_jump

    @property
    def end(self) -> float:
        return self.time_segments[-1].end

    def _layout(self) -> Slots:
        n_seg = len(self.time_segments)
        return Slots.of(
            self.base.parameter_specs,
            PARAM_NAMES,
            lambda name: [(j,) for j in range(n_seg)] if name in self.varying else [range(n_seg)],
        )

    def _config(self, nodes: int, vol_fit: bool) -> _Config:
        b = self.base
        return _Config(self._layout(), b.solving.solver, nodes, b.solving.max_steps, b.solving.tol,
                       vol_fit, b.penalty_fn)  # fmt: skip

    def _start(self, market_data: Surface | dict, init: dict | None) -> np.ndarray:
        """(S, 5) starting parameters: ``init`` (scalars or one value per segment) when given,
        else the base calibrator's plain Heston fit of the surface (without its penalty, whose
        smoothness has nothing to smooth on one segment) on every segment; held ones at
        ``init``."""
        n_seg, specs = len(self.time_segments), self.base.parameter_specs
        if init is None:  # the base's own fit, but of one segment: nothing to penalise
            fit = self.base.replace(penalty_fn=None).calibrate(market_data)
            init = {n: float(fit.params[n]) for n in PARAM_NAMES}
        unknown = set(init) - set(PARAM_NAMES)
        if unknown or set(PARAM_NAMES) - set(init):
            raise ValueError(f"init needs exactly the parameters {PARAM_NAMES}, got {sorted(init)}")
        p0 = np.empty((n_seg, len(PARAM_NAMES)))
        for col, name in enumerate(PARAM_NAMES):
            value = specs[name].init if specs[name].fixed else init[name]
            try:
                p0[:, col] = np.broadcast_to(np.asarray(value, np.float64), (n_seg,))
            except ValueError:
                raise ValueError(
                    f"init[{name!r}] must be a scalar or one value per segment ({n_seg})"
                ) from None
        if np.ptp(p0[:, 0]) > 0:
            raise ValueError("init['v0'] must be one value: v0 is the variance at time 0")
        return p0

    def errors(self, params: dict, market_data: Surface | dict) -> np.ndarray:
        """Residuals of every option of ``market_data`` (input order, unweighted) under
        ``params`` (``v0`` and one value per segment of the rest), in the fit's own measure:
        what :func:`engine.crossval.cross_validate` scores held-out options by."""
        return self._errors_at(params, market_data, self.base.pricing.residual)

    def vol_errors_of(self, result: CalibrationResult, market_data: Surface | dict) -> np.ndarray:
        """Model minus market implied vol of every option (input order) under ``result``:
        what :func:`engine.selection.compare_models` scores every model by."""
        return self._errors_at(result.params, market_data, "vol")

    def _errors_at(
        self, params: dict, market_data: Surface | dict, residual: str | None
    ) -> np.ndarray:
        s = pack_every(market_data, residual)
        p, starts = jnp.asarray(self._matrix(params)), jnp.asarray(self.starts)
        model = _price(p, s, starts, *_rule(s, starts, p, NODES))
        return per_option(
            np.asarray(fit_errors(model, s, bool(np.isfinite(s.vols).any()))), market_data
        )

    def identifiability(self, params: dict, market_data: Surface | dict) -> IdentifiabilityMetrics:
        """Condition number, standard errors and correlations of the free coordinates (a
        segmented parameter has one per segment, in :data:`PARAM_NAMES` order then segment
        order) at ``params`` on ``market_data``: what the playbook's identifiability
        criterion reads (a term structure that the quotes cannot pin shows here first)."""
        s = pack_every(market_data, self.base.pricing.residual)
        p = jnp.asarray(self._matrix(params))
        cfg = self._config(NODES, bool(np.isfinite(s.vols).any()))
        return IdentifiabilityMetrics(
            *map(np.asarray, _identifiability(cfg, s, jnp.asarray(self.starts), p))
        )

    def _matrix(self, params: dict) -> np.ndarray:
        """(S, 5) segment rows of ``params`` (scalars repeated on every segment)."""
        p = np.empty((len(self.starts), len(PARAM_NAMES)))
        for col, name in enumerate(PARAM_NAMES):
            p[:, col] = np.broadcast_to(np.asarray(params[name], np.float64), (len(self.starts),))
        return p

    def calibrate_many(self, datasets: list[dict]) -> list[dict[str, np.ndarray]]:
        """Each surface's fitted parameters (the folds of a cross-validation)."""
        return [dict(self.calibrate(d).params) for d in datasets]

    def calibrate(self, market_data: Surface | dict, init: dict | None = None) -> CalibrationResult:
        """Fit one surface (``HestonCalibrator``'s ``market_data``). Options past the last
        segment's end are refused (the term structure says nothing about them)."""
        market_data = Surface.of(market_data)
        maturities = market_data.maturities
        beyond = np.flatnonzero(maturities > self.end)
        if beyond.size:
            raise ValueError(
                f"options {beyond[:5].tolist()} mature after the last segment's end "
                f"({self.end} years; maturities {maturities[beyond[:5]].tolist()}): extend the "
                "last TimeSegment or drop them"
            )
        b = self.base
        s = b.pack(market_data)
        vol_fit = bool(np.isfinite(s.vols).any())
        p0 = self._start(market_data, init)
        starts = jnp.asarray(self.starts)
        # the base's quadrature (128 nodes) to its optimum, then the pricer's own 512 nodes,
        # fitted to that solution, polish it: exact prices at the end, few fine steps
        first = _fit(self._config(b.pricing.nodes, vol_fit), s, starts, jnp.asarray(p0))
        final = _fit(self._config(NODES, vol_fit), s, starts, first[0])
        return self._result(market_data, s, first, final, init is not None)

    def _result(self, market_data, s, first, final, warm: bool) -> CalibrationResult:
        p, status, steps, cost, history, errors, worst, penalty = (np.asarray(x) for x in final)
        layout = self._layout()
        status = np.int32(status)
        converged = bool(status == Status.CONVERGED)
        params = {"v0": np.float64(p[0, 0])} | {
            n: p[:, i].copy() for i, n in enumerate(PARAM_NAMES) if i
        }
        n_opts = int(np.sum(s.weights > 0))
        fit_cost = float(cost) - float(penalty)
        jumps = segment_jumps(params, self.time_segments)
        result = CalibrationResult(
            params=params,
            converged=np.bool_(converged),
            status=np.int32(status),
            iterations=np.int32(int(first[2]) + int(steps)),
            loss=np.float64(cost),
            rmse=np.float64(np.sqrt(2.0 * max(fit_cost, 0.0) / n_opts)),
            residuals=per_option(errors, market_data),  # fit's error units, input order
            diagnostics={
                "segment_starts": self.starts.copy(),
                "segment_ends": np.array([seg.end for seg in self.time_segments]),
                "max_price_error": np.float64(worst),
                "penalty": np.float64(penalty),
                "max_jump": np.float64(max(jumps.values(), default=0.0)),
                "n_free": len(layout.rows),  # what information criteria count
                "n_options": n_opts,
            },
            gates={},
            warm=np.bool_(warm),
            loss_history=np.concatenate(
                [np.asarray(first[4])[: int(first[2]) + 1], history[1 : int(steps) + 1]]
            ),
            model="heston-ptd",
        )
        calendar = check_calendar_arbitrage(result, self.time_segments)
        feller = np.max(HestonParams(*p.T).feller_gap)
        th = self.base.thresholds
        gates = {
            "price_error": price_error_gate(worst, th.price_error),
            "feller": feller_gate(feller, " on every segment"),
            "smoothness": threshold_gate(
                max(jumps.values(), default=0.0),
                self.max_jump,
                f"largest jump between adjacent segments below {self.max_jump:g} (relative; rho absolute)",
            ),
            "calendar": threshold_gate(
                max(-calendar.worst_decrease, 0.0) + (0.0 if calendar.passed else np.inf),
                1e-10,
                "no calendar arbitrage: total implied variance non-decreasing in maturity",
            ),
        }
        return replace(result, gates=gates)
