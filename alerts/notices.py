"""Notices: alerts that report an event rather than a condition (``state`` ``notice``, never
resolved): a runbook's outcome, a flagged playbook job, a calibration that raised. Pure: the
caller passes the time."""

from __future__ import annotations

from alerts.config import RUNBOOK
from schemas import Alert, Decision, JobResult, Params, clip

__all__ = [
    "approval_alert",
    "calibration_error_alert",
    "job_alert",
    "material_alert",
    "refused_alert",
    "runbook_alert",
]


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


_GOVERNANCE = "Calibration Governance: approve material changes"


def material_alert(now: float, params: Params, reasons: list[str]) -> Alert:
    """A material change: ``params`` go out pending until an approver decides."""
    record = f"{params.key}@{params.record_seq}"
    message = clip(f"{record} waits for approval: {'; '.join(reasons)}")
    return Alert(now, "warning", "material_change", params.subject, message, {}, params.key,
                 "notice", f"{_GOVERNANCE}: review it, then `volstream approve {record}` or "
                 "`volstream reject`, by a registered approver other than the operator")  # fmt: skip


def approval_alert(now: float, decision: Decision) -> Alert:
    """An approver's decision, accepted: the parameters go out again so marked."""
    record = f"{decision.record_key}@{decision.record_seq}"
    message = clip(f"{record} {decision.decision} by {decision.approver}: {decision.reason}")
    return Alert(now, "info", "approval", decision.record_key.replace("|", " "), message, {},
                 decision.record_key, "notice", _GOVERNANCE)  # fmt: skip


def refused_alert(now: float, decision: Decision, why: str) -> Alert:
    """A decision that does not stand (forged, self-approval, unregistered): ignored."""
    record = f"{decision.record_key}@{decision.record_seq}"
    message = clip(f"{decision.decision} of {record} by {decision.approver} refused: {why}")
    return Alert(now, "critical", "approval_refused", decision.record_key.replace("|", " "),
                 message, {}, decision.record_key, "notice", f"{_GOVERNANCE}: a decision that "
                 "does not stand is a security event; find who sent it")  # fmt: skip
