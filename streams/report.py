"""Calibration results as JSON-ready records and as a table people read."""

from __future__ import annotations

import math

import numpy as np

from engine.gates import gate_verdict
from engine.optimize.status import Status
from engine.result import CalibrationResult
from streams.smile_file import Smile

__all__ = ["plain", "records", "render_table"]


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
    diag_names = [k for k, v in result.diagnostics.items() if np.ndim(v) == 1]
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


def records(smiles: list[Smile], result: CalibrationResult, model: str) -> list[dict]:
    """One JSON-serialisable dict per smile of a batch ``result``."""
    out = []
    for smile, values in zip(smiles, plain(result)):
        for name, gate in values["gates"].items():
            gate["description"] = result.gates[name].description
        out.append(
            {
                "underlying": smile.name,
                "expiry": smile.expiry_label,
                "time_to_expiry": smile.time_to_expiry,
                "forward": smile.forward,
                "model": model,
                "n_quotes": len(smile.strikes),
                "params": values["params"],
                "rmse": values["rmse"],
                "converged": values["converged"],
                "status": values["status"],
                "iterations": values["iterations"],
                "gates": values["gates"],
                "diagnostics": values["diagnostics"],
            }
        )
    return out


def _gate_summary(rec: dict) -> str:
    failed = [n for n, g in rec["gates"].items() if g["verdict"] == "fail"]
    return "ok" if not failed else "FAIL " + ",".join(failed)


def render_table(recs: list[dict]) -> str:
    """Aligned text table: one line per smile, parameters, RMSE in bp, steps and gates."""
    names = [k for k in ("alpha", "beta", "rho", "nu") if recs and k in recs[0]["params"]]
    header = ["underlying", "expiry", "T", "n", *names, "rmse bp", "steps", "status", "gates"]
    rows = []
    for r in recs:
        rows.append(
            [
                r["underlying"],
                r["expiry"],
                f"{r['time_to_expiry']:.3f}",
                str(r["n_quotes"]),
                *(f"{r['params'][k]:.5f}" if r["params"][k] is not None else "nan" for k in names),
                f"{r['rmse'] * 1e4:.2f}" if r["rmse"] is not None else "nan",
                str(r["iterations"]),
                "converged" if r["converged"] else r["status"].split(":")[0],
                _gate_summary(r),
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    numeric = set(range(2, len(header) - 2))

    def fmt(cells):
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        )

    lines = [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)]
    return "\n".join(line.rstrip() for line in lines)
