"""The QuantLib peer of the benchmarks and tests: one smile at a time, and the results file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import jax
import numpy as np
import QuantLib as ql

__all__ = [
    "SLVCase",
    "quantlib_heston_fit",
    "quantlib_sabr_fit",
    "slv_fd_errors",
    "slv_leverage_surface",
    "write_record",
]


def quantlib_sabr_fit(
    forward, expiry, strikes, vols, *, beta=0.5, max_steps=500, tol=1e-8, start=None
):
    """Fit one smile with ``SABRInterpolation`` (LM, beta fixed, equal weights) from ``start``
    ``(alpha, rho, nu)``, by default QuantLib's usual guess (ATM-based alpha, nu 0.5, rho 0).
    Returns ``(alpha, rho, nu)`` and the fitted vols at ``strikes``."""
    strikes, vols = list(map(float, strikes)), list(map(float, vols))
    if start is None:
        atm = vols[int(np.argmin(np.abs(np.log(np.array(strikes) / forward))))]
        start = (atm * forward ** (1 - beta), 0.0, 0.5)
    alpha, rho, nu = map(float, start)
    interp = ql.SABRInterpolation(
        ql.Array(strikes),
        ql.Array(vols),
        float(expiry),
        float(forward),
        alpha,
        beta,
        nu,
        rho,
        False,
        True,
        False,
        False,  # alpha, beta (fixed), nu, rho
        False,  # not vega-weighted: equal weights, as volstream's default
        ql.EndCriteria(max_steps, 100, tol, tol, tol),
        ql.LevenbergMarquardt(tol, tol, tol),
    )
    fitted = np.array([interp(k, True) for k in strikes])
    return (interp.alpha(), interp.rho(), interp.nu()), fitted


HESTON_ORDER = ("v0", "kappa", "theta", "sigma", "rho")
QUANTLIB_HESTON_START = {"v0": 0.1, "kappa": 1.0, "theta": 0.1, "sigma": 0.5, "rho": -0.5}


def quantlib_heston_fit(strikes, days, vols, *, spot=100.0, rate=0.02, dividend=0.01, start=None):
    """QuantLib's own Heston calibration, as in its DAX test: ``HestonModelHelper`` per option
    (out of the money, relative price errors), ``AnalyticHestonEngine``, Levenberg-Marquardt,
    ``EndCriteria(400, 40, 1e-8, 1e-8, 1e-8)``. ``start``: name -> value (QuantLib's test start
    by default). Returns the SSE in percent squared, the market prices, and the parameters."""
    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    curve = lambda x: ql.YieldTermStructureHandle(  # noqa: E731
        ql.FlatForward(today, x, ql.Actual365Fixed())
    )
    r, q = curve(rate), curve(dividend)
    start = start or QUANTLIB_HESTON_START
    process = ql.HestonProcess(
        r, q, ql.QuoteHandle(ql.SimpleQuote(spot)), *(start[n] for n in HESTON_ORDER)
    )
    model = ql.HestonModel(process)
    engine = ql.AnalyticHestonEngine(model)
    helpers = []
    for k, d, v in zip(strikes, days, vols):
        helper = ql.HestonModelHelper(
            ql.Period(int(d), ql.Days),
            ql.NullCalendar(),
            spot,
            float(k),
            ql.QuoteHandle(ql.SimpleQuote(float(v))),
            r,
            q,
        )
        helper.setPricingEngine(engine)
        helpers.append(helper)
    model.calibrate(
        helpers, ql.LevenbergMarquardt(1e-8, 1e-8, 1e-8), ql.EndCriteria(400, 40, 1e-8, 1e-8, 1e-8)
    )
    sse = sum((100 * h.calibrationError()) ** 2 for h in helpers)
    theta, kappa, sigma, rho, v0 = model.params()
    params = {"v0": v0, "kappa": kappa, "theta": theta, "sigma": sigma, "rho": rho}
    return sse, np.array([h.marketValue() for h in helpers]), params


class _FlatMarket:
    """A QuantLib market of the SLV cases: spot 100, r 5%, q 2% (flat, on ``dc``) seen on
    5 Jan 2016, and Heston models on it."""

    spot, rate, dividend = 100.0, 0.05, 0.02

    def __init__(self, dc: ql.DayCounter) -> None:
        self.dc = dc
        self.today = ql.Date(5, ql.January, 2016)
        ql.Settings.instance().evaluationDate = self.today
        self.spot_handle = ql.QuoteHandle(ql.SimpleQuote(self.spot))
        flat = lambda r: ql.YieldTermStructureHandle(ql.FlatForward(self.today, r, self.dc))  # noqa: E731
        self.r_ts, self.q_ts = flat(self.rate), flat(self.dividend)

    def heston_model(self, h: dict[str, float]) -> ql.HestonModel:
        return ql.HestonModel(ql.HestonProcess(
            self.r_ts, self.q_ts, self.spot_handle,
            h["v0"], h["kappa"], h["theta"], h["sigma"], h["rho"],
        ))  # fmt: skip


class SLVCase(_FlatMarket):
    """QuantLib's Heston SLV Monte-Carlo calibration test (test-suite/hestonslvmodel.cpp,
    ``testMonteCarloCalibration``): flat local vol 0.3, Heston v0 0.09, kappa 1, theta 0.06,
    sigma 0.4, rho -0.75, r 5%, q 2%, spot 100 on 5 Jan 2016 (Actual/Actual ISDA); strikes
    50-200 at 3, 6 and 12 months, each out of the money, those worth more than 0.02."""

    heston: ClassVar[dict[str, float]] = {
        "v0": 0.09,
        "kappa": 1.0,
        "theta": 0.06,
        "sigma": 0.4,
        "rho": -0.75,
    }
    local_vol = 0.3
    strikes = (50.0, 80.0, 100.0, 120.0, 150.0, 200.0)
    months = (3, 6, 12)

    def __init__(self) -> None:
        super().__init__(ql.ActualActual(ql.ActualActual.ISDA))
        self.model = self.heston_model(self.heston)
        flat_vol = ql.BlackConstantVol(self.today, ql.NullCalendar(), self.local_vol, self.dc)
        self.black = ql.AnalyticEuropeanEngine(
            ql.GeneralizedBlackScholesProcess(
                self.spot_handle, self.q_ts, self.r_ts, ql.BlackVolTermStructureHandle(flat_vol)
            )
        )
        self.dates = [self.today + ql.Period(m, ql.Months) for m in self.months]
        self.options = []  # (date, strike, option, Black price, Black vega) of the test's set
        for date in self.dates:
            for k in self.strikes:
                kind = ql.Option.Put if k < self.spot else ql.Option.Call
                option = ql.VanillaOption(ql.PlainVanillaPayoff(kind, k), ql.EuropeanExercise(date))
                option.setPricingEngine(self.black)
                if option.NPV() > 0.02:
                    self.options.append((date, k, option, option.NPV(), option.vega()))

    def market_data(self) -> dict:
        """The test's options as volstream market data (every one at the flat 0.3)."""
        t = np.array([self.dc.yearFraction(self.today, d) for d, *_ in self.options])
        k = np.array([k for _, k, *_ in self.options])
        return {
            "spot": self.spot, "rate": self.rate, "dividend": self.dividend, "strikes": k,
            "maturities": t, "target_vols": np.full(t.size, self.local_vol),
        }  # fmt: skip

    def fit(self, calibrator):
        """volstream's leverage (not repriced) on the test's flat local vol."""
        return calibrator.fit_leverage(self.market_data(), local_vol=self.local_vol)

    def quantlib_leverage(self, ours=None, steps_per_year=91, bins=400, paths=40_000, seed=1234):
        """QuantLib's own leverage function (HestonSLVMCModel, Sobol draws), as in its test
        (on its flat local vol: ``ours``, volstream's fit, is not needed)."""
        factory = ql.SobolBrownianGeneratorFactory(
            ql.SobolBrownianGenerator.Diagonal, seed, ql.SobolRsg.JoeKuoD7
        )
        local = ql.LocalConstantVol(self.today, self.local_vol, self.dc)
        end = self.today + ql.Period(1, ql.Years)
        model = ql.HestonSLVMCModel(local, self.model, factory, end, steps_per_year, bins, paths)
        leverage = model.leverageFunction()
        leverage.localVol(0.5, self.spot, True)  # the calibration runs on first use
        return leverage

    def fd_errors(self, leverage, fine: bool = False) -> np.ndarray:
        """|FD price - Black price| / Black vega in bp of each option: the test's measure
        (FdHestonVanillaEngine with the leverage, its grid; ``fine``: 4x time, 2x space)."""
        scale = (4, 2) if fine else (1, 1)
        errors = []
        for date in self.dates:
            t = self.dc.yearFraction(self.today, date)
            engine = ql.FdHestonVanillaEngine(
                self.model, max(26, int(t * 51)) * scale[0], 201 * scale[1], 51 * scale[1], 0,
                ql.FdmSchemeDesc.ModifiedCraigSneyd(), leverage,
            )  # fmt: skip
            for d, _, option, price, vega in self.options:
                if d == date:
                    option.setPricingEngine(engine)
                    errors.append(abs(option.NPV() - price) / vega * 1e4)
                    option.setPricingEngine(self.black)
        return np.array(errors)


