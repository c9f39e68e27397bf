"""The playbooks as jobs: each reads its surfaces from a :class:`Source` (the sample files of
a date, or the stream's current book), runs the playbook's workflow with every gate, and
returns a :class:`JobReport` of tables and plot series that :mod:`playbooks.report` turns
into PNG plots and one HTML page (``volstream playbook NAME``), and the worker publishes on
its schedule.

Jobs: ``daily-sabr`` (each of a pair's smiles, ATM-weighted, gates), ``weekly-heston`` (multi-start,
identifiability, 5-fold cross-validation), ``joint`` (indices with a shared rho and the
consistency report), ``term-structure`` (theta on those of the seed's five segments that the quotes
reach, smoothness, calendar arbitrage, out of sample on a prior date), ``model-selection`` (SABR, Heston, time-dependent Heston and Heston SLV:
information criteria, cross-validation, out-of-sample on a prior date, the recommendation).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from engine.crossval import cross_validate, k_fold_split
from engine.diagnostics import compute_identifiability_metrics
from engine.heston import (
    HestonCalibrator,
    SmoothnessRegularization,
    TimeDependentCalibrator,
    TimeSegment,
    check_calendar_arbitrage,
)
from engine.heston.surface import market_vols
from engine.heston.time_dependent import fitted_segments
from engine.joint import AssetClassSpec, CrossAssetCalibrator, analyze_parameter_consistency
from engine.result import CalibrationResult
from engine.sabr import SABRCalibrator
from engine.selection import (
    compare_models,
    evaluate_out_of_sample,
    generate_model_recommendation,
    vol_errors,
)
from engine.slv import SLVCalibrator
from playbooks.data import SampleFiles
from playbooks.names import (
    DAILY_SABR,
    JOINT,
    MODEL_SELECTION,
    TERM_STRUCTURE,
    WEEKLY_HESTON,
)

__all__ = ["DATE", "JOBS", "PRIOR", "JobReport", "Smile", "Source", "run_job"]

DATE, PRIOR = "2026-11-27", ("2026-11-20",)  # the sample files' trade date, and a prior one


class Source(Protocol):
    """Where a job's surfaces come from: the sample files (:class:`SampleFiles`) or the
    stream's book (:mod:`streams.book.source`)."""

    @property
    def label(self) -> str: ...  # "on 2026-11-27", "from the stream at ..."

    def fx_smiles(self, pair: str) -> list[dict]: ...  # SABR market data, one per expiry

    def index_surface(self, index: str) -> dict: ...  # HestonCalibrator market data

    def prior_surfaces(self, index: str) -> list[dict]: ...  # other dates, out of sample


SEGMENTS = tuple(  # the seed's term structure, theta on each (v0 is one number: see TimeSegment)
    TimeSegment(a, b, ("theta",))
    for a, b in ((0.0, 0.5), (0.5, 1.0), (1.0, 3.0), (3.0, 5.0), (5.0, 10.0))
)


def reached_segments(data: dict) -> tuple[tuple[TimeSegment, ...], str | None]:
    """The seed's :data:`SEGMENTS` that the quotes of ``data`` reach (a theta no option
    depends on would be the smoothness penalty's, not the market's), the last stretched to
    the last expiry when that is later; and a line saying what was left out, if anything."""
    last = float(np.max(data["maturities"]))
    kept = [s for s in SEGMENTS if s.start < last]
    if last > kept[-1].end:
        kept[-1] = replace(kept[-1], end=last)
    left = [f"[{s.start:g}, {s.end:g}) y" for s in SEGMENTS[len(kept) :]]
    note = (
        f"theta on the seed's segments the quotes reach: none reaches {', '.join(left)} (the "
        f"last expiry is {last:.2f} y), so {len(kept)} segments, not {len(SEGMENTS)}"
        if left
        else None
    )
    return tuple(kept), note


@dataclass(frozen=True)
class Smile:
    """One expiry's market and model vols, for the fitted-against-market plot."""

    label: str
    strikes: np.ndarray
    market: np.ndarray
    model: dict[str, np.ndarray]  # model name -> vols


@dataclass
class JobReport:
    """What a job found: a headline per line, tables (rows of dicts), the smiles it fitted,
    step series (a parameter over time segments) and bars (a figure per model or asset)."""

    name: str
    title: str
    good: bool
    lines: list[str] = field(default_factory=list)
    tables: dict[str, list[dict]] = field(default_factory=dict)
    smiles: list[Smile] = field(default_factory=list)
    steps: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = field(default_factory=dict)
    bars: dict[str, dict[str, float]] = field(default_factory=dict)


