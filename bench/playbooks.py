"""The playbooks on realistic sizes, against QuantLib where it has the model, in one run.

* **Joint multi-asset** (3 indices x 100 options: 10 expiries x 10 strikes each, one true rho
  shared, 20 bp of vol noise): volstream's joint fit with the block Jacobian against the same
  solve with the dense Jacobian (the same LM from the same start, the individual fits: a
  like-for-like ratio of the Jacobian's structure); QuantLib has no joint Heston calibration,
  so its three individual fits are timed beside for context only.
* **Time-dependent term structure** (theta on 5 segments, 0-0.5-1-3-5-10 years; 12 expiries
  to 8 years x 9 strikes from a piecewise model, 20 bp of noise): volstream's
  ``TimeDependentCalibrator`` against QuantLib's ``PiecewiseTimeDependentHestonModel`` with
  ``AnalyticPTDHestonEngine``, like for like: the same options, implied-vol errors, the same
  start (every segment at QuantLib's test-suite guess), Levenberg-Marquardt to 1e-8 and at
  most 400 steps, no penalty. Figures: seconds (steady state; the first call's compile apart)
  and the SSE of vol errors in vol points, each side's own.
* **SLV** on QuantLib's own SLV calibration test (flat local vol 0.3, a given Heston part, 14
  options 3-12 months; see ``bench.quantlib_peer.SLVCase``): volstream's particle leverage
  against QuantLib's ``HestonSLVMCModel``, both repriced by the same QuantLib
  ``FdHestonVanillaEngine`` (the test's grid) and scored as its test does (|price error| /
  vega, bp: mean and worst). Like for like at QuantLib's test budget (91 steps a year, 40,000
  paths; QuantLib's Sobol draws and 400 bins) and at volstream's defaults (365 steps a year,
  2^18 paths); four seeds each. Seconds are the leverage calibration alone, steady state.
* **SLV where it is needed most** (``bench.quantlib_peer.SkewedSLVCase``): a market whose
  skew and curvature the Heston part lacks (its vol of vol half the market's, its
  correlation less than half as negative), 36 options 30-365 days. Both leverages are fitted
  to the same local vol, volstream's Dupire on its SVI fit of the quotes, tabulated for
  QuantLib; the same FD repricing scores both against the market.

Prints every ratio with both sides' figures and appends a JSON line to
``bench/results/playbooks.jsonl``.

    .venv/bin/python bench/playbooks.py
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quantlib_peer import (
    SkewedSLVCase,
    SLVCase,
    quantlib_heston_fit,
    slv_leverage_surface,
    write_record,
)
from engine.blackscholes import implied_vol
from engine.heston import HestonCalibrator, TimeDependentCalibrator, TimeSegment, heston_price
from engine.heston.piecewise import ptd_heston_price
from engine.joint import AssetClassSpec, CrossAssetCalibrator
from engine.slv import SLVCalibrator

jax.config.update("jax_enable_x64", True)

RESULTS = Path(__file__).with_name("results") / "playbooks.jsonl"
START = {"v0": 0.1, "kappa": 1.0, "theta": 0.1, "sigma": 0.5, "rho": -0.5}  # QuantLib's guess
RATE = 0.02


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    """Best of ``repeat`` seconds (after one call that compiles) and the last result."""
    out = fn()
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def vol_surface(days, strikes_per, price, seed: int, spot: float = 100.0) -> dict:
    t = np.repeat(np.asarray(days) / 365.0, strikes_per)
    k = spot * np.exp(np.tile(np.linspace(-0.35, 0.35, strikes_per), len(days)) * np.sqrt(t))
    forward = spot * np.exp(RATE * t)
    calls = k >= forward
    undiscounted = np.asarray(price(spot, k, t, calls)) * np.exp(RATE * t)
    vols = np.array(implied_vol(undiscounted, forward, k, t, calls))
    vols += 0.002 * np.random.default_rng(seed).standard_normal(t.size)
    return {"spot": spot, "strikes": k, "maturities": t, "rate": RATE, "target_vols": vols}


def joint() -> dict:
    days = [14, 30, 60, 91, 182, 273, 365, 547, 730, 1095]
    own = {
        "SPX": (0.04, 2.0, 0.05, 0.5),
        "SX5E": (0.05, 1.2, 0.06, 0.7),
        "NKY": (0.03, 3.0, 0.04, 0.4),
    }
    data = {
        name: vol_surface(days, 10, lambda s, k, t, c, p=p: heston_price(s, k, t, RATE, 0.0, *p, -0.65, c), i)
        for i, (name, p) in enumerate(own.items())
    }  # fmt: skip
    specs = [AssetClassSpec(n, 1.0, ["rho"]) for n in data]
    block, dense = CrossAssetCalibrator(specs), CrossAssetCalibrator(specs, block_jacobian=False)
    individual = block.calibrate_individually(data)
    t0 = time.perf_counter()
    block.calibrate(data, individual)
    compile_block = time.perf_counter() - t0
    t0 = time.perf_counter()
    dense.calibrate(data, individual)
    compile_dense = time.perf_counter() - t0
    s_block, r_block = timed(lambda: block.calibrate(data, individual))
    s_dense, r_dense = timed(lambda: dense.calibrate(data, individual))
    s_ind, _ = timed(lambda: block.calibrate_individually(data))
    ql = []
    for d in data.values():  # context: QuantLib's individual fits, from its guess
        t0 = time.perf_counter()
        days_each = np.round(d["maturities"] * 365).astype(int)
        quantlib_heston_fit(
            d["strikes"], days_each, d["target_vols"], spot=d["spot"], rate=RATE, dividend=0.0
        )
        ql.append(time.perf_counter() - t0)
    rho = r_block.params["SPX"]["rho"]
    print(
        f"joint, 3 indices x 100 options, shared rho (true -0.65; fitted {rho:.4f}): "
        f"block Jacobian {1e3 * s_block:.1f} ms, dense {1e3 * s_dense:.1f} ms: "
        f"{s_dense / s_block:.2f}x ({r_block.iterations} and {r_dense.iterations} LM steps; "
        f"compile {compile_block:.1f} s and {compile_dense:.1f} s); the three individual "
        f"fits, one batch: {1e3 * s_ind:.0f} ms; QuantLib's three individual fits (context, "
        f"not the same problem): {1e3 * sum(ql):.0f} ms"
    )
    return {
        "joint_block_ms": 1e3 * s_block,
        "joint_dense_ms": 1e3 * s_dense,
        "joint_block_vs_dense": s_dense / s_block,
        "joint_rho": rho,
        "joint_same_optimum": abs(r_block.loss / r_dense.loss - 1) < 1e-8,
        "joint_individual_batch_ms": 1e3 * s_ind,
        "quantlib_three_individual_ms": 1e3 * sum(ql),
    }


def term_structure() -> dict:
    import QuantLib as ql

    ends = [0.5, 1.0, 3.0, 5.0, 10.0]
    starts = [0.0, *ends[:-1]]
    theta = [0.03, 0.04, 0.05, 0.055, 0.06]
    days = [30, 61, 91, 182, 273, 365, 547, 730, 1095, 1460, 2190, 2920]

    def price(s, k, t, c):
        return ptd_heston_price(s, k, t, RATE, 0.0, 0.04, starts, [1.5] * 5, theta, [0.5] * 5,
                                [-0.7] * 5, c)  # fmt: skip

    data = vol_surface(days, 9, price, seed=7)
    segments = [TimeSegment(a, b, ["theta"]) for a, b in zip(starts, ends)]
    base = HestonCalibrator(max_steps=400, tol=1e-8)
    ours = TimeDependentCalibrator(segments, base)
    t0 = time.perf_counter()
    ours.calibrate(data, init=START)
    compile_s = time.perf_counter() - t0
    s_ours, fit = timed(lambda: ours.calibrate(data, init=START))
    sse_ours = float(np.sum((100 * ours.vol_errors_of(fit, data)) ** 2))

    today = ql.Date(5, ql.July, 2002)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    curve = ql.YieldTermStructureHandle(ql.FlatForward(today, RATE, dc))
    divs = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc))
    spot = ql.QuoteHandle(ql.SimpleQuote(100.0))

    def quantlib() -> float:
        theta_p = ql.PiecewiseConstantParameter(ends[:-1], ql.PositiveConstraint())
        for i in range(5):
            theta_p.setParam(i, START["theta"])
        model = ql.PiecewiseTimeDependentHestonModel(
            curve, divs, spot, START["v0"], theta_p,
            ql.ConstantParameter(START["kappa"], ql.PositiveConstraint()),
            ql.ConstantParameter(START["sigma"], ql.PositiveConstraint()),
            ql.ConstantParameter(START["rho"], ql.BoundaryConstraint(-1.0, 1.0)),
            ql.TimeGrid(ends),
        )  # fmt: skip
        engine = ql.AnalyticPTDHestonEngine(model)
        helpers = []
        for k, t, v in zip(data["strikes"], data["maturities"], data["target_vols"]):
            days_t = round(float(t) * 365)
            helper = ql.HestonModelHelper(
                ql.Period(days_t, ql.Days), ql.NullCalendar(), 100.0, float(k),
                ql.QuoteHandle(ql.SimpleQuote(float(v))), curve, divs,
                ql.BlackCalibrationHelper.ImpliedVolError,
            )  # fmt: skip
            helper.setPricingEngine(engine)
            helpers.append(helper)
        model.calibrate(
            helpers, ql.LevenbergMarquardt(1e-8, 1e-8, 1e-8),
            ql.EndCriteria(400, 40, 1e-8, 1e-8, 1e-8),
        )  # fmt: skip
        return sum((100 * h.calibrationError()) ** 2 for h in helpers)

    s_ql, sse_ql = timed(quantlib, repeat=1)
    print(
        f"term structure, theta on 5 segments, {data['strikes'].size} options, same start and "
        f"LM 1e-8/400: volstream {1e3 * s_ours:.0f} ms (SSE {sse_ours:.4f} vol pt^2; compile "
        f"{compile_s:.1f} s), QuantLib PTD {1e3 * s_ql:.0f} ms (SSE {sse_ql:.4f}): "
        f"{s_ql / s_ours:.1f}x; fitted theta {np.round(fit.params['theta'], 4).tolist()} "
        f"(true {theta})"
    )
    return {
        "ptd_ms": 1e3 * s_ours,
        "ptd_compile_s": compile_s,
        "ptd_sse": sse_ours,
        "quantlib_ptd_ms": 1e3 * s_ql,
        "quantlib_ptd_sse": sse_ql,
        "ptd_vs_quantlib": s_ql / s_ours,
        "ptd_converged": bool(fit.converged),
    }


SLV_SEEDS = (0, 1, 2, 3)
QUANTLIB_SEED = 1234  # its test's (its Sobol draws give the same figures whatever the seed)
SLV_BUDGETS = (("test", 91, 40_000), ("half", 365, 2**17), ("default", 365, 2**18))


def slv(case, name: str, title: str) -> dict:
    """volstream's leverage against QuantLib's HestonSLVMCModel on ``case``, at each of
    :data:`SLV_BUDGETS` (QuantLib skips "half": ~25-30 s, the other two suffice), both
    repriced by the case's QuantLib FD measure; keys ``{name}_{budget}_...``."""
    out = {}
    for label, steps, paths in SLV_BUDGETS:
        ours, fits = [], []
        for seed in SLV_SEEDS:
            calibrator = SLVCalibrator(
                heston_params=case.heston, steps_per_year=steps, paths=paths, seed=seed
            )
            seconds, result = timed(lambda c=calibrator: case.fit(c), repeat=1)
            errors = case.fd_errors(slv_leverage_surface(result, case.today, case.dc))
            ours.append((seconds, errors.mean(), errors.max()))
            fits.append(result)
        a = np.array(ours)
        ours_text = (
            f"volstream {a[:, 0].mean():.2f} s, mean {a[:, 1].mean():.2f} bp (seeds "
            f"{np.round(a[:, 1], 2).tolist()}), worst {a[:, 2].mean():.2f} bp "
            f"({np.round(a[:, 2], 1).tolist()})"
        )
        out |= {
            f"{name}_{label}_seconds": a[:, 0].mean(),
            f"{name}_{label}_mean_bp": a[:, 1].tolist(),
            f"{name}_{label}_worst_bp": a[:, 2].tolist(),
        }
        head = f"{title}, {steps} steps a year, {paths:,} paths"
        if label == "half":
            print(f"{head}: {ours_text}")
            continue
        t0 = time.perf_counter()
        leverage = case.quantlib_leverage(fits[0], steps_per_year=steps, paths=paths,
                                          seed=QUANTLIB_SEED)  # fmt: skip
        seconds = time.perf_counter() - t0
        errors = case.fd_errors(leverage)
        print(
            f"{head}, both repriced by QuantLib's FD engine: {ours_text}; QuantLib "
            f"HestonSLVMCModel {seconds:.2f} s, mean {errors.mean():.2f} bp, worst "
            f"{errors.max():.2f} bp: {seconds / a[:, 0].mean():.1f}x the time"
        )
        out |= {
            f"quantlib_{name}_{label}_seconds": seconds,
            f"quantlib_{name}_{label}_mean_bp": errors.mean(),
            f"quantlib_{name}_{label}_worst_bp": errors.max(),
        }
    return out


def main() -> dict:
    record = {
        "bench": "playbooks",
        "date": time.strftime("%Y-%m-%d"),
        "device": f"{jax.devices()[0].platform} ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores)",
    }
    record |= joint()
    record |= term_structure()
    record |= slv(SLVCase(), "slv", "SLV, QuantLib's test case")
    record |= slv(SkewedSLVCase(), "slv_skewed", "SLV, a skew its Heston part lacks")
    write_record(RESULTS, record)
    return record


if __name__ == "__main__":
    main()
