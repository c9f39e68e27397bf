"""SABR calibration throughput and latency: volstream's batched solver against QuantLib, like
for like.

On the same smiles (realistic FX parameters, beta = 0.5 fixed, equal weights), with the same
max steps (500) and tolerance (1e-8), each side runs:

* **cold** from the *same* guess: volstream's own cold start (alpha, rho and nu read from the
  smile's level, skew and curvature, ``SABRCalibrator.cold_starts``), handed to QuantLib's
  ``SABRInterpolation`` as its start;
* **warm** from the *same* previous parameters: the true ones perturbed by ~1% (the streaming
  case).

QuantLib runs one smile at a time in one process; its rate times the core count is the ideal
scaling on this machine (the headline peer), and a process pool's measured rate is reported
beside it. volstream runs ``calibrate_batch`` with every gate, and fit only; the same batched
problem with ``optimistix.LevenbergMarquardt`` is the solver's own peer. Single-smile latency,
warm, both sides. Compile time is reported apart from steady state.

Prints a table and every ratio with both figures, and appends one JSON line to
``bench/results/sabr.jsonl``.

    .venv/bin/python bench/sabr.py [--smiles 4096] [--strikes 15] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import jax
import numpy as np
import QuantLib as ql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quantlib_peer import quantlib_sabr_fit, write_record
from bench.smiles import fx_smiles
from engine.sabr import SABRCalibrator

RMSE_OK = 0.5e-4  # 0.5 bp of vol
BETA = 0.5
MAX_STEPS, TOL = 500, 1e-8


def _quantlib_fit(args) -> tuple[float, float]:
    """Fit one smile with QuantLib from its given start; returns (rmse, seconds)."""
    forward, expiry, strikes, vols, start = args
    begin = time.perf_counter()
    _, fitted = quantlib_sabr_fit(
        forward, expiry, strikes, vols, beta=BETA, max_steps=MAX_STEPS, tol=TOL, start=start
    )
    elapsed = time.perf_counter() - begin
    return float(np.sqrt(np.mean((fitted - vols) ** 2))), elapsed


def _quantlib_chunk(chunk):
    return [_quantlib_fit(a) for a in chunk]


def quantlib_run(d: dict, starts: dict, workers: int) -> dict:
    """QuantLib one smile at a time from ``starts`` (name -> (B,)): in one process, and in a
    pool of ``workers`` processes."""
    start = list(zip(starts["alpha"], starts["rho"], starts["nu"]))
    jobs = list(zip(d["forward"], d["expiry"], d["strikes"], d["vols"], start))
    begin = time.perf_counter()
    single = _quantlib_chunk(jobs)
    single_rate = len(jobs) / (time.perf_counter() - begin)
    chunks = [jobs[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(_quantlib_chunk, [c[:64] for c in chunks]))  # start and warm the workers
        begin = time.perf_counter()
        list(pool.map(_quantlib_chunk, chunks))
        wall = time.perf_counter() - begin
    rmse = np.array([r[0] for r in single])
    return {
        "pool_smiles_per_s": len(jobs) / wall,  # measured on all cores
        "single_process_smiles_per_s": single_rate,
        "ideal_scaled_smiles_per_s": single_rate * workers,  # one process per core, no loss
        "latency_ms": 1e3 * statistics.median(s for _, s in single),
        "fitted_fraction": float(np.mean(rmse < RMSE_OK)),
        "workers": workers,
    }


def _timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def volstream_run(
    d: dict, warm_init: dict, repeat: int, optimizer: str = "lm", gates: bool = True
) -> dict:
    cal = SABRCalibrator(beta=BETA, max_steps=MAX_STEPS, tol=TOL, optimizer=optimizer)
    n = len(d["forward"])

    def cold():
        return cal.calibrate_batch(d["forward"], d["expiry"], d["strikes"], d["vols"], gates=gates)

    def warm():
        return cal.calibrate_batch(
            d["forward"], d["expiry"], d["strikes"], d["vols"], init=warm_init, gates=gates
        )

    start = time.perf_counter()
    cold()
    first = time.perf_counter() - start
    t_cold, r_cold = _timed(cold, repeat)
    warm()  # same program as cold: no new compile
    t_warm, r_warm = _timed(warm, repeat)
    return {
        "compile_s": max(first - t_cold, 0.0),
        "cold_smiles_per_s": n / t_cold,
        "warm_smiles_per_s": n / t_warm,
        "cold_fitted_fraction": float(np.mean(r_cold.converged & (r_cold.rmse < RMSE_OK))),
        "warm_fitted_fraction": float(np.mean(r_warm.converged & (r_warm.rmse < RMSE_OK))),
        "cold_iterations_mean": float(np.mean(r_cold.iterations)),
        "warm_iterations_mean": float(np.mean(r_warm.iterations)),
    }


def latency_ms(d: dict, warm_init: dict, repeat: int = 50) -> float:
    cal = SABRCalibrator(beta=BETA, max_steps=MAX_STEPS, tol=TOL)
    args = (d["forward"][:1], d["expiry"][:1], d["strikes"][:1], d["vols"][:1])
    init = {k: v[:1] for k, v in warm_init.items()}
    cal.calibrate_batch(*args, init=init)
    t, _ = _timed(lambda: cal.calibrate_batch(*args, init=init), repeat)
    return 1e3 * t


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smiles", type=int, default=4096, help="number of smiles (default 4096)")
    parser.add_argument("--strikes", type=int, default=15, help="strikes per smile (default 15)")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (median)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="QuantLib processes")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "sabr.jsonl"
    )
    args = parser.parse_args(argv)

    d = fx_smiles(args.smiles, n_strikes=args.strikes, beta=BETA, seed=2026)
    rng = np.random.default_rng(7)
    p = d["params"]
    warm_init = {
        "alpha": p["alpha"] * (1 + 0.01 * rng.standard_normal(args.smiles)),
        "rho": np.clip(p["rho"] + 0.01 * rng.standard_normal(args.smiles), -0.99, 0.99),
        "nu": p["nu"] * (1 + 0.01 * rng.standard_normal(args.smiles)),
    }
    cold_init = SABRCalibrator(beta=BETA).cold_starts(
        d["forward"], d["expiry"], d["strikes"], d["vols"]
    )
    device = jax.devices()[0]
    print(
        f"device: {device.platform} ({device.device_kind}), {os.cpu_count()} cores; "
        f"{args.smiles} smiles x {args.strikes} strikes; max_steps {MAX_STEPS}, tol {TOL}",
        flush=True,
    )

    qlib = {
        "cold": quantlib_run(d, cold_init, args.workers),
        "warm": quantlib_run(d, warm_init, args.workers),
    }
    for kind, q in qlib.items():
        print(
            f"QuantLib SABRInterpolation {kind}: {q['single_process_smiles_per_s']:,.0f} smiles/s "
            f"in one process, {q['pool_smiles_per_s']:,.0f}/s measured on {args.workers} "
            f"processes; latency {q['latency_ms']:.3f} ms",
            flush=True,
        )
    ours = volstream_run(d, warm_init, args.repeat)
    fit_only = volstream_run(d, warm_init, args.repeat, gates=False)
    optx = volstream_run(
        d, warm_init, max(2, args.repeat // 2), optimizer="optimistix", gates=False
    )
    ours["latency_ms"] = latency_ms(d, warm_init)

    ideal = {k: q["ideal_scaled_smiles_per_s"] for k, q in qlib.items()}
    pool = {k: q["pool_smiles_per_s"] for k, q in qlib.items()}
    rows = [
        (f"QuantLib x{args.workers} ideal", ideal["cold"], ideal["warm"], qlib["warm"]["fitted_fraction"]),
        ("QuantLib (process pool)", pool["cold"], pool["warm"], qlib["warm"]["fitted_fraction"]),
        ("volstream LM + gates", ours["cold_smiles_per_s"], ours["warm_smiles_per_s"], ours["warm_fitted_fraction"]),
        ("volstream LM fit only", fit_only["cold_smiles_per_s"], fit_only["warm_smiles_per_s"], fit_only["warm_fitted_fraction"]),
        ("optimistix LM fit only", optx["cold_smiles_per_s"], optx["warm_smiles_per_s"], optx["warm_fitted_fraction"]),
    ]  # fmt: skip
    print(f"\n{'':26}{'cold smiles/s':>15}{'warm smiles/s':>15}{'< 0.5bp':>10}")
    for name, cold, warm, frac in rows:
        print(f"{name:26}{cold:>15,.0f}{warm:>15,.0f}{frac:>10.2%}")
    pairs = {
        "cold_gates_vs_quantlib_ideal": (ours["cold_smiles_per_s"], ideal["cold"]),
        "warm_gates_vs_quantlib_ideal": (ours["warm_smiles_per_s"], ideal["warm"]),
        "cold_gates_vs_quantlib_pool": (ours["cold_smiles_per_s"], pool["cold"]),
        "warm_gates_vs_quantlib_pool": (ours["warm_smiles_per_s"], pool["warm"]),
        "cold_fit_only_vs_quantlib_ideal": (fit_only["cold_smiles_per_s"], ideal["cold"]),
        "warm_fit_only_vs_quantlib_ideal": (fit_only["warm_smiles_per_s"], ideal["warm"]),
        "lm_vs_optimistix_warm": (fit_only["warm_smiles_per_s"], optx["warm_smiles_per_s"]),
        "lm_vs_optimistix_cold": (fit_only["cold_smiles_per_s"], optx["cold_smiles_per_s"]),
        "warm_latency_quantlib_over_ours": (qlib["warm"]["latency_ms"], ours["latency_ms"]),
    }
    ratio = {k: a / b for k, (a, b) in pairs.items()}
    print(
        f"\ncompile (cold, once): {ours['compile_s']:.2f} s; mean iterations cold "
        f"{ours['cold_iterations_mean']:.1f}, warm {ours['warm_iterations_mean']:.1f}"
    )
    print(
        f"single smile latency, warm: volstream {ours['latency_ms']:.3f} ms (with gates), "
        f"QuantLib {qlib['warm']['latency_ms']:.3f} ms"
    )
    print("ratios (ours / peer, both figures):")
    for k, (a, b) in pairs.items():
        print(f"  {k:38} {ratio[k]:6.2f}x  ({a:,.3f} / {b:,.3f})")

    record = {
        "bench": "sabr",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": f"{device.platform}:{device.device_kind}",
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "smiles": args.smiles,
        "strikes": args.strikes,
        "max_steps": MAX_STEPS,
        "tol": TOL,
        "quantlib": qlib,
        "volstream": ours,
        "volstream_fit_only": fit_only,
        "optimistix_fit_only": optx,
        "ratios": ratio,
        "versions": {"jax": jax.__version__, "QuantLib": ql.__version__},
    }
    write_record(args.out, record)
    return record


if __name__ == "__main__":
    main()
