"""Alerts about the stream itself rather than about one fit's figures: a runbook's outcome, a
flagged playbook job, a calibration that raised. Pure: the caller passes the time."""

from __future__ import annotations

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
    return Alert(
        now, "critical" if escalate else "info", "runbook", fix.subject, clip(summary), figures
    )


def job_alert(now: float, result: JobResult) -> Alert:
    """A flagged playbook job's finding, naming the gates that failed."""
    failed = ", ".join(result.failed) or "see the finding"
    return Alert(
        now, "warning", "job", result.subject, clip(f"{result.title}: flagged ({failed})"), {}
    )


def calibration_error_alert(now: float, key: str, error: Exception) -> Alert:
    """A calibration that raised (a bug: the stream goes on, loudly)."""
    message = clip(f"calibration raised {type(error).__name__}: {error}")
    return Alert(now, "critical", "calibration_error", key.replace("|", " "), message, {})
