"""Piecewise time-dependent Heston: prices against QuantLib's AnalyticPTDHestonEngine, the
DAX calibration against QuantLib's own, segments, smoothness and calendar-arbitrage gates."""

import math
from dataclasses import replace

import numpy as np
import pytest

from engine.heston import HestonCalibrator, heston_price
from engine.heston.piecewise import TimeSegment, ptd_heston_price
from engine.heston.time_dependent import (
    SmoothnessRegularization,
    TimeDependentCalibrator,
    check_calendar_arbitrage,
    fitted_segments,
)
from tests.engine.test_heston_calibrator import dax_market

TIMES = [0.5, 1.0, 2.0]  # segment boundaries
SEGMENTED = {
    "kappa": [3.0, 1.5, 2.5, 1.0],
    "theta": [0.04, 0.06, 0.09, 0.05],
    "sigma": [0.6, 0.9, 0.4, 0.7],
    "rho": [-0.7, -0.5, -0.8, -0.3],
}


def _ql_ptd_model(ql, curve, dividends, spot, v0, times, values):
    def piecewise(vals, constraint):
        p = ql.PiecewiseConstantParameter(times, constraint)
        for i, v in enumerate(vals):
            p.setParam(i, v)
        return p

    positive = ql.PositiveConstraint()
    return ql.PiecewiseTimeDependentHestonModel(
        curve, dividends, ql.QuoteHandle(ql.SimpleQuote(spot)), v0,
        piecewise(values["theta"], positive), piecewise(values["kappa"], positive),
        piecewise(values["sigma"], positive),
        piecewise(values["rho"], ql.BoundaryConstraint(-1.0, 1.0)),
        ql.TimeGrid([*times, 10.0]),
    )  # fmt: skip


def test_prices_equal_quantlibs_piecewise_engine_across_segments():
    import QuantLib as ql

    today = ql.Date(5, ql.July, 2002)
    ql.Settings.instance().evaluationDate = today
    dc, r, q, spot, v0 = ql.Actual365Fixed(), 0.03, 0.01, 100.0, 0.05
    curve = ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc))
    divs = ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc))
    model = _ql_ptd_model(ql, curve, divs, spot, v0, TIMES, SEGMENTED)
    engine = ql.AnalyticPTDHestonEngine(model, 1e-12, 100000)  # adaptive Gauss-Lobatto
    strikes, worst = [60.0, 80.0, 100.0, 120.0, 150.0], 0.0
    for days in (30, 182, 300, 365, 500, 730, 1500):  # inside, at and past the boundaries
        maturity = today + days
        t = dc.yearFraction(today, maturity)
        for call in (True, False):
            kind = ql.Option.Call if call else ql.Option.Put
            theirs = []
            for k in strikes:
                option = ql.VanillaOption(
                    ql.PlainVanillaPayoff(kind, k), ql.EuropeanExercise(maturity)
                )
                option.setPricingEngine(engine)
                theirs.append(option.NPV())
            ours = ptd_heston_price(
                spot, strikes, t, r, q, v0, [0.0, *TIMES], *(SEGMENTED[n] for n in
                ("kappa", "theta", "sigma", "rho")), call,
            )  # fmt: skip
            worst = max(worst, float(np.max(np.abs(np.asarray(ours) - theirs))))
    assert worst < 1e-8  # measured: 2e-11 on 1,024 nodes; the default 512


def test_equal_segments_are_plain_heston():
    k = np.array([70.0, 90.0, 100.0, 110.0, 140.0])
    ptd = ptd_heston_price(100.0, k, 1.3, 0.02, 0.01, 0.05, [0.0, 0.5, 1.0], [2.0] * 3,
                           [0.05] * 3, [0.5] * 3, [-0.6] * 3)  # fmt: skip
    plain = heston_price(100.0, k, 1.3, 0.02, 0.01, 0.05, 2.0, 0.05, 0.5, -0.6)
    np.testing.assert_allclose(ptd, plain, rtol=0, atol=1e-12)


