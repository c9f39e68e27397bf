"""Heston calibration: volstream's batched solver against QuantLib, like for like.

On the same ``--surfaces`` equity index surfaces (10 expiries from two weeks to three years x 10
strikes, vols from random Heston parameters with 0.5% noise, fitted as out-of-the-money prices
with relative errors on both sides) this runs:

* QuantLib's own calibration (``HestonModelHelper`` per option, ``AnalyticHestonEngine``,
  Levenberg-Marquardt, at most 400 steps, tolerance 1e-8; see
  ``bench.quantlib_peer.quantlib_heston_fit``), one surface at a time, **cold** from its
  test-suite start, then **warm** on re-noised surfaces from its own cold solutions;
* volstream ``HestonCalibrator.calibrate_batch`` on all surfaces at once with the same step
  limit and tolerance: **cold** from the same single guess (QuantLib's start as the only start),
  **warm** from the same previous parameters (QuantLib's cold solutions); and, reported
  beside, volstream's default cold fit (three v0 starts each: more work than the peer's);
* single-surface latency, cold and warm; compile time apart from steady state;
* fit quality: SSE of relative price errors (in percent, QuantLib's measure) per surface.

Prints the figures and ratios (both sides' figures beside each) and appends a JSON line to
``bench/results/heston.jsonl``.

    .venv/bin/python bench/heston.py [--surfaces 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quantlib_peer import (
    HESTON_ORDER,
    QUANTLIB_HESTON_START,
    quantlib_heston_fit,
    write_record,
)
from engine.blackscholes import forward_price, implied_vol
from engine.heston import HestonCalibrator, heston_price

jax.config.update("jax_enable_x64", True)

MAX_STEPS, TOL = 400, 1e-8  # QuantLib's EndCriteria(400, ..., 1e-8) in quantlib_heston_fit
DAYS = np.array([14, 30, 60, 91, 182, 273, 365, 547, 730, 1095])
SPOT, RATE, DIVIDEND = 100.0, 0.02, 0.01


def surfaces(n: int, seed: int):
    """``n`` surfaces: (strikes, days, vols) each, from random equity-like Heston parameters."""
    rng = np.random.default_rng(seed)
    days = np.repeat(DAYS, 10)
    t = days / 365
    m = np.tile(np.linspace(-2.0, 1.5, 10), DAYS.size)
    forward = np.asarray(forward_price(SPOT, RATE, DIVIDEND, t))
    out = []
    for _ in range(n):
        p = [
            rng.uniform(*r) for r in ((0.02, 0.08), (1, 4), (0.03, 0.09), (0.3, 1.0), (-0.85, -0.5))
        ]
        strikes = forward * np.exp(m * np.sqrt(p[2] * t))
        prices = heston_price(SPOT, strikes, t, RATE, DIVIDEND, *p) * np.exp(RATE * t)
        vols = np.asarray(implied_vol(prices, forward, strikes, t))
        out.append((strikes, days, vols * (1 + 0.005 * rng.standard_normal(vols.size))))
    return out


def our_sse(params: dict, i: int, strikes, t, market) -> float:
    p = [float(params[n][i]) for n in HESTON_ORDER]
    calls = strikes >= np.asarray(forward_price(SPOT, RATE, DIVIDEND, t))
    model = np.asarray(heston_price(SPOT, strikes, t, RATE, DIVIDEND, *p, calls))
    return float(np.sum((100 * (model / market - 1)) ** 2))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--surfaces", type=int, default=64)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "heston.jsonl"
    )
    args = parser.parse_args(argv)
    cold_set, warm_set = surfaces(args.surfaces, 1), None

    # QuantLib, surface by surface
    t0 = time.perf_counter()
    ql_cold = [
        quantlib_heston_fit(k, d, v, spot=SPOT, rate=RATE, dividend=DIVIDEND)
        for k, d, v in cold_set
    ]
    ql_cold_s = time.perf_counter() - t0
    rng = np.random.default_rng(2)  # the next "tick": same surfaces, fresh noise
    warm_set = [(k, d, v * (1 + 0.002 * rng.standard_normal(v.size))) for k, d, v in cold_set]
    t0 = time.perf_counter()
    ql_warm = [
        quantlib_heston_fit(k, d, v, spot=SPOT, rate=RATE, dividend=DIVIDEND, start=prev[2])
        for (k, d, v), prev in zip(warm_set, ql_cold)
    ]
    ql_warm_s = time.perf_counter() - t0

    def market_data(rows, fits):
        return [
            {
                "spot": SPOT,
                "strikes": k,
                "maturities": d / 365,
                "rate": RATE,
                "dividend": DIVIDEND,
                "target_prices": fit[1],
                "call": k >= np.asarray(forward_price(SPOT, RATE, DIVIDEND, d / 365)),  # OTM
            }
            for (k, d, _), fit in zip(rows, fits)
        ]

    cold_data, warm_data = market_data(cold_set, ql_cold), market_data(warm_set, ql_warm)
    cal = HestonCalibrator(max_steps=MAX_STEPS, tol=TOL, v0_starts=(QUANTLIB_HESTON_START["v0"],))
    for name, value in QUANTLIB_HESTON_START.items():
        cal.parameter_specs[name].init = value
    t0 = time.perf_counter()
    cal.calibrate_batch(cold_data)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    cold = cal.calibrate_batch(cold_data)
    cold_s = time.perf_counter() - t0
    multi = HestonCalibrator(max_steps=MAX_STEPS, tol=TOL)  # the default three v0 starts
    multi.calibrate_batch(cold_data)
    t0 = time.perf_counter()
    multi.calibrate_batch(cold_data)
    multi_s = time.perf_counter() - t0
    init = {n: np.array([f[2][n] for f in ql_cold]) for n in HESTON_ORDER}  # the peer's own
    cal.calibrate_batch(warm_data, init=init)  # compile the warm program's shapes (same)
    t0 = time.perf_counter()
    warm = cal.calibrate_batch(warm_data, init=init)
    warm_s = time.perf_counter() - t0
    one_init = {n: init[n][:1] for n in HESTON_ORDER}
    cal.calibrate_batch(warm_data[:1], init=one_init)
    cal.calibrate_batch(cold_data[:1])
    lat = {}
    for name, call in (
        ("cold", lambda: cal.calibrate_batch(cold_data[:1])),
        ("warm", lambda: cal.calibrate_batch(warm_data[:1], init=one_init)),
    ):
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            call()
            runs.append(time.perf_counter() - t0)
        lat[name] = 1e3 * min(runs)

    n = args.surfaces
    sse = {
        "ours_cold": [
            our_sse(cold.params, i, k, d / 365, dd["target_prices"])
            for i, ((k, d, _), dd) in enumerate(zip(cold_set, cold_data))
        ],
        "ours_warm": [
            our_sse(warm.params, i, k, d / 365, dd["target_prices"])
            for i, ((k, d, _), dd) in enumerate(zip(warm_set, warm_data))
        ],
        "ql_cold": [f[0] for f in ql_cold],
        "ql_warm": [f[0] for f in ql_warm],
    }
    as_good = {
        kind: int(
            np.sum(np.array(sse[f"ours_{kind}"]) <= np.array(sse[f"ql_{kind}"]) * (1 + 1e-6) + 1e-9)
        )
        for kind in ("cold", "warm")
    }
    record = {
        "bench": "heston",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": jax.devices()[0].platform,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "surfaces": n,
        "options_per_surface": int(cold_set[0][0].size),
        "quantlib_surfaces_per_s": {"cold": n / ql_cold_s, "warm": n / ql_warm_s},
        "volstream_surfaces_per_s": {
            "cold": n / cold_s,
            "warm": n / warm_s,
            "cold_three_starts": n / multi_s,
        },
        "ratio": {
            "cold": ql_cold_s / cold_s,
            "warm": ql_warm_s / warm_s,
            "cold_three_starts_vs_one": ql_cold_s / multi_s,
        },
        "compile_s": first - cold_s,
        "latency_ms": lat,
        "converged": {
            "cold": float(np.mean(cold.converged)),
            "warm": float(np.mean(warm.converged)),
        },
        "iterations_median": {
            "cold": float(np.median(cold.iterations)),
            "warm": float(np.median(warm.iterations)),
        },
        "sse_median": {k: float(np.median(v)) for k, v in sse.items()},
        "surfaces_as_good_as_quantlib": as_good,
    }
    print(f"{n} surfaces x {record['options_per_surface']} options, {record['device']}")
    for kind, seconds in (("cold", cold_s), ("warm", warm_s)):
        print(
            f"{kind} (same start): volstream {n / seconds:,.1f} surfaces/s, QuantLib "
            f"{record['quantlib_surfaces_per_s'][kind]:,.1f}/s: {record['ratio'][kind]:.1f}x; "
            f"as good as QuantLib on {as_good[kind]}/{n}"
        )
    print(
        f"cold, volstream's default three v0 starts against QuantLib's one: {n / multi_s:,.1f} "
        f"surfaces/s against {n / ql_cold_s:,.1f}/s: {ql_cold_s / multi_s:.1f}x"
    )
    print(
        f"latency (one surface): cold {lat['cold']:.1f} ms, warm {lat['warm']:.1f} ms; compile {record['compile_s']:.1f} s"
    )
    write_record(args.out, record)
    return record


if __name__ == "__main__":
    main()
