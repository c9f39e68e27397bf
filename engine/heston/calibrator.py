"""Batched, multi-start Heston calibration of equity index surfaces (the weekly Heston playbook).

A surface is packed by expiry: strikes ``(M, K)`` against expiries ``(M, 1)``, so each pricing
evaluates the characteristic function once per expiry (see :mod:`engine.heston.pricer`).
Residuals are relative price errors for ``target_prices`` (QuantLib's default calibration
error) or, for ``target_vols``, implied-vol errors: exact, through
:func:`engine.blackscholes.implied_vol`, whose derivative is the price's divided by vega.
``call`` (per option) says which prices are calls; by default each option is
the out-of-the-money one (a call where ``K >= F``), as QuantLib's Heston helpers choose. The
solver is :func:`engine.optimize.levenberg_marquardt` on unconstrained coordinates (bounds by
reparametrisation, exact forward-mode Jacobian), vmapped over surfaces and starting points in
one ``jit``, with quadrature nodes fitted to each start; padded options weigh zero.

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
...     "rate": 0.02, "dividend": 0.0, "target_prices": prices, "call": True})
>>> bool(res.converged), round(float(res.params["rho"]), 6)
(True, -0.7)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from engine.blackscholes import black_price, implied_vol
from engine.buckets import bucket
from engine.diagnostics import identifiability_from_normal
from engine.gates import threshold_gate
from engine.heston.pricer import NODES, heston_price, heston_price_on, lewis_kernel, quadrature
from engine.optimize import Status
from engine.optimize.lm import levenberg_marquardt
from engine.parameters import ParameterSpec, to_constrained, to_unconstrained
from engine.result import CalibrationResult

__all__ = ["PARAM_NAMES", "HestonCalibrator", "HestonSurface", "pack_surface", "surface_shape"]

PARAM_NAMES = ("v0", "kappa", "theta", "sigma", "rho")


class HestonSurface(NamedTuple):
    """One surface packed by expiry; padded options have ``weights == 0``."""

    spot: Array  # ()
    expiries: Array  # (M, 1)
    strikes: Array  # (M, K)
    rates: Array  # (M, K)
    dividends: Array  # (M, K)
    prices: Array  # (M, K) market prices
    calls: Array  # (M, K) 1.0 for calls, 0.0 for puts
    scale: Array  # (M, K) residual divisor: the price (relative errors) or its vega
    vols: Array  # (M, K) market implied vols of a vol fit (residuals in vol), NaN otherwise
    weights: Array  # (M, K)


def _column(value, n: int, name: str) -> np.ndarray:
    out = np.broadcast_to(np.asarray(value, np.float64), (n,)).copy()
    if not np.all(np.isfinite(out)):
        raise ValueError(f"market_data[{name!r}] must be finite")
    return out


def surface_shape(maturities, expiry_step: int = 2) -> tuple[int, int]:
    """The packed shape ``(M, K)`` of a surface with these option maturities: expiries rounded
    up to a multiple of ``expiry_step`` (each padded one costs a characteristic function), the
    most strikes of one expiry to a multiple of 4. Surfaces of one shape calibrate in one
    program, whatever else shares their batch; a stream whose surfaces grow expiry by expiry
    compiles fewer programs with a larger step."""
    _, counts = np.unique(np.asarray(maturities, np.float64), return_counts=True)
    return _round_up(counts.size, expiry_step), _round_up(int(counts.max()), 4)


def pack_surface(
    market_data: dict, min_open_interest: float = 100.0, expiry_step: int = 2
) -> HestonSurface:
    """Validate one surface's ``market_data`` and pack it by expiry (see the module doc)."""
    for key in ("spot", "strikes", "maturities"):
        if key not in market_data:
            raise ValueError(f"market_data needs {key!r}")
    if ("target_prices" in market_data) == ("target_vols" in market_data):
        raise ValueError("market_data needs exactly one of 'target_prices' or 'target_vols'")
    strikes = np.atleast_1d(np.asarray(market_data["strikes"], np.float64))
    n = strikes.size
    spot = float(market_data["spot"])
    expiries = _column(market_data["maturities"], n, "maturities")
    rates = _column(market_data.get("rate", 0.0), n, "rate")
    dividends = _column(market_data.get("dividend", 0.0), n, "dividend")
    weights = _column(market_data.get("weights", 1.0), n, "weights")
    if not (spot > 0 and np.all(strikes > 0) and np.all(expiries > 0) and np.all(weights >= 0)):
        raise ValueError("spot, strikes and maturities must be positive and weights non-negative")
    if "open_interest" in market_data:  # the playbook's liquidity filter; NaN: not reported
        interest = np.broadcast_to(np.asarray(market_data["open_interest"], np.float64), (n,))
        weights = weights * ~(interest <= min_open_interest)
    forward = spot * np.exp((rates - dividends) * expiries)
    discount = np.exp(-rates * expiries)
    calls = np.broadcast_to(market_data.get("call", strikes >= forward), (n,)).astype(np.float64)
    if "target_vols" in market_data:
        vols = _column(market_data["target_vols"], n, "target_vols")
        if not np.all(vols > 0):
            raise ValueError("target_vols must be positive")
        prices = discount * np.asarray(black_price(forward, strikes, expiries, vols, calls > 0))
        std = vols * np.sqrt(expiries)
        d1 = np.log(forward / strikes) / std + 0.5 * std
        scale = (
            discount * forward * np.sqrt(expiries) * np.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
        )
        target_vols = vols
    else:
        prices = _column(market_data["target_prices"], n, "target_prices")
        if not np.all(prices > 0):
            raise ValueError("target_prices must be positive")
        scale = prices
        target_vols = np.full(n, np.nan)
    if not np.any(weights > 0):
        raise ValueError("no option left to fit (all weights zero or filtered as illiquid)")
    unique = np.unique(expiries)
    rows = [np.flatnonzero(expiries == t) for t in unique]
    m, k = len(unique), max(len(r) for r in rows)
    grid = lambda fill: np.full((m, k), fill, np.float64)  # noqa: E731
    names = ("strikes", "rates", "dividends", "prices", "calls", "scale", "vols")
    out = {name: grid(1.0) for name in names}
    out["strikes"][:] = spot
    out["rates"][:], out["dividends"][:] = rates.mean(), dividends.mean()
    out["weights"] = grid(0.0)
    for i, idx in enumerate(rows):
        for name, values in (
            ("strikes", strikes),
            ("rates", rates),
            ("dividends", dividends),
            ("prices", prices),
            ("calls", calls),
            ("vols", target_vols),
            ("scale", scale),
            ("weights", weights),
        ):
            out[name][i, : len(idx)] = values[idx]
    packed = HestonSurface(spot=np.float64(spot), expiries=unique[:, None], **out)
    return _pad(packed, *surface_shape(expiries, expiry_step))


