"""Health rules over calibration results and the stream: pure ``(health, ...) -> (alerts,
health)``; nothing here does I/O or reads a clock (the caller passes ``now``).

The playbook's monitoring section, per smile or surface: a fit that did not converge is
critical; a failed validation gate, an RMSE above the key's P95, a parameter more than ``z``
standard deviations from its window's mean (after ``min_history`` good fits) and a condition
number above ``condition`` are warnings. Over the stream: a model's share of failed fits, a
partition whose watermark lags its ticks, a partition's unread messages, and a quoted key not
fitted within ``stale_after``. Each alert fires once and resolves once
(:func:`alerts.health.settle`). A drift alert carries the drift runbook's diagnosis: the prior
good fit (``prior.NAME``) and the quotes that moved most since (``moved.STRIKE``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from alerts.config import RUNBOOK, AlertConfig
from alerts.health import Condition, Draft, Health, KeyHistory, Quotes
from schemas import Alert, Params

__all__ = [
    "MOVED",
    "consumer_lag",
    "evaluate",
    "model_failures",
    "stale_keys",
    "threshold",
]

MOVED = 5  # quotes that moved most, listed in a drift alert
STREAM = "stream"  # the model of a key that is no smile or surface (a model, a partition)


class _Judged(NamedTuple):
    """What a key's history says of a fit, worked out once for its rules and its record: the
    RMSE quantile (None: too little history) and each parameter's (value, mean, std, |z|)."""

    p95: float | None
    scores: dict[str, tuple]


def _conditions(
    history: KeyHistory, params: Params, judged: _Judged, config: AlertConfig
) -> list[Condition]:
    """Every per-fit rule's verdict on ``params`` against its key's ``history`` before it. A
    rule that cannot judge this fit (drift on a flagged fit) gives no verdict."""
    out = [
        Condition("not_converged", "critical", not params.converged,
                  f"calibration did not converge: {params.status}",
                  {"iterations": float(params.iterations)}, RUNBOOK["not_converged"]),
    ]  # fmt: skip
    for name, gate in params.gates.items():
        if name == "converged" or gate["verdict"] == "n/a":
            continue
        out.append(Condition(f"gate.{name}", "warning", gate["verdict"] == "fail",
                             f"gate {name} failed: {gate['value']:.4g} against threshold "
                             f"{gate['threshold']:.4g}",
                             {"value": gate["value"], "threshold": gate["threshold"]},
                             RUNBOOK["gate"]))  # fmt: skip
    if not params.converged:
        return out
    p95 = judged.p95
    if params.rmse is not None and p95 is not None:
        out.append(Condition("rmse_p95", "warning", params.rmse > config.rmse_margin * p95,
                             f"RMSE {params.rmse * 1e4:.2f} bp above {config.rmse_margin:g} x "
                             f"this key's P{100 * config.rmse_quantile:.0f} of "
                             f"{p95 * 1e4:.2f} bp over its last {len(history.rmse)} good fits",
                             {"rmse": params.rmse, "p95": p95}, RUNBOOK["rmse_p95"]))  # fmt: skip
    condition = params.diagnostics.get("condition_number")
    if condition is not None and math.isfinite(condition):
        out.append(Condition("identifiability", "warning", condition > config.condition,
                             f"poor parameter identifiability: condition number {condition:.0f}"
                             f" above {config.condition:.0f}",
                             {"condition_number": condition, "threshold": config.condition},
                             RUNBOOK["identifiability"]))  # fmt: skip
    if params.good:
        out.append(_drift(history, judged.scores, config))
    return out


def _rmse_p95(history: KeyHistory, config: AlertConfig) -> float | None:
    """The key's RMSE quantile over its good fits, once it has ``min_history`` of them."""
    if len(history.rmse) < config.min_history:
        return None
    return float(np.quantile(history.rmse, config.rmse_quantile))