def slv_leverage_surface(result, today: ql.Date, dc: ql.DayCounter) -> ql.FixedLocalVolSurface:
    """volstream's leverage grid (an :class:`engine.slv.SLVResult`) as QuantLib's
    ``FixedLocalVolSurface``: each step's row at its start time, on its own spot nodes
    (QuantLib interpolates linearly in spot between nodes and in time between rows)."""
    grid = result.leverage
    times = [float(t) for t in np.asarray(grid.times)[1:]]  # QuantLib's rows start after 0
    nodes = [[float(s) for s in row] for row in np.exp(np.asarray(grid.log_spots))[1:]]
    values = ql.Matrix(np.asarray(grid.values)[1:].T.tolist())
    return ql.FixedLocalVolSurface(today, times, nodes, values, dc)


def slv_fd_errors(result, market_data: dict, heston: dict, today, dc, fine=True) -> np.ndarray:
    """Model minus market implied vol (bp, vega-scaled) of every option of an index
    ``market_data`` (flat rates, ``maturities`` whole days / 365 from ``today``), priced by
    QuantLib's FdHestonVanillaEngine under ``heston`` with ``result``'s leverage: an
    independent repricer of volstream's SLV (``fine``: 400 time steps a year, 401 x 101
    nodes; else 100, 201 x 51)."""
    leverage = slv_leverage_surface(result, today, dc)
    return fd_errors(leverage, market_data, heston, today, dc, fine)


