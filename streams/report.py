"""Calibration results as JSON-ready records and as a table people read."""

from __future__ import annotations

import math

from engine.gates import gate_verdict
from engine.result import CalibrationResult
from streams.smile_file import Smile

__all__ = ["plain", "records", "render_table"]


def _float(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def plain(r: CalibrationResult) -> dict:
    """A single-smile result as plain values (non-finite numbers become None): params, rmse,
    gates as ``{verdict, value, threshold}`` and scalar diagnostics. Shared by the CLI's
    records and the stream's Params messages."""
    return {
        "params": {k: _float(v) for k, v in r.params.items()},
        "rmse": _float(r.rmse),
        "gates": {
            name: {
                "verdict": gate_verdict(bool(g.passed), bool(g.applicable)),
                "value": _float(g.value),
                "threshold": _float(g.threshold),
            }
            for name, g in r.gates.items()
        },
        "diagnostics": {
            k: _float(v) for k, v in r.diagnostics.items() if getattr(v, "ndim", 0) == 0
        },
    }


def records(smiles: list[Smile], result: CalibrationResult, model: str) -> list[dict]:
    """One JSON-serialisable dict per smile of a batch ``result``."""
    out = []
    for i, smile in enumerate(smiles):
        r = result.smile(i)
        values = plain(r)
        for name, gate in values["gates"].items():
            gate["description"] = r.gates[name].description
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
                "converged": bool(r.converged),
                "status": r.status_message,
                "iterations": int(r.iterations),
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
