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
from engine.heston.pricer import heston_price, heston_price_on, lewis_kernel, quadrature
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


def surface_shape(maturities) -> tuple[int, int]:
    """The packed shape ``(M, K)`` of a surface with these option maturities: expiries and most
    strikes of one expiry, each rounded up to a multiple of 4 (few programs, little padding).
    Surfaces of one shape calibrate in one program, whatever else shares their batch."""
    _, counts = np.unique(np.asarray(maturities, np.float64), return_counts=True)
    return _round_up(counts.size, 4), _round_up(int(counts.max()), 4)


def pack_surface(market_data: dict, min_open_interest: float = 100.0) -> HestonSurface:
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
    return _pad(packed, *surface_shape(expiries))


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
    u, weights = quadrature(s.expiries, *_params(x0, bounds), nodes=nodes)
    forward = s.spot * jnp.exp((s.rates - s.dividends) * s.expiries)
    kernel = lewis_kernel(s.strikes, forward, u, weights)
    residuals = partial(_residuals, bounds=bounds, vol_fit=vol_fit)
    out = levenberg_marquardt(
        residuals, x0, (s, u, kernel), max_steps=max_steps, tol=tol, record_history=True
    )
    return out, (u, kernel)


@partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _fit(
    bounds, nodes: int, max_steps: int, tol: float, vol_fit: bool, surfaces: HestonSurface, x0
):
    """Fit ``x0`` (B, S, 5): every surface from each of its S starts, all in one program."""

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
        return (p, out.status, out.iterations, out.cost, jnp.max(rel), out.loss_history, *metrics)

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
        self.nodes = nodes

    @property
    def _bounds(self) -> tuple[tuple[float, float], ...]:
        return tuple(self.parameter_specs[n].bounds for n in PARAM_NAMES)

    def _starts(self, init: dict | None, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(B, S, 5) constrained starting points, and which rows start warm (from a finite
        ``init``; among cold rows a warm one runs its start in every slot, and a batch with
        no cold row runs one start per surface)."""
        base = np.array([self.parameter_specs[n].init for n in PARAM_NAMES], np.float64)
        grid = np.repeat(base[None, :], len(self.v0_starts), 0)
        grid[:, 0] = self.v0_starts
        starts = np.repeat(grid[None], b, 0)
        warm = np.zeros(b, bool)
        if init is not None:
            given = np.stack(
                [np.broadcast_to(np.asarray(init[n], np.float64), (b,)) for n in PARAM_NAMES], -1
            )
            warm = np.all(np.isfinite(given), axis=-1)
            if warm.all():  # nothing cold: one start each
                return given[:, None, :], warm
            starts[warm] = given[warm][:, None, :]
        return starts, warm

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
        """Fit many surfaces at once; ``init`` (name -> (B,)) warm-starts rows that are finite."""
        packed = [pack_surface(m, self.min_open_interest) for m in surfaces]
        b = len(packed)
        size = bucket(b, growth=self.batch_growth)  # padded with copies of the last surface
        m = max(p.expiries.shape[0] for p in packed)
        k = max(p.strikes.shape[1] for p in packed)
        padded = [_pad(p, m, k) for p in packed] + [_pad(packed[-1], m, k)] * (size - b)
        stacked = HestonSurface(*(np.stack(x) for x in zip(*padded)))
        vol_fit = bool(np.isfinite(stacked.vols).any())  # one program per kind of fit
        starts, warm = self._starts(init, b)
        starts = np.concatenate([starts, np.repeat(starts[-1:], size - b, 0)])
        u0 = np.stack(
            [
                np.asarray(to_unconstrained(starts[..., i], lo, hi))
                for i, (lo, hi) in enumerate(self._bounds)
            ],
            -1,
        )
        p, status, iterations, cost, worst, history, condition, errors, correlations = (
            np.asarray(x)[:b]
            for x in _fit(
                self._bounds,
                self.nodes,
                self.max_steps,
                self.tol,
                vol_fit,
                stacked,
                jnp.asarray(u0),
            )
        )
        converged = (status == Status.CONVERGED) & np.all(np.isfinite(p), axis=-1)
        score = np.where(converged, cost, np.inf)
        best = np.argmin(score, axis=1)
        rows = np.arange(b)
        pick = lambda a: a[rows, best]  # noqa: E731
        spread = _spread(p, converged)
        params = pick(p)
        feller = params[:, 3] ** 2 - 2 * params[:, 1] * params[:, 2]
        n_opts = np.array([np.sum(x.weights > 0) for x in packed])
        return CalibrationResult(
            params={n: params[:, i] for i, n in enumerate(PARAM_NAMES)},
            converged=pick(converged),
            status=pick(status),
            iterations=pick(iterations),
            loss=pick(cost),
            rmse=np.sqrt(2 * pick(cost) / n_opts),
            residuals=np.full((b, 0), np.nan),
            diagnostics={
                "multistart_spread": spread,
                "max_price_error": pick(worst),
                "condition_number": pick(condition),
                **{f"std_error_{n}": pick(errors)[:, i] for i, n in enumerate(PARAM_NAMES)},
                "correlations": pick(correlations),
            },
            gates={
                "feller": threshold_gate(feller, 0.0, "Feller condition 2 kappa theta > sigma^2"),
                "identifiability": threshold_gate(
                    pick(condition),
                    self.thresholds.condition,
                    "condition number of the scaled Jacobian",
                ),
                "price_error": threshold_gate(
                    pick(worst), self.thresholds.price_error, "largest relative price error"
                ),
                "multistart": threshold_gate(
                    np.nan_to_num(spread, nan=0.0),
                    self.thresholds.agreement,
                    "converged starts agree (relative parameter spread)",
                ),
            },
            warm=warm,
            loss_history=pick(history),
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
