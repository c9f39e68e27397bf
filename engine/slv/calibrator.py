"""``SLVCalibrator``: Heston stochastic local volatility, calibrated to reprice the market.

Three steps, each checkable on its own: the Heston part (given, or fitted by
:class:`engine.heston.HestonCalibrator` on the same quotes), the market's local volatility
(Dupire on per-expiry SVI smiles, :mod:`engine.slv.localvol`, or a flat vol), and the
leverage function by the particle method (:mod:`engine.slv.particles`). The fit is then
*repriced*: fresh particles (another seed) under the leverage price every quote, against
two control variates known exactly (each particle's Heston twin, driven by the same draws
with leverage 1, and the forward). Gates: the repriced implied vols against the surface the
leverage was built for, the playbook's 5 bp on average and 15 bp at worst over the liquid
range (quotes with weight whose out-of-the-money Black delta is at least ``LIQUID_DELTA``,
5%: a Monte-Carlo price of a 1-delta option is noise of tens of bp), and that surface
against the quotes (``surface_fit``). ``residuals`` are model minus quotes.

Information criteria count the Heston parameters plus five per expiry smile (the local
vol's own degrees of freedom): the leverage adds none of its own, it is a function of those.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import block_diag
from jax.scipy.special import ndtr

from engine.blackscholes import (
    black_d1,
    discount_factor,
    forward_price,
    implied_vol,
    implied_vols_of_prices,
)
from engine.diagnostics import IdentifiabilityMetrics
from engine.gates import threshold_gate
from engine.heston import PARAM_NAMES, HestonCalibrator, heston_price
from engine.market import Surface
from engine.optimize.status import Status
from engine.result import CalibrationResult
from engine.slv.localvol import (
    ImpliedSurface,
    implied_surface,
    local_variance,
    one_value,
    smile_rows,
)
from engine.slv.particles import LeverageGrid, calibrate_leverage, simulate_log_spots
from engine.svi import svi_identifiability

__all__ = ["SLVCalibrator", "SLVResult", "SLVThresholds"]

BP = 1e-4
LIQUID_DELTA = 0.05  # the gates' liquid range: out-of-the-money delta at least this
REFINE_UNTIL = 0.25  # years: repricing steps before this are cut into ``refine``


@dataclass(frozen=True)
class SLVThresholds:
    mean_error_bp: float = 5.0  # mean |model - surface| implied vol over the liquid range
    worst_error_bp: float = 15.0
    surface_rmse_bp: float = 50.0  # the SVI surface against the quotes (weighted RMS)


@dataclass(frozen=True)
class SLVResult(CalibrationResult):
    """A :class:`CalibrationResult` (``params``: the Heston part; ``residuals``: repriced
    minus market implied vols) with the leverage function and the local vol's surface (None
    for a flat local vol)."""

    leverage: LeverageGrid | None = None
    surface: ImpliedSurface | None = None  # None: a flat local vol, ``local_vol``
    local_vol: float | None = None
    times: np.ndarray | None = None  # step boundaries from 0

    def surface_vols(self, strikes, maturities) -> np.ndarray:
        """The implied vols the leverage was calibrated to reproduce (the SVI surface's, or
        the flat local vol)."""
        if self.surface is None:
            return np.full(np.shape(strikes), self.local_vol, np.float64)
        return np.asarray(self.surface.implied_vol(jnp.asarray(strikes), jnp.asarray(maturities)))


@partial(jax.jit, static_argnames=("paths", "nodes", "smoothing", "flat"))
def _leverage(key, local, times, x0, drift, heston, *, paths, nodes, smoothing, flat):
    def variance(t, x):
        return local * local + 0.0 * x if flat else local_variance(local, t, x)

    return calibrate_leverage(
        key, variance, times, x0, drift, *heston, paths=paths, nodes=nodes, smoothing=smoothing
    )


@partial(jax.jit, static_argnames=("paths", "slots"))
def _terminal(key, leverage, dts, record, x0, drift, heston, *, paths, slots):
    return simulate_log_spots(key, leverage, dts, record, slots, x0, drift, *heston, paths=paths)


@jax.jit
def _option_prices(kept, slot, strike, forward, call, heston_price):
    """Undiscounted prices of options (one per ``slot`` of ``kept``), with two control
    variates whose means are known exactly: the Heston twin's payoff (``heston_price``) and
    the terminal spot (the forward)."""

    def one(args):
        slot, strike, forward, call, known = args
        s, twin = jnp.exp(kept[0, slot]), jnp.exp(kept[1, slot])
        pay = lambda u: jnp.maximum(jnp.where(call, u - strike, strike - u), 0.0)  # noqa: E731
        y = pay(s)
        controls = jnp.stack([pay(twin) - known, s - forward])
        centred = controls - controls.mean(axis=1, keepdims=True)
        cov = centred @ centred.T / y.size + 1e-30 * jnp.eye(2)
        beta = jnp.linalg.solve(cov, centred @ (y - y.mean()) / y.size)
        return y.mean() - beta @ controls.mean(axis=1)

    return jax.lax.map(one, (slot, strike, forward, call, heston_price))


class SLVCalibrator:
    """Heston SLV with the playbook API: ``SLVCalibrator().calibrate(market_data)``.

    ``heston_params`` fixes the Heston part (else ``heston`` fits it on the quotes);
    ``paths`` particles, ``nodes`` regression nodes a step, steps of ``1 / steps_per_year``
    until ``late`` years and growing with time after (:meth:`time_grid`); the repricing runs
    ``pricing_paths`` fresh particles, the first ``REFINE_UNTIL`` years' steps cut into
    ``refine``. Defaults: QuantLib's SLV test case to 1.4-2.5 bp mean and 5-9 bp worst over
    four seeds, in about 2 s on two CPU cores (``bench/playbooks.py``).
    """

    def __init__(
        self,
        heston: HestonCalibrator | None = None,
        *,
        heston_params: dict[str, float] | None = None,
        paths: int = 2**18,
        steps_per_year: int = 365,
        nodes: int = 201,
        smoothing: float = 1.0,
        pricing_paths: int = 2**16,
        refine: int = 4,
        late: float = 1.0,
        seed: int = 0,
        thresholds: SLVThresholds | None = None,
    ) -> None:
        for name, n in (("paths", paths), ("pricing_paths", pricing_paths)):
            if n < 2 or n % 2:
                raise ValueError(f"{name} must be even and >= 2 (antithetic pairs), got {n}")
        if heston_params is not None and set(heston_params) != set(PARAM_NAMES):
            raise ValueError(
                f"heston_params needs exactly {PARAM_NAMES}, got {sorted(heston_params)}"
            )
        self.heston = heston or HestonCalibrator()
        self.heston_params = heston_params
        self.paths, self.steps_per_year, self.nodes = paths, steps_per_year, nodes
        self.smoothing = smoothing
        self.pricing_paths = pricing_paths
        self.refine = refine
        self.late = late
        self.seed = seed
        self.thresholds = thresholds or SLVThresholds()

    def time_grid(self, expiries) -> np.ndarray:
        """Step boundaries from 0 to the last expiry, every expiry one of them: steps of
        ``1 / steps_per_year`` while ``t < late``, then of ``t / (late * steps_per_year)``
        (short expiries' wings need fine steps; a long expiry's marginal does not), each gap
        between expiries cut into equal steps no longer than that."""
        ends = np.unique(np.asarray(expiries, np.float64))
        if ends.size == 0 or ends[0] <= 0:
            raise ValueError("SLV needs expiries after time 0")
        pieces = [np.zeros(1)]
        for a, b in zip(np.r_[0.0, ends[:-1]], ends):
            longest = max(a, self.late) / (self.late * self.steps_per_year)
            n = max(1, int(np.ceil((b - a) / longest - 1e-9)))
            pieces.append(np.linspace(a, b, n + 1)[1:])
        return np.concatenate(pieces)

    def calibrate(self, market_data: Surface | dict, local_vol: float | None = None) -> SLVResult:
        """Calibrate on an index ``market_data`` (as :class:`HestonCalibrator`'s, one rate and
        one dividend yield) and reprice it; ``local_vol`` a number uses that flat local vol
        instead of the market's Dupire surface (QuantLib's ``LocalConstantVol``)."""
        surface = Surface.of(market_data)  # checked once; inner calls take it as it is
        start = time.perf_counter()
        fit = self.fit_leverage(surface, local_vol)
        quoted = _with_vols(surface.market_data())
        errors = self._vol_errors(fit, quoted)
        return self._result(fit, errors, quoted, time.perf_counter() - start)

    def fit_leverage(
        self, market_data: Surface | dict, local_vol: float | None = None
    ) -> SLVResult:
        """The Heston part, the local vol and the leverage of :meth:`calibrate`, not yet
        repriced (no residuals, gates or convergence verdict: never publish it as a fit)."""
        quoted = Surface.of(market_data)
        market_data = quoted.market_data()  # keys as the seed's
        heston = self._heston(quoted)  # on the quotes as given: prices, or vols
        surface = None if local_vol is not None else implied_surface(_with_vols(market_data))
        local = jnp.float64(local_vol) if surface is None else surface
        spot = float(market_data["spot"])
        rate, dividend = (one_value(market_data.get(n, 0.0), n) for n in ("rate", "dividend"))
        times = self.time_grid(market_data["maturities"])
        leverage = _leverage(
            jax.random.PRNGKey(self.seed), local, jnp.asarray(times), np.log(spot),
            rate - dividend, heston, paths=self.paths, nodes=self.nodes,
            smoothing=self.smoothing, flat=surface is None,
        )  # fmt: skip
        return SLVResult(
            **_blank(heston), leverage=leverage, surface=surface, local_vol=local_vol,
            times=times, model="slv",
        )  # fmt: skip

    def _heston(self, market_data: Surface) -> tuple:
        if self.heston_params is not None:
            return tuple(jnp.float64(self.heston_params[n]) for n in PARAM_NAMES)
        fit = self.heston.calibrate(market_data)
        if not bool(fit.converged):
            raise ValueError(
                f"the Heston part did not converge ({Status(int(fit.status)).message})"
            )
        return tuple(jnp.float64(fit.params[n]) for n in PARAM_NAMES)

    def prices(self, result: SLVResult, market_data: dict) -> np.ndarray:
        """Discounted model prices of every option of ``market_data`` (``strikes``,
        ``maturities``; ``call`` optional, out of the money by default) under ``result``.

        Any maturities: the particles step on the leverage's own boundaries and each
        maturity (the first ``REFINE_UNTIL`` years' steps cut into ``refine``), under the
        leverage row in force at the step's start; past the leverage's last time its last
        row holds."""
        o = _Options.of(market_data)
        return self._undiscounted(result, o) * discount_factor(o.rate, o.t)

    def _undiscounted(self, result: SLVResult, o: _Options) -> np.ndarray:
        ends = np.unique(o.t)
        times = self.time_grid(np.union1d(ends, result.times[1:][result.times[1:] < ends[-1]]))
        rows = np.clip(np.searchsorted(result.times, times[:-1], side="right") - 1, 0, None)
        rows = np.minimum(rows, result.times.size - 2)
        # the first months' steps cut into ``refine``: short expiries' wings feel the scheme
        n = np.where(times[:-1] < REFINE_UNTIL, self.refine, 1)
        last = np.searchsorted(times, ends) - 1  # the step ending at each expiry
        record = np.full(int(n.sum()), -1, np.int32)
        record[np.cumsum(n)[last] - 1] = np.arange(ends.size)
        fine = LeverageGrid(*(jnp.asarray(np.repeat(np.asarray(a)[rows], n, axis=0))
                              for a in result.leverage))  # fmt: skip
        dts = np.repeat(np.diff(times) / n, n)
        heston = tuple(jnp.float64(result.params[n]) for n in PARAM_NAMES)
        kept = _terminal(
            jax.random.PRNGKey(self.seed + 1), fine, jnp.asarray(dts),
            jnp.asarray(record), np.log(o.spot), o.rate - o.dividend, heston,
            paths=self.pricing_paths, slots=ends.size,
        )  # fmt: skip
        slot = np.searchsorted(ends, o.t)
        twin = heston_price(o.spot, o.k, o.t, o.rate, o.dividend, *heston, o.call)
        twin = twin * np.exp(o.rate * o.t)
        return np.asarray(_option_prices(kept, slot, o.k, o.forward, o.call, twin))

    def calibrate_many(self, datasets: list[dict]) -> list[SLVResult]:
        """Each dataset's fit (the folds of :func:`engine.crossval.cross_validate`)."""
        return [self.calibrate(d) for d in datasets]

    def errors(self, fit: SLVResult, market_data: Surface | dict) -> np.ndarray:
        """Implied-vol errors of a whole fit (its leverage is the model): what
        cross-validation and out-of-sample checks score held-out quotes by."""
        return self.vol_errors_of(fit, market_data)

    def vol_errors_of(self, result: SLVResult, market_data: Surface | dict) -> np.ndarray:
        """Repriced minus market implied vol of every option of ``market_data`` (input
        order): what :func:`engine.selection.compare_models` scores."""
        return self._vol_errors(result, Surface.of(market_data).market_data())

    def _vol_errors(self, result: SLVResult, market_data: dict) -> np.ndarray:
        """:meth:`vol_errors_of` on a dict already checked (keys as the seed's)."""
        o = _Options.of(market_data)
        undiscounted = self._undiscounted(result, o)
        vols = np.asarray(implied_vol(undiscounted, o.forward, o.k, o.t, o.call))
        return vols - np.asarray(_with_vols(market_data)["target_vols"], np.float64)

    def identifiability(self, params: dict, market_data: Surface | dict) -> IdentifiabilityMetrics:
        """How well ``market_data`` pins what this SLV is built from. The leverage is derived,
        not fitted; the fits are the Heston part (``params``, as ``heston`` would fit these
        quotes) and an SVI smile per expiry (the local vol). Their metrics stacked: standard
        errors the Heston part's then each smile's (a, b, rho, m, s), correlations
        block-diagonal, and the condition number the worse fit's (the problems are separate:
        one number over both would mix their units)."""
        surface = Surface.of(market_data)
        heston = self.heston.identifiability({n: float(params[n]) for n in PARAM_NAMES}, surface)
        quoted = _with_vols(surface.market_data())
        rows = smile_rows(quoted)
        smiles = svi_identifiability(
            rows.log_moneyness, rows.vols, rows.expiries, rows.weights,
            implied_surface(quoted).smiles,
        )  # fmt: skip
        return IdentifiabilityMetrics(
            np.float64(max(np.max(heston.condition_number), np.max(smiles.condition_number))),
            np.concatenate([np.ravel(heston.std_errors), np.ravel(smiles.std_errors)]),
            np.asarray(block_diag(heston.correlations, *smiles.correlations)),
        )

    def _result(self, fit: SLVResult, errors, market_data: dict, seconds: float) -> SLVResult:
        """Gates: the leverage's repricing of its own surface on the liquid range (mean and
        worst), and the surface's fit to the quotes (noisy quotes are the surface's business,
        not the leverage's); residuals stay model minus quotes, what comparisons score."""
        t = np.asarray(market_data["maturities"], np.float64)
        k = np.asarray(market_data["strikes"], np.float64)
        quotes = np.asarray(market_data["target_vols"], np.float64)
        weights = np.asarray(market_data.get("weights", np.ones(t.shape)), np.float64) * np.ones(
            t.shape
        )
        surface = fit.surface_vols(k, t)
        liquid = (weights > 0) & (_otm_delta(market_data) >= LIQUID_DELTA)
        leverage_errors = np.abs(errors + quotes - surface)[liquid] / BP
        mean_bp = float(np.mean(leverage_errors)) if leverage_errors.size else np.nan
        worst_bp = float(np.max(leverage_errors)) if leverage_errors.size else np.nan
        used = weights > 0
        surface_bp = float(np.sqrt(np.average((surface - quotes)[used] ** 2))) / BP
        finite = bool(np.isfinite(np.asarray(fit.leverage.values)).all() and np.isfinite(mean_bp))
        th = self.thresholds
        gates = {
            "reprice_mean": threshold_gate(
                mean_bp,
                th.mean_error_bp,
                f"mean |SLV - surface| vol below {th.mean_error_bp:g} bp, liquid range",
            ),
            "reprice_worst": threshold_gate(
                worst_bp,
                th.worst_error_bp,
                f"worst |SLV - surface| vol below {th.worst_error_bp:g} bp, liquid range",
            ),
            "surface_fit": threshold_gate(
                surface_bp,
                th.surface_rmse_bp,
                f"RMS |surface - quotes| vol below {th.surface_rmse_bp:g} bp",
            ),
        }
        n_expiries = np.unique(t).size
        weighted = np.where(used, errors, 0.0)
        return SLVResult(
            params=fit.params,
            converged=np.bool_(finite),
            status=np.int32(Status.CONVERGED if finite else Status.NONFINITE),
            iterations=np.int32(fit.times.size - 1),
            loss=np.float64(0.5 * np.sum(weighted**2)),
            rmse=np.float64(np.sqrt(np.mean(errors[used] ** 2))),
            residuals=errors,
            diagnostics={
                "mean_error_bp": np.float64(mean_bp),
                "worst_error_bp": np.float64(worst_bp),
                "surface_rmse_bp": np.float64(surface_bp),
                # the Heston part and each expiry's SVI smile: the leverage adds none
                "n_free": 5 + (0 if fit.surface is None else 5 * n_expiries),
                "n_options": errors.size,
                "paths": self.paths,
                "steps": fit.times.size - 1,
                "seconds": np.float64(seconds),
            },
            gates=gates,
            warm=np.bool_(False),
            model="slv",
            leverage=fit.leverage,
            surface=fit.surface,
            local_vol=fit.local_vol,
            times=fit.times,
        )


class _Options(NamedTuple):
    """The options of ``market_data`` as arrays, on one rate and one dividend yield."""

    t: np.ndarray
    k: np.ndarray
    spot: float
    rate: float
    dividend: float
    forward: np.ndarray
    call: np.ndarray  # as given (``call``, as every calibrator reads it), else out of the money

    @classmethod
    def of(cls, market_data: dict) -> _Options:
        t = np.asarray(market_data["maturities"], np.float64)
        k = np.asarray(market_data["strikes"], np.float64)
        spot = float(market_data["spot"])
        rate, dividend = (one_value(market_data.get(n, 0.0), n) for n in ("rate", "dividend"))
        forward = forward_price(spot, rate, dividend, t)
        call = np.asarray(market_data.get("call", k >= forward), bool) & np.ones(t.shape, bool)
        return cls(t, k, spot, rate, dividend, forward, call)


def _with_vols(market_data: dict) -> dict:
    """``market_data`` with ``target_vols``: as given, else implied from ``target_prices``
    (each option a call or a put by its ``call`` flag, out of the money without one; a price
    with no implied vol weighs zero), what the SVI smiles, the repricing and the gates read."""
    if "target_vols" in market_data:
        return market_data
    if "target_prices" not in market_data:
        raise ValueError("market_data needs target_vols or target_prices")
    o = _Options.of(market_data)
    prices = np.asarray(market_data["target_prices"], np.float64)
    vols = implied_vols_of_prices(prices, o.spot, o.rate, o.dividend, o.t, o.k, o.call)
    weights = np.asarray(market_data.get("weights", 1.0), np.float64) * np.isfinite(vols)
    as_vols = {k: v for k, v in market_data.items() if k != "target_prices"}
    return as_vols | {"target_vols": np.where(np.isfinite(vols), vols, 0.0), "weights": weights}


def _otm_delta(market_data: dict) -> np.ndarray:
    """Forward Black delta of each quote's out-of-the-money option at its market vol."""
    o = _Options.of(market_data)
    vol = np.asarray(market_data["target_vols"], np.float64)
    d1 = black_d1(o.forward, o.k, vol * np.sqrt(o.t))
    return np.asarray(ndtr(-np.abs(d1)))


def _blank(heston: tuple) -> dict:
    """The CalibrationResult fields of a leverage not yet repriced."""
    nan = np.float64(np.nan)
    return {
        "params": {n: float(v) for n, v in zip(PARAM_NAMES, heston)},
        "converged": np.bool_(False),
        "status": np.int32(Status.NONFINITE),
        "iterations": np.int32(0),
        "loss": nan,
        "rmse": nan,
        "residuals": np.zeros(0),
        "diagnostics": {},
        "gates": {},
        "warm": np.bool_(False),
    }
