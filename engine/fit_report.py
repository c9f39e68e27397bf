"""The playbook's ``generate_calibration_diagnostics``: how well a result fits its market data.

One figure set for every model: the residuals in implied vol (a Heston price fit is inverted
first), their RMSE and worst, the solver's outcome and every gate's verdict, so a daily job
can gate on ``diagnostics.rmse`` whatever was fitted.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from engine.result import CalibrationResult
from engine.selection import vol_errors

__all__ = ["CalibrationDiagnostics", "generate_calibration_diagnostics"]


class CalibrationDiagnostics(NamedTuple):
    model: str
    rmse: float  # of implied vols over the options with non-zero weight
    max_abs_error: float
    vol_errors: np.ndarray  # model minus market implied vol, per option in input order
    n_obs: int
    converged: bool
    status: str
    iterations: int
    loss: float
    gates: dict[str, str]  # "pass" | "fail" | "n/a"
    good: bool
    condition_number: float


def generate_calibration_diagnostics(
    result: CalibrationResult, market_data: dict, calibrator=None
) -> CalibrationDiagnostics:
    """Diagnostics of a single fit (``calibrator.calibrate``'s result) on its ``market_data``.
    A SABR result of several expiries is judged on all its options together. The errors are
    :func:`engine.selection.vol_errors`' (``calibrator`` for a model whose result does not say
    everything: time-dependent Heston)."""
    errors = vol_errors(result, market_data, calibrator)
    n = errors.size
    weights = market_data.get("weights")
    used = np.ones(n, bool)
    if weights is not None and not isinstance(weights, str):
        used = np.broadcast_to(np.asarray(weights, float), (n,)) > 0
    fitted = errors[used]
    single = result.batch_size is None
    verdicts = result.gate_verdicts() if single else {}
    condition = np.asarray(result.diagnostics.get("condition_number", np.nan))
    return CalibrationDiagnostics(
        model=result.model,
        rmse=float(np.sqrt(np.mean(fitted**2))),
        max_abs_error=float(np.max(np.abs(fitted))),
        vol_errors=errors,
        n_obs=int(used.sum()),
        converged=bool(np.all(result.converged)),
        status=result.status_message if single else "; ".join(sorted(set(result.status_message))),
        iterations=int(np.max(result.iterations)),
        loss=float(np.sum(result.loss)),
        gates=verdicts,
        good=bool(np.all(result.good)),
        condition_number=float(np.max(condition)),
    )