def _gates(result: CalibrationResult) -> list[dict]:
    """A row per gate that applies (one that does not, Feller on SABR, is left out): its
    verdict, figure, threshold and what it checks."""
    return [
        {
            "gate": n,
            "verdict": v,
            "value": float(np.asarray(result.gates[n].value).max()),
            "threshold": float(result.gates[n].threshold),
            "checks": result.gates[n].description,
        }
        for n, v in result.gate_verdicts().items()
        if v != "n/a"
    ]


def _smiles(data: dict, market: np.ndarray, models: dict[str, np.ndarray]) -> list[Smile]:
    t = np.broadcast_to(np.asarray(data["maturities"], np.float64), np.shape(market))
    out = []
    for expiry in np.unique(t):
        rows = np.flatnonzero(t == expiry)
        order = rows[np.argsort(np.asarray(data["strikes"])[rows])]
        out.append(
            Smile(
                f"T = {expiry:.3f} y",
                np.asarray(data["strikes"], np.float64)[order],
                market[order],
                {name: vols[order] for name, vols in models.items()},
            )
        )
    return out


def daily_sabr(pair: str = "EURUSD", source: Source | None = None) -> JobReport:
    source = source or SampleFiles(DATE)
    smiles = source.fx_smiles(pair)
    if not smiles:
        raise LookupError(f"no {pair} smile {source.label}")
    results = [SABRCalibrator().calibrate(data) for data in smiles]
    good = all(bool(r.good) for r in results)
    report = JobReport(DAILY_SABR, f"Daily SABR: {pair} {source.label}", good)
    for data, result in zip(smiles, results):
        p = {n: float(v) for n, v in result.params.items()}
        report.lines.append(
            f"{pair} T = {float(data['maturities']):.3f} y: alpha {p['alpha']:.5g}, beta "
            f"{p['beta']:.2g}, rho {p['rho']:.4f}, nu {p['nu']:.4f}; RMSE "
            f"{1e4 * float(result.rmse):.2f} bp; {'good' if result.good else 'FLAGGED'}"
        )
        report.tables.setdefault("parameters", []).append({"t": float(data["maturities"])} | p)
        report.tables.setdefault("gates", []).extend(
            {"t": float(data["maturities"])} | g for g in _gates(result)
        )
        market = np.asarray(data["target_vols"], np.float64)
        model = market + vol_errors(result, data)
        report.smiles += _smiles(data, market, {"SABR": model})
    return report


def weekly_heston(index: str = "SPX", source: Source | None = None) -> JobReport:
    source = source or SampleFiles(DATE)
    data = source.index_surface(index)
    cal = HestonCalibrator()
    result = cal.calibrate(data)
    market = market_vols(data)
    cv = cross_validate(cal, data, k_fold_split(5))
    ident = cal.identifiability(result.params, data)
    title = f"Weekly Heston: {index} {source.label}"
    report = JobReport(WEEKLY_HESTON, title, bool(result.good))
    p = {n: float(v) for n, v in result.params.items()}
    cv_error = (  # in the fit's own measure: prices for price quotes, vols for vol quotes
        f"{100 * cv.mean_error:.2f}% of price" if "target_prices" in data
        else f"{1e4 * cv.mean_error:.1f} bp of vol"
    )  # fmt: skip
    report.lines.append(
        f"{index}: " + ", ".join(f"{n} {v:.4g}" for n, v in p.items())
        + f"; condition number {float(ident.condition_number):.1f}; 5-fold CV error "
        f"{cv_error} (dispersion {cv.dispersion:.2f}); "
        + ("good" if result.good else "FLAGGED: " + ", ".join(
            g for g, v in result.gate_verdicts().items() if v == "fail"))
    )  # fmt: skip
    report.tables["parameters"] = [p]
    report.tables["gates"] = _gates(result)
    report.tables["cross-validation"] = [
        {"fold": i + 1, "relative_price_error": e} for i, e in enumerate(cv.fold_errors)
    ]
    report.smiles = _smiles(data, market, {"Heston": market + vol_errors(result, data)})
    return report