def test_quantlibs_dax_time_dependent_calibration_is_matched_from_its_start():
    # QuantLib's testDAXCalibrationOfTimeDependentModel: kappa piecewise on [0, 0.25),
    # [0.25, 10); theta, sigma, rho constant; every parameter, v0 too, fitted from its start
    import QuantLib as ql

    market = dax_market()
    data, spot = market.data, market.data["spot"]
    start = {"v0": 0.1, "kappa": 10.0, "theta": 0.1, "sigma": 0.5, "rho": -0.5}
    kappa = ql.PiecewiseConstantParameter([0.25], ql.PositiveConstraint())
    for i in range(2):
        kappa.setParam(i, start["kappa"])
    model = ql.PiecewiseTimeDependentHestonModel(
        market.curve, market.dividends, ql.QuoteHandle(ql.SimpleQuote(spot)), start["v0"],
        ql.ConstantParameter(start["theta"], ql.PositiveConstraint()), kappa,
        ql.ConstantParameter(start["sigma"], ql.PositiveConstraint()),
        ql.ConstantParameter(start["rho"], ql.BoundaryConstraint(-1.0, 1.0)),
        ql.TimeGrid([0.25, 10.0]),
    )  # fmt: skip
    helpers = market.helpers(ql.AnalyticPTDHestonEngine(model))
    model.calibrate(
        helpers, ql.LevenbergMarquardt(1e-8, 1e-8, 1e-8), ql.EndCriteria(400, 40, 1e-8, 1e-8, 1e-8)
    )
    ql_sse = sum((100 * h.calibrationError()) ** 2 for h in helpers)
    assert ql_sse == pytest.approx(74.4, abs=1.0)  # QuantLib's own expectation

    base = HestonCalibrator()  # QuantLib's constraints: positive, no upper bound
    for name in ("kappa", "theta", "sigma"):
        base.parameter_specs[name] = replace(base.parameter_specs[name], upper=math.inf)
    segments = [TimeSegment(0.0, 0.25, ["kappa"]), TimeSegment(0.25, 10.0, ["kappa"])]
    res = TimeDependentCalibrator(segments, base).calibrate(data, init=start)
    ours_sse = float(np.sum((100 * res.residuals) ** 2))  # vol errors, as QuantLib's
    # measured: 74.4730968 against QuantLib's 74.4730967 (the same optimum, to 1e-9)
    assert bool(res.converged) and ours_sse <= ql_sse * (1 + 1e-7), (ours_sse, ql_sse)
    assert res.params["kappa"][0] == pytest.approx(model.kappa(0.1), rel=1e-3)
    assert res.params["kappa"][1] == pytest.approx(model.kappa(0.5), rel=1e-3)
    assert float(res.params["v0"]) == pytest.approx(model.v0(), rel=1e-4)


SEGMENTS = [TimeSegment(0.0, 0.5, ["theta"]), TimeSegment(0.5, 2.0, ["theta"])]
THETA = [0.04, 0.09]


def _term_structure_surface():
    k, t = np.tile([80.0, 90, 100, 110, 120], 4), np.repeat([0.25, 0.5, 1.0, 1.5], 5)
    prices = ptd_heston_price(100.0, k, t, 0.0, 0.0, 0.04, [0.0, 0.5], [2.0] * 2, THETA,
                              [0.3] * 2, [-0.7] * 2)  # fmt: skip
    return {"spot": 100.0, "strikes": k, "maturities": t, "target_prices": np.asarray(prices)}


