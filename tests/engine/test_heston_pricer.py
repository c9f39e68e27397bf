"""Heston prices against Lewis's published values and QuantLib's analytic engine; implied vols."""

import itertools

import jax
import numpy as np
import pytest
import QuantLib as ql

from engine.blackscholes import black_price, implied_vol
from engine.heston import heston_price

LEWIS = dict(spot=100.0, expiry=1.0, rate=0.01, dividend=0.02, v0=0.04, kappa=4.0, theta=0.25)
LEWIS_STRIKES = np.array([80.0, 90.0, 100.0, 110.0, 120.0])
LEWIS_CALLS = [  # Lewis (2000), as cached in QuantLib's test suite (hestonmodel.cpp)
    26.774758743998854221382195325726949201687074848341,
    20.933349000596710388139445766564068085476194042256,
    16.070154917028834278213466703938231827658768230714,
    12.132211516709844867860534767549426052805766831181,
    9.024913483457835636553375454092357136489051667150,
]
LEWIS_PUTS = [
    7.958878113256768285213263077598987193482161301733,
    12.017966707346304987709573290236471654992071308187,
    17.055270961270109413522653999411000974895436309183,
    23.017825898442800538908781834822560777763225722188,
    29.811026202682471843340682293165857439167301370697,
]


@pytest.mark.parametrize("call, expected", [(True, LEWIS_CALLS), (False, LEWIS_PUTS)])
def test_lewis_reference_prices(call, expected):
    got = heston_price(strike=LEWIS_STRIKES, sigma=1.0, rho=-0.5, call=call, **LEWIS)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=0)


TODAY = ql.Date(2, 1, 2025)


def quantlib_price(strike, days, v0, kappa, theta, sigma, rho, call, spot=100.0, r=0.02, q=0.01):
    ql.Settings.instance().evaluationDate = TODAY
    curve = lambda x: ql.YieldTermStructureHandle(ql.FlatForward(TODAY, x, ql.Actual365Fixed()))  # noqa: E731
    process = ql.HestonProcess(
        curve(r), curve(q), ql.QuoteHandle(ql.SimpleQuote(spot)), v0, kappa, theta, sigma, rho
    )
    engine = ql.AnalyticHestonEngine(ql.HestonModel(process), 1e-13, 1_000_000)  # adaptive
    kind = ql.Option.Call if call else ql.Option.Put
    option = ql.EuropeanOption(
        ql.PlainVanillaPayoff(kind, strike), ql.EuropeanExercise(TODAY + days)
    )
    option.setPricingEngine(engine)
    return option.NPV()


# (vol-of-vol, rho): ordinary equity and FX-like cases, then high vol-of-vol with rho near -1,
# where the characteristic function decays slowest and oscillates most
REGIMES = [
    (0.3, -0.7),
    (0.3, 0.5),
    (1.0, -0.7),
    (1.0, 0.5),
    (1.0, -0.95),
    (1.5, -0.95),
    (2.0, -0.9),
]


@pytest.mark.parametrize(
    "days, sigma, rho",
    [(d, s, r) for d, (s, r) in itertools.product([7, 91, 365, 1826, 3652], REGIMES)],
)
def test_matches_quantlib_from_one_week_to_ten_years_into_the_deep_wings(days, sigma, rho):
    v0, kappa, theta, t = 0.04, 1.5, 0.06, days / 365
    strikes = 100 * np.exp(np.array([-4, -2, -1, 0, 1, 2, 4]) * np.sqrt(0.05 * t))
    calls = strikes >= 100  # out of the money: the hard side
    ours = heston_price(100.0, strikes, t, 0.02, 0.01, v0, kappa, theta, sigma, rho, calls)
    ref = [quantlib_price(k, days, v0, kappa, theta, sigma, rho, c) for k, c in zip(strikes, calls)]
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=0, atol=1e-6)


