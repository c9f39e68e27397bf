"""The QuantLib peer of the benchmarks and tests: one smile at a time, and the results file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import QuantLib as ql

__all__ = ["quantlib_heston_fit", "quantlib_sabr_fit", "write_record"]


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


def write_record(path: Path, record: dict) -> None:
    """Append one JSON line of a benchmark's figures, and print it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps(record))
