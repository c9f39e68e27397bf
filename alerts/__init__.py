"""Health rules over calibration results: pure functions returning ``schemas.Alert``s."""

from alerts.rules import History, drift_alerts, evaluate, gate_alerts

__all__ = ["History", "drift_alerts", "evaluate", "gate_alerts"]