def joint(
    indices: Sequence[str] = ("SPX", "SX5E", "NKY"), source: Source | None = None
) -> JobReport:
    source = source or SampleFiles(DATE)
    asset_data = {i: source.index_surface(i) for i in indices}
    cal = CrossAssetCalibrator([AssetClassSpec(i, 1.0, ("rho",)) for i in indices])
    individual = cal.calibrate_individually(asset_data)
    result = cal.calibrate(asset_data, individual)
    consistency = analyze_parameter_consistency(result, individual)
    title = f"Joint calibration: {', '.join(indices)} {source.label}"
    report = JobReport(JOINT, title, result.good)
    report.lines += [
        f"shared rho {result.params[indices[0]]['rho']:.4f} ({result.status_message}, "
        f"{result.iterations} LM steps)",
        consistency.verdict,
    ]
    report.tables["shifts"] = [
        {"parameter": n, "asset": a, "individual": ind, "joint": jnt, "shift": jnt - ind}
        for n, per in consistency.shifts.items()
        for a, (ind, jnt) in per.items()
    ]
    report.tables["sharing"] = [
        {"fits": "individual", "sse": consistency.sse_individual, "k": consistency.k_individual,
         "aic": consistency.aic[0], "bic": consistency.bic[0]},
        {"fits": "joint", "sse": consistency.sse_joint, "k": consistency.k_joint,
         "aic": consistency.aic[1], "bic": consistency.bic[1]},
    ]  # fmt: skip
    report.bars["rho by asset: individual"] = {
        a: v[0] for a, v in consistency.shifts["rho"].items()
    }
    report.bars["rho by asset: joint"] = {a: v[1] for a, v in consistency.shifts["rho"].items()}
    for i in indices:
        market = market_vols(asset_data[i])
        model = market + HestonCalibrator().vol_errors(result.params[i], asset_data[i])
        report.smiles += [
            Smile(f"{i} {s.label}", s.strikes, s.market, s.model)
            for s in _smiles(asset_data[i], market, {"joint": model})
        ]
    return report


def term_structure(index: str = "SPX", source: Source | None = None) -> JobReport:
    source = source or SampleFiles(DATE, PRIOR)
    data = source.index_surface(index)
    segments, note = reached_segments(data)
    base = HestonCalibrator(penalty_fn=SmoothnessRegularization(segments, weight=0.05))
    cal = TimeDependentCalibrator(segments, base)
    result = cal.calibrate(data)
    calendar = check_calendar_arbitrage(result, segments)
    plain = HestonCalibrator().calibrate(data)
    title = f"Term structure: {index} {source.label}"
    report = JobReport(TERM_STRUCTURE, title, bool(result.good))
    verdicts = result.gate_verdicts()
    report.lines += [
        f"theta by segment {np.round(result.params['theta'], 4).tolist()} (plain Heston "
        f"{float(plain.params['theta']):.4f}); v0 {float(result.params['v0']):.4f}",
        "gates: " + ", ".join(f"{g} {v}" for g, v in verdicts.items())
        + (f"; total variance rises with maturity everywhere (least rise "
           f"{calendar.worst_decrease:.2e})" if calendar.worst_decrease >= 0 else
           f"; total variance FALLS by {-calendar.worst_decrease:.2e} at k, T1, T2 = "
           f"{calendar.at}"),
    ]  # fmt: skip
    report.lines += [note] if note else []
    others = source.prior_surfaces(index)
    if others:  # the seed's gate "out-of-sample validation on recent dates", as a figure
        oos = evaluate_out_of_sample(cal, result, [_in_vols(d) for d in others], _in_vols(data))
        report.lines.append(
            f"out of sample on {len(others)} prior date(s): {1e4 * oos.mean:.1f} bp of vol RMS "
            f"against {1e4 * oos.in_sample_rmse:.1f} bp in sample ({oos.degradation:.1f}x; "
            "today's v0 and theta on the prior date's quotes)"
        )
        report.tables["out_of_sample"] = [
            {"surface": i, "rmse_bp": 1e4 * e} for i, e in enumerate(oos.rmse, 1)
        ] + [{"surface": "in sample", "rmse_bp": 1e4 * oos.in_sample_rmse}]
    else:
        report.lines.append("out of sample: no prior date in this source")
    report.tables["segments"] = [
        {"start": s.start, "end": s.end} | dict(s.values) for s in fitted_segments(result, segments)
    ]
    report.tables["gates"] = _gates(result)
    edges = np.array([s.start for s in segments] + [segments[-1].end])
    report.steps["theta"] = (
        edges,
        {
            "time-dependent": result.params["theta"],
            "plain Heston": np.full(len(segments), float(plain.params["theta"])),
        },
    )
    market = market_vols(data)
    report.smiles = _smiles(
        data,
        market,
        {"time-dependent": market + cal.vol_errors_of(result, data),
         "plain Heston": market + vol_errors(plain, data)},
    )  # fmt: skip
    return report


