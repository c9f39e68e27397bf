"""Health rules over calibration results: pure ``(history, params) -> (alerts, history)``.

The stream publishes what these return; nothing here does I/O or reads a clock (the caller
passes ``now``). Rules follow the playbook's monitoring section: a failed fit is critical,
any other failed validation gate is a warning, and a parameter more than ``z`` standard
deviations from its running mean (per smile or surface, after ``min_count`` good fits) is a drift warning.
A drift alert carries the drift runbook's diagnosis data: the prior good fit (``prior.NAME``
figures) and, when the caller passes each result's quotes, the quotes that moved most since
that fit (``moved.STRIKE``: the change of implied vol at that strike).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from schemas import Alert, Params

__all__ = ["MOVED", "History", "Quotes", "drift_alerts", "evaluate", "gate_alerts"]

MOVED = 5  # quotes that moved most, listed in a drift alert
Quotes = tuple[Sequence[float], Sequence[float]]  # a fit's (strikes, vols)


@dataclass(frozen=True)
class _Running:
    """Welford's running mean and variance."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> _Running:
        count = self.count + 1
        delta = x - self.mean
        mean = self.mean + delta / count
        return _Running(count, mean, self.m2 + delta * (x - mean))

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0


@dataclass(frozen=True)
class History:
    """Per (smile or surface key, parameter) running statistics of good fits."""

    stats: dict[tuple[str, str], _Running] = field(default_factory=dict)
    last: dict[str, tuple[dict[str, float], Quotes | None]] = field(default_factory=dict)


def gate_alerts(params: Params, now: float) -> list[Alert]:
    """One alert per failed gate; a fit that did not converge is critical."""
    alerts = []
    if not params.converged:
        alerts.append(
            Alert(
                now,
                "critical",
                "not_converged",
                params.subject,
                f"calibration did not converge: {params.status}",
                {"iterations": float(params.iterations)},
            )
        )
    for name, gate in params.gates.items():
        if gate["verdict"] != "fail" or name == "converged":
            continue
        alerts.append(
            Alert(
                now,
                "warning",
                f"gate.{name}",
                params.subject,
                f"gate {name} failed: {gate['value']} vs threshold {gate['threshold']}",
                {"value": gate["value"], "threshold": gate["threshold"]},
            )
        )
    return alerts


def drift_alerts(
    history: History,
    params: Params,
    now: float,
    *,
    quotes: Quotes | None = None,
    z: float = 3.0,
    min_count: int = 20,
) -> tuple[list[Alert], History]:
    """Z-score drift of each parameter against its running history; good fits update it.
    ``quotes`` are the fit's (strikes, vols): a drift alert then lists those that moved."""
    stats, last = dict(history.stats), dict(history.last)
    return _drift(stats, last, params, quotes, now, z, min_count), History(stats, last)


def _moved(now: Quotes | None, before: Quotes | None) -> dict[str, float]:
    """The ``MOVED`` largest vol changes at strikes quoted in both fits."""
    if now is None or before is None:
        return {}
    (k1, v1), (k0, v0) = (tuple(np.asarray(x, np.float64) for x in q) for q in (now, before))
    common, i1, i0 = np.intersect1d(np.round(k1, 10), np.round(k0, 10), return_indices=True)
    change = v1[i1] - v0[i0]
    top = np.argsort(-np.abs(change))[:MOVED]
    return {f"moved.{common[j]:.6g}": float(change[j]) for j in top}


def _drift(
    stats: dict, last: dict, params: Params, quotes: Quotes | None, now: float, z: float, n: int
) -> list[Alert]:
    """:func:`drift_alerts` on ``stats`` and ``last``, updated in place (the callers own
    those copies)."""
    if not params.good:
        return []
    alerts, diagnosis = [], None
    for name, value in params.params.items():
        if value is None:
            continue
        key = (params.key, name)
        run = stats.get(key, _Running())
        if run.count >= n and run.std > 0:
            score = abs(value - run.mean) / run.std
            if score > z:
                if diagnosis is None:  # only for a drift: every good fit passes here
                    prior_params, prior_quotes = last.get(params.key, ({}, None))
                    diagnosis = {f"prior.{k}": v for k, v in prior_params.items()}
                    diagnosis |= _moved(quotes, prior_quotes)
                alerts.append(
                    Alert(
                        now,
                        "warning",
                        "drift",
                        params.subject,
                        f"parameter {name} drifted: z-score {score:.2f} (runbook: check the "
                        "moved quotes and the prior fit in the figures)",
                        {"value": value, "mean": run.mean, "std": run.std, "z": score} | diagnosis,
                    )
                )
        stats[key] = run.add(value)
    last[params.key] = (params.params, quotes)  # Params is frozen: no copy needed
    return alerts


def evaluate(
    history: History,
    batch: Sequence[Params],
    now: float,
    quotes: Sequence[Quotes | None] | None = None,
) -> tuple[list[list[Alert]], History]:
    """Every rule, composed, over a batch of results in order (with each one's quotes, for
    the drift diagnosis): the alerts of each, and the history after all of them (copied once
    per batch, not once per result)."""
    stats, last = dict(history.stats), dict(history.last)
    quotes = quotes or [None] * len(batch)
    found = [
        gate_alerts(p, now) + _drift(stats, last, p, q, now, 3.0, 20) for p, q in zip(batch, quotes)
    ]
    return found, History(stats, last)
