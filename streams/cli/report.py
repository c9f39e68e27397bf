"""Calibration results as JSON-ready records and as a table people read."""

from __future__ import annotations

from engine.result import CalibrationResult
from streams.book.results import plain
from streams.cli.smile_file import NamedSmile

__all__ = ["records", "render_table"]


def records(smiles: list[NamedSmile], result: CalibrationResult, model: str) -> list[dict]:
    """One JSON-serialisable dict per smile of a batch ``result``."""
    out = []
    for smile, values in zip(smiles, plain(result)):
        for name, gate in values["gates"].items():
            gate["description"] = result.gates[name].description
        out.append(
            {
                "underlying": smile.name,
                "expiry": smile.expiry_label,
                "time_to_expiry": smile.smile.expiry,
                "forward": smile.smile.forward,
                "model": model,
                "n_quotes": len(smile.smile),
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
    return aligned(header, rows, set(range(2, len(header) - 2)))


def aligned(header: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    """Text columns as wide as their widest cell, ``numeric`` ones right-aligned."""
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]

    def fmt(cells):
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths))
        )

    lines = [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)]
    return "\n".join(line.rstrip() for line in lines)
