"""Heston calibration: recovery, QuantLib's LM as the peer, warm starts, multi-start, errors."""

import numpy as np
import pytest

from bench.quantlib_peer import quantlib_heston_fit
from engine.blackscholes import implied_vol
from engine.heston import HestonCalibrator, heston_price

TRUE = {"v0": 0.05, "kappa": 2.5, "theta": 0.07, "sigma": 0.7, "rho": -0.75}
EXPIRIES = np.array([0.1, 0.25, 0.5, 1.0, 2.0])
MONEYNESS = np.array([0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.3])


def surface(params=TRUE, spot=100.0, rate=0.02, dividend=0.01, noise=0.0, seed=0):
    t = np.repeat(EXPIRIES, MONEYNESS.size)
    k = spot * np.tile(MONEYNESS, EXPIRIES.size) ** np.sqrt(np.maximum(t, 0.25) / 0.25)
    prices = np.array(heston_price(spot, k, t, rate, dividend, *params.values()))
    prices *= 1 + noise * np.random.default_rng(seed).standard_normal(prices.size)
    return {
        "spot": spot,
        "strikes": k,
        "maturities": t,
        "rate": rate,
        "dividend": dividend,
        "target_prices": prices,
        "call": True,
    }


def test_recovers_parameters_from_exact_prices_from_the_default_cold_starts():
    res = HestonCalibrator().calibrate(surface())
    assert bool(res.converged)
    for name, value in TRUE.items():
        assert float(res.params[name]) == pytest.approx(value, rel=1e-4), name
    assert res.gate_verdicts()["price_error"] == "pass"
    assert float(res.diagnostics["multistart_spread"]) < 1e-3  # every start found it


def test_fits_implied_vols_vega_scaled():
    data = surface()
    forward = data["spot"] * np.exp((data["rate"] - data["dividend"]) * data["maturities"])
    undiscounted = data["target_prices"] * np.exp(data["rate"] * data["maturities"])
    vols = np.asarray(implied_vol(undiscounted, forward, data["strikes"], data["maturities"]))
    data = {k: v for k, v in data.items() if k != "target_prices"} | {"target_vols": vols}
    res = HestonCalibrator().calibrate(data)
    for name, value in TRUE.items():
        assert float(res.params[name]) == pytest.approx(value, rel=1e-4), name


def test_fits_an_equity_skew_surface_to_quantlibs_sse_or_better():
    rng = np.random.default_rng(7)
    days = np.repeat([30, 91, 182, 365, 730], 9)
    t = days / 365
    m = np.tile(np.linspace(-1.5, 1.5, 9), 5)  # standardised moneyness
    strikes = 100 * np.exp(0.01 * t + m * 0.2 * np.sqrt(t))
    vols = np.clip(0.2 - 0.05 * m + 0.01 * m**2, 0.08, None) * (1 + 0.01 * rng.standard_normal(45))
    ql_sse, market, ql_params = quantlib_heston_fit(strikes, days, vols)
    data = {
        "spot": 100.0,
        "strikes": strikes,
        "maturities": t,
        "rate": 0.02,
        "dividend": 0.01,
        "target_prices": market,
    }
    res = HestonCalibrator().calibrate(data)
    p = [float(res.params[n]) for n in TRUE]
    otm_calls = strikes >= 100 * np.exp(0.01 * t)  # QuantLib's helpers price OTM options
    model = np.asarray(heston_price(100.0, strikes, t, 0.02, 0.01, *p, otm_calls))
    ours_sse = np.sum((100 * (model / market - 1)) ** 2)
    assert bool(res.converged)
    assert ours_sse <= ql_sse * (1 + 1e-6), (ours_sse, ql_sse, p, ql_params)


def test_warm_starts_take_fewer_steps_to_the_same_optimum():
    cal = HestonCalibrator()
    data = [surface(noise=0.002, seed=s) for s in range(3)]
    cold = cal.calibrate_batch(data)
    warm = cal.calibrate_batch(data, init={n: cold.params[n] * 1.02 for n in TRUE})
    assert np.all(warm.warm) and not np.any(cold.warm)
    assert np.all(warm.iterations < cold.iterations)
    for n in TRUE:
        np.testing.assert_allclose(warm.params[n], cold.params[n], rtol=1e-5)


def test_bad_input_raises_clear_errors():
    good = surface()
    cal = HestonCalibrator()
    with pytest.raises(ValueError, match="exactly one of"):
        cal.calibrate({k: v for k, v in good.items() if k != "target_prices"})
    with pytest.raises(ValueError, match="'spot'"):
        cal.calibrate({k: v for k, v in good.items() if k != "spot"})
    with pytest.raises(ValueError, match="positive"):
        cal.calibrate(good | {"strikes": -good["strikes"]})
    with pytest.raises(ValueError, match="illiquid"):
        cal.calibrate(good | {"open_interest": np.zeros(good["strikes"].size)})
    with pytest.raises(ValueError, match="v0_starts"):
        HestonCalibrator(v0_starts=())