def fd_errors(leverage, market_data: dict, heston: dict, today, dc, fine=True) -> np.ndarray:
    """:func:`slv_fd_errors` with any QuantLib leverage function (volstream's as a
    ``FixedLocalVolSurface``, or ``HestonSLVMCModel``'s own): the same repricer for both."""
    ql.Settings.instance().evaluationDate = today
    spot = ql.QuoteHandle(ql.SimpleQuote(float(market_data["spot"])))
    flat = lambda r: ql.YieldTermStructureHandle(ql.FlatForward(today, float(r), dc))  # noqa: E731
    r_ts, q_ts = flat(market_data["rate"]), flat(market_data["dividend"])
    h = heston
    model = ql.HestonModel(
        ql.HestonProcess(r_ts, q_ts, spot, h["v0"], h["kappa"], h["theta"], h["sigma"], h["rho"])
    )
    t = np.asarray(market_data["maturities"], np.float64)
    k = np.asarray(market_data["strikes"], np.float64)
    vols = np.asarray(market_data["target_vols"], np.float64)
    growth = float(market_data["rate"]) - float(market_data["dividend"])
    out = np.empty(t.size)
    for expiry in np.unique(t):
        days = round(float(expiry) * 365)
        date = today + days
        per_year, x_grid, v_grid = (400, 401, 101) if fine else (100, 201, 51)
        engine = ql.FdHestonVanillaEngine(
            model, max(50, int(expiry * per_year)), x_grid, v_grid, 0,
            ql.FdmSchemeDesc.ModifiedCraigSneyd(), leverage,
        )  # fmt: skip
        for i in np.flatnonzero(t == expiry):
            call = k[i] >= float(market_data["spot"]) * np.exp(growth * expiry)
            kind = ql.Option.Call if call else ql.Option.Put
            option = ql.VanillaOption(ql.PlainVanillaPayoff(kind, k[i]), ql.EuropeanExercise(date))
            option.setPricingEngine(engine)
            model_price = option.NPV()
            vol = ql.BlackConstantVol(today, ql.NullCalendar(), float(vols[i]), dc)
            process = ql.GeneralizedBlackScholesProcess(
                spot, q_ts, r_ts, ql.BlackVolTermStructureHandle(vol)
            )
            option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
            out[i] = (model_price - option.NPV()) / option.vega() * 1e4
    return out


