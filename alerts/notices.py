"""Notices: alerts that report an event rather than a condition (``state`` ``notice``, never
resolved): a runbook's outcome, a flagged playbook job, a calibration that raised. Pure: the
caller passes the time."""

from __future__ import annotations

from alerts.config import RUNBOOK
from schemas import Alert, JobResult, Params, clip

__all__ = ["calibration_error_alert", "job_alert", "runbook_alert"]


def runbook_alert(
    now: float, fix: Params, summary: str, step: int, attempts: int, escalate: bool
) -> Alert:
    """The failure runbook's outcome on ``fix``'s smile or surface: ``info`` with the fix's
    parameters (``fit.NAME``) and the step that found it, or ``critical`` when every step
    failed (escalate)."""
    figures = {"step": float(step), "attempts": float(attempts)}
    if not escalate:
        figures |= {f"fit.{name}": value for name, value in fix.params.items()}
    severity = "critical" if escalate else "info"
    then = "escalate to the quant team" if escalate else "the fix is published"
    runbook = f"{RUNBOOK['not_converged'].partition(':')[0]}: {then}"
    return Alert(now, severity, "runbook", fix.subject, clip(summary), figures, fix.key,
                 "notice", runbook)  # fmt: skip


def job_alert(now: float, result: JobResult) -> Alert:
    """A flagged playbook job's finding, naming the gates that failed."""
    failed = ", ".join(result.failed) or "see the finding"
    message = clip(f"{result.title}: flagged ({failed})")
    return Alert(now, "warning", "job", result.subject, message, {}, result.key, "notice",
                 "the job's finding on the jobs topic says which gates failed and why")  # fmt: skip


def calibration_error_alert(now: float, key: str, error: Exception) -> Alert:
    """A calibration that raised (a bug: the stream goes on, loudly)."""
    message = clip(f"calibration raised {type(error).__name__}: {error}")
    return Alert(now, "critical", "calibration_error", key.replace("|", " "), message, {}, key,
                 "notice", "a bug: report it with the worker's log")  # fmt: skip
