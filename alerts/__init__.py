"""Health rules over calibration results and the stream: pure functions returning
``schemas.Alert``s and the new :class:`Health` they leave."""

from alerts.config import RUNBOOK, AlertConfig
from alerts.health import Condition, Health, KeyHistory, forget, settle
from alerts.notices import (
    approval_alert,
    calibration_error_alert,
    job_alert,
    material_alert,
    refused_alert,
    runbook_alert,
)
from alerts.rules import consumer_lag, evaluate, model_failures, stale_keys, threshold

__all__ = [
    "RUNBOOK",
    "AlertConfig",
    "Condition",
    "Health",
    "KeyHistory",
    "approval_alert",
    "calibration_error_alert",
    "consumer_lag",
    "evaluate",
    "forget",
    "job_alert",
    "material_alert",
    "model_failures",
    "refused_alert",
    "runbook_alert",
    "settle",
    "stale_keys",
    "threshold",
]