@dataclass(frozen=True)
class GateThresholds:
    """Playbook thresholds: price errors below 2% on liquid strikes, multi-start agreement
    within 5%, scaled-Jacobian condition number below 200."""

    price_error: float = 0.02
    agreement: float = 0.05
    condition: float = 200.0


def _params(u: Array, bounds) -> Array:
    return jnp.stack([to_constrained(u[i], lo, hi) for i, (lo, hi) in enumerate(bounds)])


def _model(p: Array, s: HestonSurface, u: Array, kernel: Array) -> Array:
    return heston_price_on(
        u, kernel, s.spot, s.strikes, s.expiries, s.rates, s.dividends, *p, s.calls > 0
    )


def _errors(model: Array, s: HestonSurface, vol_fit: bool) -> Array:
    """Implied-vol errors for a vol fit (relative price errors where the model price has no
    implied vol), relative or vega-scaled price errors otherwise; zero on padding."""
    price_error = (model - s.prices) / s.scale
    if not vol_fit:  # static: price fits never pay for the inversion
        return jnp.where(s.weights > 0, price_error, 0.0)
    growth = jnp.exp((s.rates - s.dividends) * s.expiries)
    vol = implied_vol(
        model * jnp.exp(s.rates * s.expiries), s.spot * growth, s.strikes, s.expiries, s.calls > 0
    )
    error = jnp.where(jnp.isfinite(s.vols) & jnp.isfinite(vol), vol - s.vols, price_error)
    return jnp.where(s.weights > 0, error, 0.0)


