"""The daily calibration report the monitoring playbook asks for, from what the stream
published in one UTC day (by wall clock of publication): how many fits and how good (the
success rate against the playbook's 99.9%), the RMSE distribution, parameter drift over the
day, latency and freshness percentiles, failed gates, alerts and approvals. Pure: messages
in, a :class:`DailyReport` out; :func:`write_daily` draws its PNGs and one HTML page.

Units as people read them: RMSE in vol bp, latency in ms, freshness in s, moves in %.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from playbooks.report import panels, save_png, suptitle, write_page
from schemas import Alert, Params, Watermark

__all__ = ["DailyReport", "daily_report", "day_of", "write_daily"]

SUCCESS_TARGET = 0.999  # the playbook's calibration success rate
TOP_MOVES = 12  # parameter moves listed


def day_of(ts: float) -> dt.date:
    """The UTC day of an epoch time."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).date()


def _pcts(values, scale: float = 1.0) -> tuple[float, float, float] | None:
    a = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
    if not a.size:
        return None
    p50, p95, p99 = np.percentile(scale * a, [50, 95, 99])
    return float(p50), float(p95), float(p99)


def _age_unit(seconds: np.ndarray) -> tuple[str, float]:
    """The unit ages read best in (a replay's old quotes are days old): name, seconds."""
    typical = float(np.median(np.abs(seconds))) if len(seconds) else 0.0
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if typical >= 2 * size:
            return unit, size
    return "s", 1.0


def _fmt(p: tuple[float, float, float] | None, digits: int = 1) -> str:
    return "n/a" if p is None else " / ".join(f"{v:.{digits}f}" for v in p)


@dataclass
class DailyReport:
    """What :func:`write_daily` shows: lines, tables (rows of cells), and the plots' data."""

    day: dt.date
    title: str
    lines: list[str]
    tables: dict[str, list[dict]]
    rmse_bp: dict[str, np.ndarray] = field(default_factory=dict)  # model -> each fit's RMSE
    latency_ms: dict[str, np.ndarray] = field(default_factory=dict)  # model -> each fit's
    freshness_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # each watermark's
    hourly: dict[str, np.ndarray] = field(default_factory=dict)  # outcome -> fits per hour
    alerts_hourly: dict[str, np.ndarray] = field(default_factory=dict)  # severity -> per hour
    moves: list[tuple[str, float]] = field(default_factory=list)  # "key param" -> move %


def _outcome(p: Params) -> str:
    return "good" if p.good else "flagged" if p.converged else "not converged"


def _moves(params: Sequence[Params]) -> list[dict]:
    """Each key's parameters from its first to its last good fit of the day, largest
    relative move first (relative to max(|first|, 0.1): a correlation near 0 is not news)."""
    first: dict[str, Params] = {}
    last: dict[str, Params] = {}
    for p in params:
        if p.good:
            first.setdefault(p.key, p)
            last[p.key] = p
    rows = []
    for key, a in first.items():
        b = last[key]
        for name, v0 in a.params.items():
            v1 = b.params.get(name)
            if v0 is None or v1 is None or v0 == v1:
                continue
            move = 100 * (v1 - v0) / max(abs(v0), 0.1)
            rows.append({"smile or surface": key, "parameter": name, "first": v0, "last": v1,
                         "move, %": round(move, 2)})  # fmt: skip
    rows.sort(key=lambda r: -abs(r["move, %"]))
    return rows[:TOP_MOVES]


