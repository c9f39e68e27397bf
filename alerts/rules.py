"""Health rules over calibration results: pure ``(history, params) -> (alerts, history)``.

The stream publishes what these return; nothing here does I/O or reads a clock (the caller
passes ``now``). Rules follow the playbook's monitoring section: a failed fit is critical,
any other failed validation gate is a warning, and a parameter more than ``z`` standard
deviations from its running mean (per smile or surface, after ``min_count`` good fits) is a drift warning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas import Alert, Params

__all__ = ["History", "drift_alerts", "evaluate", "gate_alerts"]


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
    history: History, params: Params, now: float, *, z: float = 3.0, min_count: int = 20
) -> tuple[list[Alert], History]:
    """Z-score drift of each parameter against its running history; good fits update it."""
    stats = dict(history.stats)
    return _drift(stats, params, now, z, min_count), History(stats)


def _drift(stats: dict, params: Params, now: float, z: float, min_count: int) -> list[Alert]:
    """:func:`drift_alerts` on ``stats``, updated in place (the callers own that copy)."""
    if not params.good:
        return []
    alerts = []
    for name, value in params.params.items():
        if value is None:
            continue
        key = (params.key, name)
        run = stats.get(key, _Running())
        if run.count >= min_count and run.std > 0:
            score = abs(value - run.mean) / run.std
            if score > z:
                alerts.append(
                    Alert(
                        now,
                        "warning",
                        "drift",
                        params.subject,
                        f"parameter {name} drifted: z-score {score:.2f}",
                        {"value": value, "mean": run.mean, "std": run.std, "z": score},
                    )
                )
        stats[key] = run.add(value)
    return alerts


def evaluate(
    history: History, batch: Sequence[Params], now: float
) -> tuple[list[list[Alert]], History]:
    """Every rule, composed, over a batch of results in order: the alerts of each, and the
    history after all of them (copied once per batch, not once per result)."""
    stats = dict(history.stats)
    found = [gate_alerts(p, now) + _drift(stats, p, now, 3.0, 20) for p in batch]
    return found, History(stats)