def _residuals(x, args, bounds, vol_fit):
    s, u, kernel = args
    model = _model(_params(x, bounds), s, u, kernel)
    return (jnp.sqrt(s.weights) * _errors(model, s, vol_fit)).ravel()


def _solve(
    s: HestonSurface, x0: Array, bounds, nodes: int, max_steps: int, tol: float, vol_fit: bool
):
    """LM from ``x0`` with quadrature nodes fitted to ``x0``'s parameters and held fixed, so
    the strike kernel is computed once and the Jacobian differentiates only the CF."""
    rule = _rule(s, _params(x0, bounds), nodes)
    residuals = partial(_residuals, bounds=bounds, vol_fit=vol_fit)
    out = levenberg_marquardt(
        residuals, x0, (s, *rule), max_steps=max_steps, tol=tol, record_history=True
    )
    return out, rule


def _rule(s: HestonSurface, p: Array, nodes: int) -> tuple[Array, Array]:
    """Quadrature nodes fitted to parameters ``p`` and the surface's strike kernel on them."""
    u, weights = quadrature(s.expiries, *p, nodes=nodes)
    forward = s.spot * jnp.exp((s.rates - s.dividends) * s.expiries)
    return u, lewis_kernel(s.strikes, forward, u, weights)


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _fit(
    bounds,
    nodes: int,
    max_steps: int,
    tol: float,
    vol_fit: bool,
    check: int,
    surfaces: HestonSurface,
    x0: Array,
):
    """Fit ``x0`` (B, S, 5): every surface from each of its S starts, all in one program.
    ``check`` > ``nodes`` also prices the solution on that many nodes: the difference, in the
    fit's error units, is the quadrature error of the fit's own ``nodes``."""

    def one(s, x):
        out, rule = _solve(s, x, bounds, nodes, max_steps, tol, vol_fit)
        p = _params(out.x, bounds)
        model = _model(p, s, *rule)
        rel = jnp.where(s.weights > 0, jnp.abs(model / s.prices - 1.0), 0.0)
        # identifiability in the physical parameters from the solver's own J^T J (in the
        # unconstrained ones): J_p = J_u / (dp/du), the map being diagonal
        slope = jnp.diag(jax.jacfwd(_params)(out.x, bounds))
        normal = out.normal / slope[:, None] / slope[None, :]
        scales = jnp.concatenate([p[:4], jnp.ones(1)])  # relative, but rho absolute
        metrics = identifiability_from_normal(
            normal, 2.0 * out.cost, scales, jnp.sum(s.weights > 0)
        )
        quadrature_error = jnp.nan
        if check:
            finer = _model(p, s, *_rule(s, p, check))
            quadrature_error = jnp.max(
                jnp.where(s.weights > 0, jnp.abs(finer - model) / s.scale, 0)
            )
        return (
            p,
            out.status,
            out.iterations,
            out.cost,
            jnp.max(rel),
            out.loss_history,
            *metrics,
            quadrature_error,
        )

    per_start = jax.vmap(one, in_axes=(None, 0))
    return jax.vmap(per_start)(surfaces, x0)


