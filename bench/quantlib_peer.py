"""The QuantLib peer of the benchmarks and tests: one smile at a time, and the results file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import QuantLib as ql

__all__ = ["quantlib_sabr_fit", "write_record"]


def quantlib_sabr_fit(forward, expiry, strikes, vols, *, beta=0.5, max_steps=500, tol=1e-8):
    """Fit one smile with ``SABRInterpolation`` (LM, beta fixed, equal weights, ATM-based alpha
    guess, nu 0.5, rho 0). Returns ``(alpha, rho, nu)`` and the fitted vols at ``strikes``."""
    strikes, vols = list(map(float, strikes)), list(map(float, vols))
    atm = vols[int(np.argmin(np.abs(np.log(np.array(strikes) / forward))))]
    interp = ql.SABRInterpolation(
        ql.Array(strikes),
        ql.Array(vols),
        float(expiry),
        float(forward),
        atm * forward ** (1 - beta),
        beta,
        0.5,
        0.0,
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


def write_record(path: Path, record: dict) -> None:
    """Append one JSON line of a benchmark's figures, and print it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps(record))
