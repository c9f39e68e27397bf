"""quote_checks, the stream's one program per batch of tolerance checks, against QuantLib."""

import math

import numpy as np
import QuantLib as ql

from engine.model_values import quote_checks


def test_quote_checks_give_each_quote_its_models_vol_and_the_black_price_and_vega_there():
    # rows 0-2: SABR smiles (a forward, no spot); 3-4: an index surface's grid vols with a spot;
    # 5: no model at all
    nan = math.nan
    strike = np.array([1.05, 1.10, 0.95, 90.0, 110.0, 100.0])
    forward = np.array([1.08, 1.08, 1.02, nan, nan, nan])
    expiry = np.array([0.25, 1.0, 0.5, 0.5, 2.0, 1.0])
    alpha = np.array([0.12, 0.09, 0.2, nan, nan, nan])
    beta = np.array([0.5, 1.0, 0.0, nan, nan, nan])
    rho = np.array([-0.3, 0.2, -0.6, nan, nan, nan])
    nu = np.array([0.6, 0.3, 1.1, nan, nan, nan])
    grid = np.array([nan, nan, nan, 0.24, 0.18, nan])
    spot = np.array([nan, nan, nan, 100.0, 100.0, 100.0])
    rate = np.array([nan, nan, nan, 0.03, 0.01, 0.02])
    dividend = np.array([nan, nan, nan, 0.01, 0.02, 0.0])
    call = np.array([False, False, False, False, True, True])

    vol, price, vega = quote_checks(strike, forward, expiry, alpha, beta, rho, nu, grid, spot,
                                    rate, dividend, call)  # fmt: skip

    for i in range(3):  # QuantLib orders nu before rho
        want = ql.sabrVolatility(strike[i], forward[i], expiry[i], alpha[i], beta[i], nu[i], rho[i])
        assert abs(vol[i] - want) < 1e-12
        assert math.isnan(price[i]) and math.isnan(vega[i])  # no spot: nothing to price
    for i in (3, 4):
        assert vol[i] == grid[i]
        fwd = spot[i] * math.exp((rate[i] - dividend[i]) * expiry[i])
        discount = math.exp(-rate[i] * expiry[i])
        kind = ql.Option.Call if call[i] else ql.Option.Put
        black = lambda v: ql.blackFormula(kind, strike[i], fwd, v * math.sqrt(expiry[i]), discount)  # noqa: E731, B023
        h = 1e-5  # QuantLib has no vega function: a central difference of its price
        assert abs(price[i] - black(vol[i])) < 1e-10 * spot[i]
        assert abs(vega[i] - (black(vol[i] + h) - black(vol[i] - h)) / (2 * h)) < 1e-6 * spot[i]
    assert math.isnan(vol[5]) and math.isnan(price[5])  # no model: never within tolerance


def test_quote_checks_of_many_quotes_price_only_the_priced_and_match_short_calls():
    # past ONE_PROGRAM quotes, vols and prices are separate programs (only the priced priced),
    # and past CHUNK the arrays are cut: the numbers are those of short calls all the same
    rng = np.random.default_rng(3)
    n = 9000
    strike = rng.uniform(80.0, 120.0, n)
    sabr = rng.random(n) < 0.5
    alpha = np.where(sabr, 0.1, np.nan)
    args = (strike, np.full(n, 100.0), rng.uniform(0.1, 2.0, n), alpha, np.full(n, 0.5),
            np.full(n, -0.2), np.full(n, 0.5), np.where(sabr, np.nan, 0.2), np.full(n, 100.0),
            np.full(n, 0.01), np.zeros(n), strike > 100.0)  # fmt: skip
    priced = ~sabr & (rng.random(n) < 0.5)
    vol, price, vega = quote_checks(*args, priced=priced)
    assert np.isnan(price[~priced]).all() and np.isnan(vega[~priced]).all()
    tail = slice(8500, n)
    short_vol, short_price, short_vega = quote_checks(*(a[tail] for a in args))
    np.testing.assert_allclose(vol[tail], short_vol, rtol=1e-14)
    mine = priced[tail]
    np.testing.assert_allclose(price[tail][mine], short_price[mine], rtol=1e-13)
    np.testing.assert_allclose(vega[tail][mine], short_vega[mine], rtol=1e-13)