class HestonCalibrator:
    """Heston calibrator with the playbook API.

    ``parameter_specs[name].init`` sets the single start; ``v0_starts`` the multi-start grid of
    cold fits (v0 in 0.02, 0.04, 0.06 by default). The best converged start is kept and the
    largest relative parameter difference among converged starts reported as
    ``diagnostics["multistart_spread"]``.
    """

    def __init__(
        self,
        *,
        v0_starts: tuple[float, ...] = (0.02, 0.04, 0.06),
        max_steps: int = 200,
        tol: float = 1e-8,
        thresholds: GateThresholds | None = None,
        min_open_interest: float = 100.0,
        batch_growth: int = 2,
        nodes: int = 128,
        explore_nodes: int = 48,
        explore_tol: float = 1e-6,
        quadrature_tol: float = 1e-6,
        expiry_step: int = 2,
    ) -> None:
        if not v0_starts or min(v0_starts) <= 0:
            raise ValueError("v0_starts must be a non-empty list of positive variances")
        self.parameter_specs = {
            "v0": ParameterSpec(0.04, 1e-6, 4.0),
            "kappa": ParameterSpec(1.5, 1e-3, 30.0),
            "theta": ParameterSpec(0.04, 1e-6, 4.0),
            "sigma": ParameterSpec(0.5, 1e-3, 5.0),
            "rho": ParameterSpec(-0.6, -0.999, 0.999, scale="absolute"),
        }
        self.v0_starts = tuple(v0_starts)
        self.max_steps, self.tol = max_steps, tol
        self.thresholds = thresholds or GateThresholds()
        self.min_open_interest = min_open_interest
        self.batch_growth = batch_growth
        self.nodes, self.explore_nodes, self.explore_tol = nodes, explore_nodes, explore_tol
        self.quadrature_tol, self.expiry_step = quadrature_tol, expiry_step

    @property
    def _bounds(self) -> tuple[tuple[float, float], ...]:
        return tuple(self.parameter_specs[n].bounds for n in PARAM_NAMES)

    def _to_unconstrained(self, p: np.ndarray) -> np.ndarray:
        return np.stack(
            [
                np.asarray(to_unconstrained(p[..., i], lo, hi))
                for i, (lo, hi) in enumerate(self._bounds)
            ],
            -1,
        )

    def _grid(self) -> np.ndarray:
        """(S, 5) cold starts: ``parameter_specs`` inits, v0 from ``v0_starts``."""
        base = np.array([self.parameter_specs[n].init for n in PARAM_NAMES], np.float64)
        grid = np.repeat(base[None, :], len(self.v0_starts), 0)
        grid[:, 0] = self.v0_starts
        return grid

    def _run(self, packed, u0: np.ndarray, nodes: int, tol: float, vol_fit: bool, shape, check=0):
        """:func:`_fit` on ``packed`` surfaces (padded to a bucketed batch and ``shape``) from
        ``u0`` (n, S, 5); numpy outputs for the n surfaces."""
        n = len(packed)
        size = bucket(n, growth=self.batch_growth)  # padded with copies of the last surface
        rows = [_pad(p, *shape) for p in packed] + [_pad(packed[-1], *shape)] * (size - n)
        stacked = HestonSurface(*(np.stack(x) for x in zip(*rows)))
        u0 = np.concatenate([u0, np.repeat(u0[-1:], size - n, 0)])
        out = _fit(
            self._bounds, nodes, self.max_steps, tol, vol_fit, check, stacked, jnp.asarray(u0)
        )
        return [np.asarray(x)[:n] for x in out]

    def _polish(self, packed, starts, nodes: int, vol_fit: bool, shape, check: int = 0) -> dict:
        """Fit every start of ``starts`` (n, S, 5) on ``nodes`` nodes to ``tol``: per surface,
        its best converged start's outputs, that start (``best``), and the relative
        parameter ``spread`` among its converged starts."""
        names = ("p", "status", "iterations", "cost", "worst", "history", "condition")
        names += ("errors", "correlations", "quadrature_error")
        u0 = self._to_unconstrained(starts)
        out = dict(zip(names, self._run(packed, u0, nodes, self.tol, vol_fit, shape, check)))
        ok = (out["status"] == Status.CONVERGED) & np.all(np.isfinite(out["p"]), axis=-1)
        best = np.argmin(np.where(ok, out["cost"], np.inf), axis=1)
        rows = np.arange(len(packed))
        fit = {key: value[rows, best] for key, value in out.items()}
        return fit | {"converged": ok[rows, best], "spread": _spread(out["p"], ok), "best": best}

    def errors(self, params: dict[str, float], market_data: dict) -> np.ndarray:
        """Residuals of every option of ``market_data`` (in input order, unweighted) under
        ``params``, in the fit's own measure: relative price errors, or implied-vol errors."""
        every = {k: v for k, v in market_data.items() if k != "open_interest"}
        s = pack_surface(every | {"weights": 1.0})
        n = np.atleast_1d(market_data["strikes"]).size
        expiries = np.broadcast_to(np.asarray(market_data["maturities"], float), (n,))
        model = np.asarray(
            heston_price(
                s.spot,
                s.strikes,
                s.expiries,
                s.rates,
                s.dividends,
                *(params[k] for k in PARAM_NAMES),
                s.calls > 0,
            )
        )
        every_weight = s._replace(weights=np.ones_like(s.weights))
        grid = np.asarray(
            _errors(jnp.asarray(model), every_weight, bool(np.isfinite(s.vols).any()))
        )
        out = np.empty(n)
        for i, t in enumerate(np.unique(expiries)):  # pack_surface's order, back to the input's
            idx = np.flatnonzero(expiries == t)
            out[idx] = grid[i, : idx.size]
        return out

    def calibrate(self, market_data: dict) -> CalibrationResult:
        """Fit one surface (multi-start); ``result.params[name]`` are scalars."""
        batch = self.calibrate_batch([market_data])
        return batch.smile(0)

    def calibrate_batch(self, surfaces: list[dict], init: dict | None = None) -> CalibrationResult:
        """Fit many surfaces at once; ``init`` (name -> (B,)) warm-starts rows that are finite.

        Cold rows first *explore*: every start of ``v0_starts`` on ``explore_nodes`` quadrature
        nodes to ``explore_tol``, all in one program. Every explored start is then *polished*
        on ``nodes`` nodes to ``tol``, in one program with the warm rows (which only polish);
        the multi-start spread is measured there and the best converged start (the lowest
        cost) kept. Its solution is priced once more on 1.5 x ``nodes`` nodes: where the two
        differ by more than ``quadrature_tol`` (in the fit's error units), the surface is
        polished again on the pricer's own ``NODES``. ``iterations`` and ``loss_history`` cover
        every stage; ``diagnostics["quadrature_nodes"]`` says which rule the result was fitted
        on."""
        packed = [pack_surface(m, self.min_open_interest, self.expiry_step) for m in surfaces]
        b = len(packed)
        shape = (max(p.expiries.shape[0] for p in packed), max(p.strikes.shape[1] for p in packed))
        vol_fit = any(np.isfinite(p.vols).any() for p in packed)  # one program per kind of fit
        given = np.full((b, len(PARAM_NAMES)), np.nan)
        if init is not None:
            given = np.stack(
                [np.broadcast_to(np.asarray(init[n], np.float64), (b,)) for n in PARAM_NAMES], -1
            )
        warm = np.all(np.isfinite(given), axis=-1)
        # (B, S, 5) polish starts: a warm row's start in every slot, or one slot if all are warm
        starts = np.repeat(given[:, None], 1 if warm.all() else len(self.v0_starts), 1)
        explored = np.zeros(starts.shape[:2], np.int64)
        before = np.zeros((*starts.shape[:2], 0))
        cold = np.flatnonzero(~warm)
        if cold.size:
            grid = np.repeat(self._to_unconstrained(self._grid())[None], cold.size, 0)
            p, _, iterations, *_, history = self._run(
                [packed[i] for i in cold],
                grid,
                self.explore_nodes,
                self.explore_tol,
                vol_fit,
                shape,
            )[:6]
            starts[cold], explored[cold] = p, iterations
            before = np.full((*starts.shape[:2], self.max_steps), np.nan)
            before[cold] = history[..., :-1]  # the polish's own history starts at their end
        fit = self._polish(packed, starts, self.nodes, vol_fit, shape, check=3 * self.nodes // 2)
        rows = np.arange(b)
        steps = explored[rows, fit["best"]]
        trails = [
            np.concatenate([before[row, fit["best"][row], : steps[row]], h[: n + 1]])
            for row, h, n in zip(rows, fit["history"], fit["iterations"])
        ]
        # where the fit's quadrature is not exact to quadrature_tol at the solution (rho near
        # -1 with a high vol-of-vol), polish again on the pricer's own NODES nodes
        nodes = np.full(b, self.nodes)
        rough = np.flatnonzero(fit["quadrature_error"] > self.quadrature_tol)
        if rough.size:
            again = self._polish(
                [packed[i] for i in rough], fit["p"][rough][:, None], NODES, vol_fit, shape
            )
            for row, h, n in zip(rough, again["history"], again["iterations"]):
                trails[row] = np.concatenate([trails[row], h[1 : n + 1]])
            fit["iterations"][rough] += again.pop("iterations")
            for key, value in again.items():
                if key not in ("spread", "best", "history", "quadrature_error"):
                    fit[key][rough] = value
            nodes[rough] = NODES
        p, status, cost, worst = fit["p"], fit["status"], fit["cost"], fit["worst"]
        condition, errors, correlations = fit["condition"], fit["errors"], fit["correlations"]
        converged, spread, iterations = fit["converged"], fit["spread"], steps + fit["iterations"]
        loss_history = np.full((b, 3 * self.max_steps + 1), np.nan)
        for row, trail in enumerate(trails):
            loss_history[row, : trail.size] = trail
        feller = p[:, 3] ** 2 - 2 * p[:, 1] * p[:, 2]
        n_opts = np.array([np.sum(x.weights > 0) for x in packed])
        return CalibrationResult(
            params={n: p[:, i] for i, n in enumerate(PARAM_NAMES)},
            converged=converged,
            status=status,
            iterations=iterations,
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
                "correlations": correlations,
            },
            gates={
                "feller": threshold_gate(feller, 0.0, "Feller condition 2 kappa theta > sigma^2"),
                "identifiability": threshold_gate(
                    condition,
                    self.thresholds.condition,
                    "condition number of the scaled Jacobian",
                ),
                "price_error": threshold_gate(
                    worst, self.thresholds.price_error, "largest relative price error"
                ),
                "multistart": threshold_gate(
                    np.nan_to_num(spread, nan=0.0),
                    self.thresholds.agreement,
                    "converged starts agree (relative parameter spread)",
                ),
            },
            warm=warm,
            loss_history=loss_history,
        )