def _in_vols(data: dict) -> dict:
    """A price surface restated in implied vols: every model is then fitted and scored on
    the same numbers (SABR reads vols only)."""
    out = {k: v for k, v in data.items() if k not in ("target_prices", "call")}
    return out | {"target_vols": market_vols(data)}


def model_selection(index: str = "SPX", source: Source | None = None) -> JobReport:
    source = source or SampleFiles(DATE, PRIOR)
    vol_data = _in_vols(source.index_surface(index))
    others = [_in_vols(d) for d in source.prior_surfaces(index)]
    segments, _ = reached_segments(vol_data)
    models: dict[str, object] = {
        "SABR": SABRCalibrator(),
        "Heston": HestonCalibrator(),
        f"Heston, theta on {len(segments)} segments": TimeDependentCalibrator(segments),
    }
    results, seconds = {}, {}
    for name, cal in models.items():
        start = time.perf_counter()
        results[name] = cal.calibrate(vol_data)
        seconds[name] = time.perf_counter() - start
    # SLV on the Heston fit, as desks build it: its folds and other dates refit the leverage
    # only (half the default particles: the job fits it six times)
    heston = {n: float(v) for n, v in results["Heston"].params.items()}
    models["SLV"] = SLVCalibrator(heston_params=heston, paths=2**17)
    start = time.perf_counter()
    results["SLV"] = models["SLV"].calibrate(vol_data)
    seconds["SLV"] = time.perf_counter() - start + seconds["Heston"]
    comparison = compare_models([(n, results[n], vol_data, models[n]) for n in models])
    cv = {n: cross_validate(c, vol_data, k_fold_split(5)) for n, c in models.items()}
    oos = {  # none on a stream: its book holds today's surfaces only
        n: evaluate_out_of_sample(c, results[n], others, vol_data)
        for n, c in models.items()
        if others
    }
    conditions = {  # identifiability: each model's condition number on the quotes
        n: float(
            np.max(compute_identifiability_metrics(c, results[n].params, vol_data).condition_number)
        )
        for n, c in models.items()
    }
    rec = generate_model_recommendation(comparison, cv, oos, seconds, conditions)
    slv = results["SLV"]
    report = JobReport(MODEL_SELECTION, f"Model selection: {index} {source.label}", True)
    report.lines += [
        f"best by AIC: {comparison.best_by_aic}; best by BIC: {comparison.best_by_bic}",
        rec.summary(),
        f"SLV: leverage reprices its SVI surface to {slv.diagnostics['mean_error_bp']:.1f} bp "
        f"mean, {slv.diagnostics['worst_error_bp']:.1f} bp worst (liquid range); the surface "
        f"fits the quotes to {slv.diagnostics['surface_rmse_bp']:.1f} bp RMS",
    ]
    report.tables["comparison"] = [
        row | {"cv_error_bp": 1e4 * cv[row["name"]].mean_error,
               "cv_dispersion": cv[row["name"]].dispersion,
               "oos_rmse_bp": 1e4 * oos[row["name"]].mean if oos else None,
               "seconds": seconds[row["name"]],
               "condition": conditions[row["name"]]}
        for row in comparison.table()
    ]  # fmt: skip
    report.bars["BIC (lower is better)"] = {s.name: s.bic for s in comparison.scores}
    if oos:
        report.bars["out-of-sample RMSE, bp"] = {n: 1e4 * o.mean for n, o in oos.items()}
    market = vol_data["target_vols"]
    report.smiles = _smiles(
        vol_data, market, {n: market + vol_errors(results[n], vol_data, models[n]) for n in models}
    )
    return report


JOBS: dict[str, Callable[..., JobReport]] = {
    DAILY_SABR: daily_sabr,
    WEEKLY_HESTON: weekly_heston,
    JOINT: joint,
    TERM_STRUCTURE: term_structure,
    MODEL_SELECTION: model_selection,
}


def run_job(name: str, assets: Sequence[str] = (), source: Source | None = None) -> JobReport:
    """Job ``name`` on ``assets`` (its defaults when empty: the joint job takes several) from
    ``source`` (the sample files of 2026-11-27 by default)."""
    if name not in JOBS:
        raise ValueError(f"no playbook job {name!r}: the jobs are {sorted(JOBS)}")
    job = JOBS[name]
    if not assets:
        return job(source=source)
    return job(tuple(assets) if name == JOINT else assets[0], source=source)