def test_a_surface_evaluates_the_characteristic_function_once_per_expiry_with_the_same_prices():
    expiries = np.array([[0.1], [0.5], [2.0]])
    strikes = np.array([[80.0, 100.0, 120.0], [70.0, 100.0, 140.0], [50.0, 100.0, 200.0]])
    rates = np.array([[0.01], [0.02], [0.03]])
    args = (0.05, 2.0, 0.04, 0.8, -0.6)
    surface = heston_price(100.0, strikes, expiries, rates, 0.0, *args)
    one_by_one = [
        float(heston_price(100.0, k, t, r, 0.0, *args))
        for ks, t, r in zip(strikes, expiries[:, 0], rates[:, 0])
        for k in ks
    ]
    np.testing.assert_allclose(np.asarray(surface).ravel(), one_by_one, rtol=1e-13)


def test_exact_gradient_agrees_with_finite_differences():
    def price(p):
        return heston_price(100.0, 110.0, 0.75, 0.01, 0.0, *p)

    p = np.array([0.05, 2.0, 0.04, 0.8, -0.6])
    grad = np.asarray(jax.grad(price)(p))
    h = 1e-6
    fd = [(price(p + h * e) - price(p - h * e)) / (2 * h) for e in np.eye(5)]
    np.testing.assert_allclose(grad, np.asarray(fd), rtol=1e-6, atol=1e-8)


def test_implied_vol_inverts_black_to_1e10_where_the_price_has_vega():
    rng = np.random.default_rng(0)
    n, forward = 20_000, 100.0
    strikes = forward * np.exp(rng.uniform(-2, 2, n))
    expiries = rng.uniform(1 / 52, 10, n)
    vols = rng.uniform(0.02, 1.5, n)
    calls = rng.random(n) < 0.5
    prices = np.asarray(black_price(forward, strikes, expiries, vols, calls))
    got = np.asarray(implied_vol(prices, forward, strikes, expiries, calls))
    std = vols * np.sqrt(expiries)
    d1 = -np.log(strikes / forward) / std + 0.5 * std
    vega = np.exp(-0.5 * d1**2) / np.sqrt(2 * np.pi) * np.sqrt(expiries)  # per unit forward
    has_vega = vega > 1e-5
    assert has_vega.mean() > 0.9
    np.testing.assert_allclose(got[has_vega], vols[has_vega], rtol=0, atol=1e-10)
    # everywhere else as exact as the rounding of the price allows, or NaN where a price has
    # no vega left at all (it rounds onto its bound)
    found = np.isfinite(got)
    error = np.abs(got - vols) * vega * forward / np.maximum(prices, forward)
    assert np.all(error[found] < 1e-15) and np.all(vega[~found] < 1e-9)


def test_implied_vol_is_nan_outside_the_no_arbitrage_bounds():
    out = implied_vol(np.array([-1.0, 0.0, 100.0, 5.0]), 100.0, 100.0, 1.0)
    assert np.isnan(np.asarray(out)[:3]).all() and np.isfinite(np.asarray(out)[3])
    assert np.isnan(implied_vol(5.0, 100.0, 100.0, 0.0))  # no time, no vol


@pytest.mark.parametrize("call, strike", [(True, 120.0), (False, 90.0), (True, 80.0)])
def test_implied_vol_derivatives_follow_the_implicit_function_theorem(call, strike):
    args = (100.0, strike, 0.5)
    price = float(black_price(*args, 0.27, call))
    grad = jax.grad(lambda p, f, k, t: implied_vol(p, f, k, t, call), argnums=(0, 1, 2, 3))
    h = 1e-6
    fd = [
        (implied_vol(*(x + h * e), call) - implied_vol(*(x - h * e), call)) / (2 * h)
        for x in [np.array([price, *args])]
        for e in np.eye(4)
    ]
    np.testing.assert_allclose(np.array(grad(price, *args)), np.array(fd), rtol=1e-6)