def _round_up(n: int, step: int) -> int:
    """Shapes in steps of ``step``: few programs to compile, little padding."""
    return -(-n // step) * step


def _pad(s: HestonSurface, m: int, k: int) -> HestonSurface:
    """Pad to ``m`` expiries of ``k`` strikes (repeating the last expiry, zero weight)."""

    def grid(a, columns=k):
        a = np.asarray(a)
        out = np.concatenate([a, np.repeat(a[-1:], m - a.shape[0], 0)])
        return np.concatenate([out, np.repeat(out[:, -1:], columns - out.shape[1], 1)], 1)

    weights = np.zeros((m, k))
    weights[: s.weights.shape[0], : s.weights.shape[1]] = s.weights
    return s._replace(
        expiries=grid(s.expiries, 1),  # (M, 1): one characteristic function per expiry
        strikes=grid(s.strikes),
        rates=grid(s.rates),
        dividends=grid(s.dividends),
        prices=grid(s.prices),
        calls=grid(s.calls),
        vols=grid(s.vols),
        scale=grid(s.scale),
        weights=weights,
    )


def _spread(p: np.ndarray, converged: np.ndarray) -> np.ndarray:
    """Largest relative difference of any parameter among each surface's converged starts."""
    masked = np.where(converged[..., None], p, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no converged start
        hi, lo = np.nanmax(masked, axis=1), np.nanmin(masked, axis=1)
        rel = (hi - lo) / np.maximum(np.abs(np.nanmean(masked, axis=1)), 1e-12)
        return np.where(np.sum(converged, axis=1) > 1, np.nanmax(rel, axis=-1), np.nan)
