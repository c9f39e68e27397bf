"""The health rules' thresholds (the playbook's monitoring section), one place to set them, and
the runbook step each rule asks for."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RUNBOOK", "AlertConfig"]


@dataclass(frozen=True)
class AlertConfig:
    """Thresholds of every rule; the defaults are the playbook's where it gives one."""

    z: float = 3.0  # drift: |z| of a parameter against its key's window of good fits
    min_history: int = 20  # good fits of a key before drift and the RMSE P95 judge it
    window: int = 250  # good fits per key kept for the statistics (rolling)
    rmse_quantile: float = 0.95  # RMSE above this quantile of the key's good fits warns ...
    rmse_margin: float = 1.5  # ... times this: the P95 alone fires on one clean fit in twenty
    condition: float = 500.0  # identifiability: scaled-Jacobian condition number
    failure_rate: float = 0.01  # share of a model's recent fits not converged (99% success)
    outcomes: int = 50  # fits per key counted in the failure rate
    min_outcomes: int = 100  # fits of a model before its failure rate is judged
    freshness: float = 2.0  # s: a partition's newest tick ahead of its watermark (event time)
    consumer_lag: int = 100_000  # messages of a quotes partition not yet consumed
    unreachable: float = 10.0  # s without an answer from the broker: the lag is unknown, firing
    stale_after: float = 120.0  # s of event time since a key's last fit while it is quoted
    per_minute: int = 6  # alerts per key and minute; more are held back and counted


# the playbook's operational runbooks: the step an alert of each rule asks for
_FAILURE = "Calibration Failure Response"
RUNBOOK = {
    "not_converged": f"{_FAILURE}: check the market data, the loss history and the starting "
    "values; the worker re-fits through the runbook's resolution steps (see its runbook alert)",
    "rmse_p95": f"{_FAILURE}, diagnosis 1: check the market data's quality (outliers, stale "
    "or crossed quotes) against the fit",
    "drift": "Parameter Drift Alert Response: check for a regime change (the quotes that moved "
    "are in the figures), verify the data, compare peers; a justified move enters the history",
    "identifiability": f"{_FAILURE}, resolution 4: simplify the model (fewer free parameters) "
    "or add quotes where the smile is thin",
    "gate": f"{_FAILURE}, diagnosis 1-4: the failed gate's figures say which",
    "failure_rate": f"{_FAILURE}, resolution 5: fits keep failing across the model; escalate "
    "to the quant team",
    "freshness": "Real-time calibration: the worker lags its quotes; add workers (same app id) "
    "or lengthen min_interval",
    "consumer_lag": "Real-time calibration: quotes wait unread; add workers (same app id) or "
    "check the worker's errors (a broker out of reach: docs/operations.md, broker outage)",
    "stale": f"{_FAILURE}, diagnosis 1: quoted but not fitted within its maximum age; check "
    "its quotes (too few to fit?) and the worker's errors",
}
