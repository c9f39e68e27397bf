"""Health rules over calibration results: pure functions returning ``schemas.Alert``s."""

from alerts.notices import calibration_error_alert, job_alert, runbook_alert
from alerts.rules import History, drift_alerts, evaluate, gate_alerts

__all__ = [
    "History",
    "calibration_error_alert",
    "drift_alerts",
    "evaluate",
    "gate_alerts",
    "job_alert",
    "runbook_alert",
]