def _scores(history: KeyHistory, params: Params, config: AlertConfig) -> dict[str, tuple]:
    """Each parameter's (value, mean, std, |z|) against its window, where the window has
    ``min_history`` values that are not all alike."""
    out = {}
    for name, value in params.params.items():
        count, mean, std = history.stats(name)
        if value is not None and count >= config.min_history and std > 0:
            out[name] = (value, mean, std, abs(value - mean) / std)
    return out


def _drift(history: KeyHistory, scores: dict[str, tuple], config: AlertConfig) -> Condition:
    figures: dict[str, float | None] = {}
    for name, (value, mean, std, score) in scores.items():
        if score > config.z:
            figures |= {f"{name}.value": value, f"{name}.mean": mean, f"{name}.std": std,
                        f"{name}.z": score}  # fmt: skip
    drifted = [k[:-2] for k in figures if k.endswith(".z")]
    if drifted:  # the runbook's diagnosis: the prior fit (and what moved: see evaluate)
        figures |= {f"prior.{k}": v for k, v in history.prior.items()}
    said = ", ".join(f"{n} z={figures[n + '.z']:.2f}" for n in drifted)
    return Condition("drift", "warning", bool(drifted), f"parameters drifted: {said}",
                     figures, RUNBOOK["drift"])  # fmt: skip


def _moved(now: Quotes | None, before: Quotes | None) -> dict[str, float]:
    """The ``MOVED`` largest vol changes at strikes quoted in both fits."""
    if now is None or before is None:
        return {}
    (k1, v1), (k0, v0) = (tuple(np.asarray(x, np.float64) for x in q) for q in (now, before))
    common, i1, i0 = np.intersect1d(np.round(k1, 10), np.round(k0, 10), return_indices=True)
    change = v1[i1] - v0[i0]
    top = np.argsort(-np.abs(change))[:MOVED]
    return {f"moved.{common[j]:.6g}": float(change[j]) for j in top}


def _record(
    history: KeyHistory, params: Params, quotes: Quotes | None, judged: _Judged, config: AlertConfig
) -> KeyHistory:
    """``history`` with ``params`` taken in: its outcome, and a good fit's figures in the
    windows. A drift enters them (a lasting move becomes the new normal, as the drift runbook
    says of a justified one); an RMSE the RMSE rule flags does not (a fit that stays worse
    than usual stays flagged)."""
    failed = (*history.failed, not params.converged)[-config.outcomes :]
    out = replace(history, model=params.model, failed=failed, last_fit=params.window_end)
    if not params.good:
        return out
    scores = [s[3] for s in judged.scores.values()]
    windows = {
        name: (*history.params.get(name, ()), value)[-config.window :]
        for name, value in params.params.items()
        if value is not None
    }
    p95 = judged.p95  # a fit the RMSE rule flags stays out of its window
    usual = params.rmse is not None and (p95 is None or params.rmse <= config.rmse_margin * p95)
    rmse = (*history.rmse, params.rmse) if usual else history.rmse
    return replace(out, params=windows, rmse=rmse[-config.window :], prior=params.params,
                   quotes=quotes, last_z=max(scores, default=math.nan))  # fmt: skip


def evaluate(
    health: Health,
    batch: Sequence[Params],
    now: float,
    quotes: Sequence[Quotes | None] | None = None,
    config: AlertConfig | None = None,
) -> tuple[list[list[Alert]], Health]:
    """Every per-fit rule over a batch of results in order (with each one's quotes, for the
    drift diagnosis): the alerts of each, then the failure rate of each model the batch
    fitted; and the health after all of them."""
    config = config or AlertConfig()
    quotes = quotes or [None] * len(batch)
    draft, found = Draft(health), []  # the maps copied once a batch, not once a fit
    for params, q in zip(batch, quotes):
        history = draft.history(params.key, params.model)
        judged = _Judged(_rmse_p95(history, config), _scores(history, params, config))
        conditions = _conditions(history, params, judged, config)
        if conditions[-1].rule == "drift":
            conditions[-1] = _with_moved(conditions[-1], q, history.quotes)
        draft.keys[params.key] = _record(history, params, q, judged, config)
        found.append(draft.settle(params.key, params.subject, params.model, conditions, now,
                                  config))  # fmt: skip
    for model in dict.fromkeys(p.model for p in batch):
        alerts = _model_failures(draft, model, now, config)
        if found:
            found[-1] += alerts
    return found, draft.sealed()