class SkewedSLVCase(_FlatMarket):
    """A market whose skew and curvature the SLV's Heston part lacks (issue 23): the market
    is a Heston model with vol of vol 0.8 and correlation -0.7, the Heston part has half the
    vol of vol (0.4) and less than half the correlation (-0.3); spot 100, r 5%, q 2%, 30, 91,
    182 and 365 days, 9 strikes each over +-1.6 standard deviations of a 20% vol (every one
    in the gates' liquid range). The market's vols come from QuantLib's analytic Heston
    engine. (QuantLib's own Dupire on its ``HestonBlackVolSurface`` of the market model is no
    local vol to start from: it falls back to its default in the short expiries' wings, and
    a leverage built on it misprices the 30-day options by 260-490 bp.)"""

    market: ClassVar[dict[str, float]] = {
        "v0": 0.04, "kappa": 2.0, "theta": 0.05, "sigma": 0.8, "rho": -0.7,
    }  # fmt: skip
    heston: ClassVar[dict[str, float]] = {
        "v0": 0.04, "kappa": 2.0, "theta": 0.05, "sigma": 0.4, "rho": -0.3,
    }  # fmt: skip
    days = (30, 91, 182, 365)

    def __init__(self) -> None:
        super().__init__(ql.Actual365Fixed())
        self._data = self._quoted()

    def market_data(self) -> dict:
        """The market's options as volstream market data: implied vols of QuantLib's analytic
        Heston prices, each option out of the money (priced once, when the case is built)."""
        return dict(self._data)

    def _quoted(self) -> dict:
        t = np.repeat(np.array(self.days) / 365.0, 9)
        z = np.tile(np.linspace(-1.0, 1.0, 9), len(self.days))
        k = self.spot * np.exp(1.6 * 0.2 * np.sqrt(t) * z)
        engine = ql.AnalyticHestonEngine(self.heston_model(self.market))
        growth = self.rate - self.dividend
        vols = []
        for ti, ki in zip(t, k):
            call = ki >= self.spot * np.exp(growth * ti)
            date = self.today + round(ti * 365)
            option = ql.VanillaOption(
                ql.PlainVanillaPayoff(ql.Option.Call if call else ql.Option.Put, float(ki)),
                ql.EuropeanExercise(date),
            )
            option.setPricingEngine(engine)
            process = ql.BlackScholesMertonProcess(
                self.spot_handle, self.q_ts, self.r_ts,
                ql.BlackVolTermStructureHandle(
                    ql.BlackConstantVol(self.today, ql.NullCalendar(), 0.2, self.dc)
                ),
            )  # fmt: skip
            vols.append(option.impliedVolatility(option.NPV(), process, 1e-12, 1000, 1e-4, 4.0))
        return {"spot": self.spot, "rate": self.rate, "dividend": self.dividend, "strikes": k,
                "maturities": t, "target_vols": np.array(vols)}  # fmt: skip

    def fit(self, calibrator):
        """volstream's leverage (not repriced) on its own local vol: Dupire on its SVI fit of
        the quotes."""
        return calibrator.fit_leverage(self.market_data())

    def quantlib_leverage(self, ours, steps_per_year=91, bins=400, paths=40_000, seed=1234):
        """QuantLib's leverage for this market (HestonSLVMCModel, Sobol draws) on the local
        vol of ``ours``, volstream's fit, tabulated (:func:`local_vol_surface`): both fit a
        leverage to the same local vol."""
        local = local_vol_surface(ours.surface, self.today, self.dc)
        factory = ql.SobolBrownianGeneratorFactory(
            ql.SobolBrownianGenerator.Diagonal, seed, ql.SobolRsg.JoeKuoD7
        )
        end = self.today + max(self.days) + 1
        model = ql.HestonSLVMCModel(
            local, self.heston_model(self.heston), factory, end, steps_per_year, bins, paths
        )
        leverage = model.leverageFunction()
        leverage.localVol(0.5, self.spot, True)  # the calibration runs on first use
        return leverage

    def fd_errors(self, leverage, fine: bool = False) -> np.ndarray:
        """|model - market| implied vol (bp, vega-scaled) of every option, priced by QuantLib's
        FD engine under the Heston part with ``leverage``."""
        return np.abs(fd_errors(leverage, self._data, self.heston, self.today, self.dc, fine))


def local_vol_surface(surface, today: ql.Date, dc: ql.DayCounter, days: int = 365,
                      nodes: int = 301) -> ql.FixedLocalVolSurface:  # fmt: skip
    """volstream's local vol (Dupire on its SVI surface, an :class:`engine.slv.localvol.
    ImpliedSurface`) tabulated for QuantLib: a row each day to ``days``, ``nodes`` spots
    log-spaced over a tenth to ten times the spot (QuantLib interpolates linearly)."""
    from engine.slv.localvol import local_variance

    spots = surface.spot * np.exp(np.linspace(np.log(0.1), np.log(10.0), nodes))
    times = np.arange(1, days + 1) / 365.0
    at = jax.jit(local_variance)
    values = np.sqrt([np.asarray(at(surface, t, np.log(spots))) for t in times])  # (time, spot)
    rows = [[float(s) for s in spots]] * times.size
    return ql.FixedLocalVolSurface(today, times.tolist(), rows, ql.Matrix(values.T.tolist()), dc)


def write_record(path: Path, record: dict) -> None:
    """Append one JSON line of a benchmark's figures, and print it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps(record))
