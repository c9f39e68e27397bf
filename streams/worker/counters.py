"""What a worker has done so far, as plain counts (the /metrics page and the log line read
them; see :mod:`streams.worker.metrics`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Counters"]


@dataclass
class Counters:
    ticks: int = 0
    rejected: Counter = field(default_factory=Counter)
    calibrations: int = 0
    flagged: int = 0
    alerts: int = 0
    alerts_held: int = 0  # alerts held back by the per-key bound (alerts.AlertConfig.per_minute)
    errors: int = 0
    watermarks: int = 0
    out_of_tolerance: int = 0  # ticks no current fit reflected (each made its smile due)
    runbooks: Counter = field(default_factory=Counter)  # the step that fixed a failed fit
    jobs: Counter = field(default_factory=Counter)  # (job, good, flagged or skipped) -> count
    broker_errors: int = 0  # the Kafka clients' errors reaching the broker (streams.worker.outage)
    evicted: int = 0  # smiles and surfaces dropped from the book: no quote for evict_after
    broker_silent: float = 0.0  # s since the broker last answered, in an outage (0: it answers)
