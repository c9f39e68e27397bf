"""Calibration results as plain values: what the stream's Params and the CLI's records carry."""

from __future__ import annotations

import math

import numpy as np

from engine.gates import gate_verdict
from engine.optimize.status import Status
from engine.result import CalibrationResult

__all__ = ["plain"]


def _floats(a) -> list[float | None]:
    """An array as Python floats, with None for non-finite values."""
    a = np.asarray(a, dtype=np.float64)
    return [x if math.isfinite(x) else None for x in a.tolist()]


def plain(result: CalibrationResult) -> list[dict]:
    """A batch result as plain values, one dict per smile: params, rmse, converged, status,
    warm, iterations, gates as ``{verdict, value, threshold}`` and scalar diagnostics; None for
    non-finite numbers. Each array is converted once for the whole batch (per-smile indexing is
    what a stream cannot afford). Shared by the CLI's records and the stream's Params."""
    names = list(result.params)
    params = [_floats(result.params[k]) for k in names]
    diag_names = [  # one number per smile (not a list per smile, such as dropped options)
        k
        for k, v in result.diagnostics.items()
        if np.ndim(v) == 1 and np.asarray(v).dtype != object
    ]
    diags = [_floats(result.diagnostics[k]) for k in diag_names]
    gates = {
        name: (
            np.asarray(g.passed).tolist(),
            np.broadcast_to(g.applicable, np.shape(g.passed)).tolist(),
            _floats(g.value),
            _floats(np.broadcast_to(g.threshold, np.shape(g.passed))),
        )
        for name, g in result.gates.items()
    }
    columns = zip(
        _floats(result.rmse),
        np.asarray(result.converged).tolist(),
        np.asarray(result.status).tolist(),
        np.asarray(result.warm).tolist(),
        np.asarray(result.iterations).tolist(),
    )
    out = []
    for i, (rmse, converged, status, warm, iterations) in enumerate(columns):
        out.append(
            {
                "params": {k: p[i] for k, p in zip(names, params)},
                "rmse": rmse,
                "converged": bool(converged),
                "status": Status(status).message,
                "warm": bool(warm),
                "iterations": int(iterations),
                "gates": {
                    name: {
                        "verdict": gate_verdict(passed[i], applicable[i]),
                        "value": value[i],
                        "threshold": threshold[i],
                    }
                    for name, (passed, applicable, value, threshold) in gates.items()
                },
                "diagnostics": {k: d[i] for k, d in zip(diag_names, diags)},
            }
        )
    return out