def test_a_segmented_theta_is_recovered_and_its_jump_fails_the_smoothness_gate():
    data = _term_structure_surface()
    free = TimeDependentCalibrator(SEGMENTS).calibrate(data)
    np.testing.assert_allclose(free.params["theta"], THETA, rtol=1e-5)
    verdicts = free.gate_verdicts()
    assert verdicts["smoothness"] == "fail"  # 0.04 -> 0.09: a 125% jump
    assert verdicts["calendar"] == verdicts["price_error"] == verdicts["feller"] == "pass"
    assert free.diagnostics["max_jump"] == pytest.approx(1.25, rel=1e-4)
    (first, second) = fitted_segments(free, SEGMENTS)
    assert first.value("theta") == pytest.approx(0.04, rel=1e-5) and first.value("v0") > 0
    assert second.value("theta") == pytest.approx(0.09, rel=1e-5)

    smooth = HestonCalibrator(penalty_fn=SmoothnessRegularization(SEGMENTS, weight=50.0))
    held = TimeDependentCalibrator(SEGMENTS, smooth).calibrate(data)
    assert held.diagnostics["max_jump"] < 0.3 and held.gate_verdicts()["smoothness"] == "pass"
    assert held.diagnostics["penalty"] > 0 and held.rmse > free.rmse  # fit traded for smoothness


def test_segments_that_cannot_be_read_one_way_are_refused():
    with pytest.raises(ValueError, match="variance at time 0"):
        TimeSegment(0.0, 0.5, ["theta", "v0"])
    with pytest.raises(ValueError, match="must meet"):
        TimeDependentCalibrator([TimeSegment(0.0, 0.5), TimeSegment(0.6, 1.0)])
    with pytest.raises(ValueError, match="same parameters"):
        TimeDependentCalibrator([TimeSegment(0.0, 0.5), TimeSegment(0.5, 1.0, ["kappa"])])
    with pytest.raises(ValueError, match="start at 0"):
        TimeDependentCalibrator([TimeSegment(0.1, 0.5)])
    with pytest.raises(ValueError, match=r"options \[15, 16, 17, 18, 19\] mature after"):
        TimeDependentCalibrator([TimeSegment(0.0, 1.0)]).calibrate(_term_structure_surface())


def test_calendar_arbitrage_check_passes_a_model_and_catches_a_falling_variance():
    fit = TimeDependentCalibrator(SEGMENTS).calibrate(_term_structure_surface())
    report = check_calendar_arbitrage(fit, SEGMENTS)
    assert report.passed and report.min_forward_variance > 0
    assert np.all(np.diff(report.total_variance, axis=0) >= 0)
    # a later segment whose variance level is negative: total variance falls with maturity
    broken = replace(fit, params=fit.params | {"theta": np.array([0.04, -0.03])})
    bad = check_calendar_arbitrage(broken, SEGMENTS)
    assert not bad.passed and bad.worst_decrease < 0 and bad.at[2] > 0.5


def test_identifiability_counts_each_segment_and_sees_one_no_quote_reaches():
    """One segment is plain Heston: the same metrics as HestonCalibrator's. Five segments of
    theta on quotes to one year: the segments past a year are pinned by no quote (no price
    depends on them) and the condition number says so."""
    k, t = np.tile([80.0, 90, 100, 110, 120], 4), np.repeat([0.25, 0.5, 0.75, 1.0], 5)
    plain = {"v0": 0.04, "kappa": 2.0, "theta": 0.05, "sigma": 0.5, "rho": -0.7}
    prices = np.asarray(heston_price(100.0, k, t, 0.0, 0.0, *plain.values()))
    data = {"spot": 100.0, "strikes": k, "maturities": t, "target_prices": prices}
    one = TimeDependentCalibrator([TimeSegment(0.0, 1.0, ["theta"])]).identifiability(plain, data)
    base = HestonCalibrator(nodes=512).identifiability(plain, data)
    assert one.condition_number == pytest.approx(float(base.condition_number), rel=1e-6)
    np.testing.assert_allclose(one.std_errors, base.std_errors, rtol=1e-5, atol=1e-12)
    ends = [0.25, 0.5, 1.0, 2.0, 3.0]
    segments = [TimeSegment(a, b, ["theta"]) for a, b in zip([0.0, *ends[:-1]], ends)]
    five = TimeDependentCalibrator(segments).identifiability(plain, data)
    assert five.std_errors.shape == (4 + 5,)  # v0, kappa, five thetas, sigma, rho
    assert not np.isfinite(five.condition_number) or five.condition_number > 1e8