def daily_report(
    day: dt.date,
    params: Sequence[Params],
    alerts: Sequence[Alert],
    watermarks: Sequence[Watermark],
) -> DailyReport:
    """The report of ``day`` from the messages published that day (the caller picks them:
    :func:`day_of` their publication time), in the order published."""
    n = len(params)
    outcomes = Counter(_outcome(p) for p in params)
    good = outcomes["good"]
    converged = n - outcomes["not converged"]
    title = f"volstream daily report: {day.isoformat()} (UTC)"
    lines = [
        f"{n:,} calibrations of {len({p.key for p in params}):,} smiles and surfaces: "
        f"{good:,} good, {outcomes['flagged']:,} flagged by a gate, "
        f"{outcomes['not converged']:,} not converged."
    ]
    if n:
        rate = converged / n
        verdict = "meets" if rate >= SUCCESS_TARGET else "MISSES"
        lines.append(f"Success rate {100 * rate:.2f}% (converged): {verdict} the playbook's "
                     f"{100 * SUCCESS_TARGET:.1f}%.")  # fmt: skip
    by_model: dict[str, list[Params]] = defaultdict(list)
    for p in params:
        by_model[p.model].append(p)
    rows = []
    for model, ps in sorted(by_model.items()):
        rmse = _pcts((p.rmse for p in ps), 1e4)
        latency = _pcts((p.published_at - p.received_at for p in ps), 1e3)
        rows.append({
            "model": model, "calibrations": len(ps),
            "good, %": round(100 * sum(p.good for p in ps) / len(ps), 2),
            "not converged": sum(not p.converged for p in ps),
            "RMSE p50 / p95 / p99, bp": _fmt(rmse, 2),
            "latency p50 / p95 / p99, ms": _fmt(latency, 0),
            "iterations p50": float(np.median([p.iterations for p in ps])),
            "warm starts, %": round(100 * sum(p.warm for p in ps) / len(ps), 1),
        })  # fmt: skip
        lines.append(f"{model}: RMSE p50 / p95 / p99 {_fmt(rmse, 2)} bp; latency "
                     f"{_fmt(latency, 0)} ms.")  # fmt: skip
    lags = np.array([w.ts - w.event_time for w in watermarks], float)
    if lags.size:
        unit, scale = _age_unit(lags)
        lines.append(f"Freshness (each watermark's age when published: wall clock less the "
                     "event time it covers; a replay's is its quotes' age): p50 / p95 / p99 "
                     f"{_fmt(_pcts(lags, 1 / scale), 2)} {unit} over {lags.size:,} "
                     "watermarks.")  # fmt: skip
    firing = [a for a in alerts if a.state == "firing"]
    critical = sum(a.severity == "critical" for a in alerts)
    lines.append(f"Alerts: {len(firing):,} fired, {sum(a.state == 'resolved' for a in alerts):,} "
                 f"resolved, {sum(a.state == 'notice' for a in alerts):,} notices; "
                 f"{critical:,} critical.")  # fmt: skip
    latest = {p.key: p for p in params}  # a decision publishes the fit again, so marked
    pending = sum(p.approval == "pending" for p in latest.values())
    if pending:
        lines.append(f"Approvals: {pending:,} calibration(s) wait for an approver "
                     "(volstream audit show --pending).")  # fmt: skip
    failed_gates = Counter(
        name for p in params for name, g in p.gates.items() if g["verdict"] == "fail"
    )
    rules = Counter((a.rule, a.severity, a.state) for a in alerts)
    by_rule = defaultdict(lambda: {"fired": 0, "resolved": 0, "notices": 0})
    for (rule, severity, state), count in rules.items():
        by_rule[(rule, severity)][
            {"firing": "fired", "resolved": "resolved"}.get(state, "notices")
        ] += count
    moves = _moves(params)
    worst = sorted((a for a in alerts if a.severity != "info" and a.state != "resolved"),
                   key=lambda a: (a.severity != "critical", -a.ts))[:20]  # fmt: skip
    tables = {
        "by model": rows,
        "largest parameter moves over the day": moves,
        "failed gates": [{"gate": g, "fits": c} for g, c in failed_gates.most_common()],
        "alerts by rule": [{"rule": r, "severity": s, **c} for (r, s), c in sorted(by_rule.items())],
        "latest critical and warning alerts": [
            {"time (UTC)": dt.datetime.fromtimestamp(a.ts, dt.UTC).strftime("%H:%M:%S"),
             "severity": a.severity, "rule": a.rule, "subject": a.subject, "message": a.message}
            for a in worst
        ],
    }  # fmt: skip
    start = dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()

    def hourly(times) -> np.ndarray:
        hours = np.clip(((np.asarray(list(times), float) - start) // 3600).astype(int), 0, 23)
        return np.bincount(hours, minlength=24)

    return DailyReport(
        day, title, lines, tables,
        rmse_bp={m: 1e4 * np.array([p.rmse for p in ps if p.rmse is not None]) for m, ps in by_model.items()},
        latency_ms={m: 1e3 * np.array([p.published_at - p.received_at for p in ps]) for m, ps in by_model.items()},
        freshness_s=lags,
        hourly={o: hourly(p.published_at for p in params if _outcome(p) == o)
                for o in ("good", "flagged", "not converged")},
        alerts_hourly={s: hourly(a.ts for a in alerts if a.severity == s and a.state != "resolved")
                       for s in ("info", "warning", "critical")},
        moves=[(f"{r['smile or surface']} {r['parameter']}", r["move, %"]) for r in moves],
    )  # fmt: skip


_COLOURS = {"good": "tab:green", "flagged": "tab:orange", "not converged": "tab:red",
            "info": "tab:blue", "warning": "tab:orange", "critical": "tab:red"}  # fmt: skip


def _hourly(ax, series: dict[str, np.ndarray], ylabel: str, title: str) -> None:
    """Counts per hour of the day, stacked by kind (its colour in ``_COLOURS``)."""
    bottom = np.zeros(24)
    for kind, counts in series.items():
        ax.bar(np.arange(24), counts, bottom=bottom, color=_COLOURS[kind], label=kind)
        bottom += counts
    ax.set_xlabel("hour (UTC)", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts


def _quality_png(r: DailyReport, path: Path) -> None:
    fig, axes = panels(1, 2, 5.2, 3.4)
    ax = axes[0, 0]
    for model, values in sorted(r.rmse_bp.items()):
        if values.size:
            top = max(float(np.percentile(values, 99.5)), 1e-3)
            ax.hist(np.clip(values, 0, top), bins=40, alpha=0.6, label=f"{model} ({values.size:,})")
    ax.set_xlabel("RMSE, vol bp", fontsize=8)
    ax.set_ylabel("fits", fontsize=8)
    ax.set_title("RMSE distribution", fontsize=9)
    ax.legend(fontsize=7)
    _hourly(axes[0, 1], r.hourly, "calibrations", "calibrations by outcome")
    for a in axes.flat:
        a.tick_params(labelsize=7)
        a.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts
    suptitle(fig, f"{r.title}: fit quality")
    save_png(fig, path)


def _timing_png(r: DailyReport, path: Path) -> None:
    fig, axes = panels(1, 2, 5.2, 3.4)
    ax = axes[0, 0]
    for model, values in sorted(r.latency_ms.items()):
        if values.size:
            ax.hist(np.clip(values, 0, np.percentile(values, 99.5)), bins=40, alpha=0.6,
                    label=model)  # fmt: skip
    ax.set_xlabel("latency: first tick to parameters published, ms", fontsize=8)
    ax.set_ylabel("fits", fontsize=8)
    ax.set_title("calibration latency", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    unit, scale = _age_unit(r.freshness_s)
    if r.freshness_s.size:
        ax.hist(r.freshness_s / scale, bins=40, color="tab:purple")
        ax.ticklabel_format(axis="x", useOffset=False)
    else:
        ax.text(0.5, 0.5, "no watermarks", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"watermark age when published, {unit}", fontsize=8)
    ax.set_ylabel("watermarks", fontsize=8)
    ax.set_title("freshness", fontsize=9)
    for a in axes.flat:
        a.tick_params(labelsize=7)
        a.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts
    suptitle(fig, f"{r.title}: latency and freshness")
    save_png(fig, path)


def _drift_alerts_png(r: DailyReport, path: Path) -> None:
    fig, axes = panels(1, 2, 5.2, 3.6)
    ax = axes[0, 0]
    if r.moves:
        names, values = zip(*reversed(r.moves))
        ax.barh(range(len(values)), values, color="tab:blue")  # a fall is no worse than a rise
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_yticks(range(len(values)), [n.replace("|", " ") for n in names], fontsize=6)
    else:
        ax.text(0.5, 0.5, "no good fit moved", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("move over the day, % (of max(|first|, 0.1))", fontsize=8)
    ax.set_title("largest parameter moves", fontsize=9)
    _hourly(axes[0, 1], r.alerts_hourly, "alerts and notices", "alerts by severity")
    for a in axes.flat:
        a.tick_params(labelsize=7)
    suptitle(fig, f"{r.title}: drift and alerts")
    save_png(fig, path)


def write_daily(report: DailyReport, folder: Path) -> Path:
    """The report's PNGs and ``index.html`` in ``folder``; returns the page."""
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for stem, draw in (("quality", _quality_png), ("timing", _timing_png),
                       ("drift-alerts", _drift_alerts_png)):  # fmt: skip
        draw(report, folder / f"{stem}.png")
        images.append(f"{stem}.png")
    return write_page(folder, report.title, report.lines, images, report.tables)
