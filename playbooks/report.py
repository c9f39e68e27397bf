"""A job's report: PNG plots (fitted against market smiles, parameter term structures, bars
per model or asset) and one HTML page with them and every table, written to a folder."""

from __future__ import annotations

import html
import math
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from playbooks.jobs import JobReport

__all__ = [
    "GATE_UNITS",
    "ClippedTextWarning",
    "clipped_texts",
    "html_table",
    "panels",
    "save_png",
    "suptitle",
    "write_page",
    "write_report",
]

# how a gate's figure reads: scale and unit (a vol RMSE in bp, relative changes in %)
GATE_UNITS = {"rmse": (1e4, " bp"), "stability": (100.0, "%"), "price_error": (100.0, "%"),
              "multistart": (100.0, "%")}  # fmt: skip


class ClippedTextWarning(UserWarning):
    """A figure's text runs off its canvas (the test suite turns this into an error)."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def panels(rows: int, cols: int, width: float, height: float):
    """A figure of ``rows`` x ``cols`` panels of ``width`` x ``height`` inches, and its axes;
    laid out by matplotlib's constrained layout, which keeps a suptitle clear of the panels'
    titles (tight_layout let the two overlap on a grid of smiles)."""
    size = (width * cols, height * rows)
    return _pyplot().subplots(rows, cols, figsize=size, squeeze=False, layout="constrained")


def clipped_texts(fig) -> list[str]:
    """What of ``fig``, as drawn, runs off its canvas: the titles, axis labels and legend
    texts that do by their text, anything else (tick labels) as ``"tick labels"``."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    w, h = fig.bbox.width, fig.bbox.height

    def off(extent) -> bool:
        return extent.x0 < -1 or extent.y0 < -1 or extent.x1 > w + 1 or extent.y1 > h + 1

    named = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        named += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        legend = ax.get_legend()
        named += list(legend.get_texts()) if legend else []
    out = [
        t.get_text()
        for t in named
        if t.get_visible() and t.get_text().strip() and off(t.get_window_extent(renderer))
    ]
    tight = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)  # inches -> pixels
    if not out and off(tight):
        out.append("tick labels")
    return out


def suptitle(fig, text: str, fontsize: float = 11) -> None:
    """A figure title wrapped to the figure's width (one panel is narrower than a title)."""
    chars = max(24, int(fig.get_figwidth() * 72 / (0.6 * fontsize)))
    fig.suptitle(textwrap.fill(text, chars), fontsize=fontsize)


def save_png(fig, path: Path) -> None:
    clipped = clipped_texts(fig)
    if clipped:
        warnings.warn(f"{path.name}: text off the canvas: {clipped}", ClippedTextWarning,
                      stacklevel=2)  # fmt: skip
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def _smiles_png(report: JobReport, path: Path) -> None:
    n = len(report.smiles)
    cols = min(n, 3)
    fig, axes = panels(math.ceil(n / cols), cols, 4.2, 3.2)
    for ax, smile in zip(axes.flat, report.smiles):
        ax.plot(smile.strikes, 100 * smile.market, "o", color="black", ms=3.5, label="market")
        for name, vols in smile.model.items():
            ax.plot(smile.strikes, 100 * vols, "-", lw=1.4, label=name)
        ax.set_title(smile.label, fontsize=9)
        ax.set_xlabel("strike", fontsize=8)
        ax.set_ylabel("implied vol, %", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    suptitle(fig, f"{report.title}: fitted against market")
    save_png(fig, path)


def _steps_png(report: JobReport, path: Path) -> None:
    fig, axes = panels(1, len(report.steps), 5.5, 3.4)
    for ax, (name, (edges, series)) in zip(axes.flat, report.steps.items()):
        for label, values in series.items():
            ax.stairs(values, edges, label=label, lw=1.6, baseline=None)  # steps, no bars to 0
        # at least +-10% of the level in view: a flat term structure should look flat, not
        # like a cliff of 1e-4 blown up to the axis's height
        every = np.concatenate([np.ravel(v) for v in series.values()])
        mid, spread = (every.max() + every.min()) / 2, (every.max() - every.min()) / 2
        half = max(1.15 * spread, 0.1 * abs(mid), 1e-12)
        ax.set_ylim(mid - half, mid + half)
        ax.set_xlabel("years", fontsize=8)
        ax.set_ylabel(name, fontsize=8)
        ax.set_title(f"{name} by time segment", fontsize=9)
        ax.legend(fontsize=7)
    save_png(fig, path)


def _bars_png(report: JobReport, path: Path) -> None:
    fig, axes = panels(1, len(report.bars), 4.8, 3.4)
    for ax, (name, values) in zip(axes.flat, report.bars.items()):
        ax.bar(list(values), list(values.values()), color="tab:blue")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        for label in ax.get_xticklabels():
            label.set_rotation(15)
    save_png(fig, path)


def _cell(value) -> str:
    if isinstance(value, float | np.floating):
        return f"{value:.6g}"
    return html.escape(str(value))


def _gate_cells(row: dict) -> dict:
    """A gate's value and threshold in the gate's unit (``GATE_UNITS``)."""
    scale, unit = GATE_UNITS.get(row.get("gate", ""), (1.0, ""))
    shown = dict(row)
    for column in ("value", "threshold"):
        value = row.get(column)
        if isinstance(value, float | np.floating) and math.isfinite(value):
            shown[column] = f"{scale * value:.4g}{unit}"
    return shown


def html_table(name: str, rows: list[dict]) -> str:
    if not rows:
        return ""
    if name == "gates":
        rows = [_gate_cells(row) for row in rows]
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row.values()) + "</tr>" for row in rows
    )
    return f"<h2>{html.escape(name)}</h2><table><tr>{head}</tr>{body}</table>"


def write_page(
    folder: Path,
    title: str,
    lines: Sequence[str],
    images: Sequence[str],
    tables: Mapping[str, list[dict]],
    lead: str = "",
) -> Path:
    """``folder/index.html``: ``title`` as its title and heading, then ``lead`` (HTML), each
    of ``lines``, the PNGs ``images`` (in ``folder``) and the ``tables``; returns the page."""
    body = (
        lead
        + "".join(f"<p>{html.escape(line)}</p>" for line in lines)
        + "".join(f"<img src='{name}' alt='{name}'>" for name in images)
        + "".join(html_table(name, rows) for name, rows in tables.items())
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<link rel='icon' href='data:,'>"  # no favicon to ask a server for (a 404 otherwise)
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}"
        "img{max-width:100%;margin:1em 0}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    out = folder / "index.html"
    out.write_text(page)
    return out


def write_report(report: JobReport, folder: Path) -> Path:
    """Write the report's PNG plots and ``index.html`` into ``folder``; return the page."""
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for stem, draw, wanted in (
        ("smiles", _smiles_png, report.smiles),
        ("term-structure", _steps_png, report.steps),
        ("comparison", _bars_png, report.bars),
    ):
        if wanted:
            draw(report, folder / f"{stem}.png")
            images.append(f"{stem}.png")
    verdict = "good" if report.good else "FLAGGED"
    return write_page(folder, report.title, report.lines, images, report.tables,
                      f"<p><b>{verdict}</b></p>")  # fmt: skip