def _with_moved(drift: Condition, now: Quotes | None, before: Quotes | None) -> Condition:
    if not drift.holds:
        return drift
    return drift._replace(figures={**drift.figures, **_moved(now, before)})


def model_failures(
    health: Health, model: str, now: float, config: AlertConfig
) -> tuple[list[Alert], Health]:
    """A model's share of failed fits over its keys' recent fits above ``failure_rate``
    (judged once ``min_outcomes`` fits are known), keyed by the model's name."""
    draft = Draft(health)
    alerts = _model_failures(draft, model, now, config)
    return alerts, draft.sealed()


def _model_failures(draft: Draft, model: str, now: float, config: AlertConfig) -> list[Alert]:
    windows = [h.failed for h in draft.keys.values() if h.model == model]
    total = sum(len(w) for w in windows)
    if total < config.min_outcomes:
        return []
    rate = sum(sum(w) for w in windows) / total
    condition = Condition("failure_rate", "critical", rate > config.failure_rate,
                          f"{100 * rate:.1f}% of recent {model} fits did not converge (more "
                          f"than {100 * config.failure_rate:.1f}%)",
                          {"rate": rate, "fits": float(total)}, RUNBOOK["failure_rate"])  # fmt: skip
    return draft.settle(model, f"{model} fits", STREAM, [condition], now, config)


def threshold(
    health: Health,
    rule: str,
    figures: Mapping[str, float],
    limit: float,
    now: float,
    config: AlertConfig,
    unit: str = "",
    reason: str = "",
) -> tuple[list[Alert], Health]:
    """A measured figure per key (a partition's watermark lag, its unread messages) above
    ``limit`` fires ``rule`` on that key, and resolves once it is back under. ``reason``: the
    figures cannot be trusted now, for this reason: ``rule`` fires on every key."""
    draft, alerts = Draft(health), []
    for key, value in figures.items():
        message = reason or f"{rule.replace('_', ' ')} {value:.4g}{unit} above {limit:.4g}{unit}"
        condition = Condition(rule, "warning", bool(reason) or value > limit, message,
                              {"value": value, "threshold": limit}, RUNBOOK[rule])  # fmt: skip
        alerts += draft.settle(key, key.replace("|", " "), STREAM, [condition], now, config)
    return alerts, draft.sealed()


def consumer_lag(
    health: Health, unread: Mapping[str, float], silent: float, now: float, config: AlertConfig
) -> tuple[list[Alert], Health]:
    """Each quotes partition's unread messages (``unread``, by key) above ``consumer_lag``; or,
    while the broker has not answered for more than ``unreachable`` seconds (``silent``), every
    partition's: nothing is read then, and what waits unread is unknown."""
    reason = ""
    if silent > config.unreachable:
        reason = f"quotes not read for {silent:.0f} s: the broker does not answer"
    return threshold(health, "consumer_lag", unread, config.consumer_lag, now, config,
                     " messages", reason)  # fmt: skip


def stale_keys(
    health: Health, quoted: Mapping[str, float], now: float, config: AlertConfig
) -> tuple[list[Alert], Health]:
    """Each key with a fit history whose latest quote (event time, ``quoted``) is more than
    ``stale_after`` past its last fit: quoted, but not fitted within its maximum age."""
    draft, alerts = Draft(health), []
    for key, latest in quoted.items():
        history = health.keys.get(key)
        if history is None or not math.isfinite(history.last_fit):
            continue
        age = latest - history.last_fit
        condition = Condition("stale", "warning", age > config.stale_after,
                              f"quoted but not fitted for {age:.0f} s (more than "
                              f"{config.stale_after:.0f} s)", {"age": age}, RUNBOOK["stale"])  # fmt: skip
        alerts += draft.settle(key, f"{key.replace('|', ' ')} {history.model}", history.model,
                               [condition], now, config)  # fmt: skip
    return alerts, draft.sealed()
