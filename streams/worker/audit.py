"""The audit topic, its one owner: a :class:`schemas.CalibrationRecord` for every fit the stream
publishes, chained per key, with the inputs that run it again.

A record is a function of the fit alone (event times, not wall clocks; the worker's app id as
operator), so a batch replayed after a crash writes the very records it wrote before, and
``volstream audit verify`` takes an exact repeat for what it is. The chain's head of each key
(its last record's ``seq`` and hash) travels in the key's :class:`schemas.WarmState` on the
state topic, so a restarted worker, or one taking partitions over, goes on with the chain.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

from audit import GENESIS, digest, seal
from schemas import (
    CalibrationRecord,
    JobResult,
    Params,
    WarmState,
    encode,
    job_key,
    runbook_key,
)
from streams.book.calibrations import Calibrations
from streams.book.surfaces import SmileSnapshot, Snapshot, SurfaceSnapshot
from streams.provenance import model_version, platform_name
from streams.worker.jobs import run_on_book

__all__ = [
    "Reruns",
    "fit_inputs",
    "job_inputs",
    "record_fit",
    "record_job",
    "record_message",
    "rerun_all",
    "same_fit",
    "snapshot_of",
]

_WALL = ("received_at",)  # snapshot fields that are wall-clock stamps: not inputs of the fit


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # archived as missing; snapshot_of restores NaN
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _snapshot(snap: Snapshot) -> dict:
    fields = {
        f.name: _plain(getattr(snap, f.name))
        for f in dataclasses.fields(snap)
        if f.name not in _WALL
    }
    return {"kind": "smile" if isinstance(snap, SmileSnapshot) else "surface", **fields}


def _snapshot_from(plain: dict) -> Snapshot:
    fields = dict(plain)
    cls = SmileSnapshot if fields.pop("kind") == "smile" else SurfaceSnapshot
    for name, value in fields.items():
        if isinstance(value, list):  # a missing number was NaN; a missing call stays None
            missing = None if name == "calls" else math.nan
            fields[name] = tuple(missing if v is None else v for v in value)
    return cls(**fields, received_at=0.0)


def fit_inputs(snap: Snapshot, start: WarmState, beta: float | None, run: str = "stream"
               ) -> dict:  # fmt: skip
    """Everything a fit used, as plain data: what ran it (``stream``, or ``runbook`` for a
    failed fit's runbook walk, which starts cold), the snapshot as fitted, the state it
    started from (warm start and stability reference), the fixed beta and where it ran."""
    return {
        "run": run,
        "snapshot": _snapshot(snap),
        "start": {"warm": start.warm, "prior": start.prior},
        "settings": {"beta": beta, "platform": platform_name()},
    }


def job_inputs(job: str, snapshots: Sequence[Snapshot], now: float) -> dict:
    """Everything a playbook job used: its name, the book's surfaces it ran on and the time
    it ran at (its trade date and the surfaces' ages)."""
    return {
        "run": "job",
        "job": job,
        "now": now,
        "snapshots": [_snapshot(s) for s in snapshots],
        "settings": {"platform": platform_name()},
    }


def snapshot_of(inputs: dict) -> tuple[Snapshot, WarmState]:
    """The snapshot and start state :func:`fit_inputs` archived."""
    start = inputs["start"]
    return _snapshot_from(inputs["snapshot"]), WarmState(warm=start["warm"], prior=start["prior"])


def _chained(head: WarmState, inputs: dict, **fields: Any) -> CalibrationRecord:
    """A sealed record of ``inputs`` chained after ``head``'s ``audit_seq`` and
    ``audit_hash`` (the key's first record when None)."""
    first = head.audit_seq is None
    when = fields["ts"]
    return seal(
        CalibrationRecord(
            seq=0 if first else head.audit_seq + 1,  # type: ignore[operator]
            calibration_date=dt.datetime.fromtimestamp(when, dt.UTC).isoformat(),
            model_version=model_version(),
            market_data_hash=digest(inputs),
            inputs=inputs,
            prev_hash=GENESIS if first else head.audit_hash or GENESIS,
            **fields,
        )
    )


def record_fit(
    params: Params,
    snap: Snapshot,
    start: WarmState,
    head: WarmState,
    beta: float | None,
    operator: str,
    pending: bool = False,
    run: str = "stream",
) -> CalibrationRecord:
    """The sealed record of ``params``, fitted to ``snap`` from ``start`` by ``operator``
    (``run``: ``stream``, or ``runbook``: a runbook's fix, on its key's runbook chain),
    chained after ``head``; ``pending`` when it is a material change waiting for approval."""
    diagnostics = {"rmse": params.rmse, "iterations": float(params.iterations)}
    return _chained(
        head,
        fit_inputs(snap, start, beta, run),
        key=params.key if run == "stream" else runbook_key(params.key),
        ts=snap.window_end,
        asset=params.underlying,
        model_type=params.model,
        parameters=dict(params.params),
        diagnostics=diagnostics | dict(params.diagnostics),
        converged=params.converged,
        status=params.status,
        operator=operator,
        validation_status="pending" if pending else "passed" if params.good else "flagged",
    )


def record_job(
    result: JobResult, snapshots: Sequence[Snapshot], head: WarmState, operator: str
) -> CalibrationRecord:
    """The sealed record of a playbook job's finding (its figures as the parameters), run on
    ``snapshots`` (those of the assets it names), chained after ``head`` on the job's chain
    for those assets (:func:`schemas.job_key`)."""
    ran = "error" not in result.failed  # a job that raised says so as a failed "gate"
    return _chained(
        head,
        job_inputs(result.job, snapshots, result.ts),
        key=job_key(result.job, result.subject),
        ts=result.ts,
        asset=result.subject,
        model_type="playbook",
        parameters=dict(result.figures),
        diagnostics={},
        converged=ran,
        status="ran" if ran else "raised",
        operator=operator,
        validation_status="passed" if result.good else "flagged",
    )


def record_message(record: CalibrationRecord) -> tuple[bytes, bytes]:
    """The Kafka key and value of ``record``."""
    return record.key.encode(), encode(record)


def same_fit(
    record: CalibrationRecord,
    converged: bool,
    parameters: Mapping[str, float | None],
    tolerance: float = 0.0,
) -> str | None:
    """None when a run again (``converged``, ``parameters``) matches ``record``: bit for bit
    when ``tolerance`` is 0, else each parameter within ``tolerance`` relative; otherwise
    what differs."""
    if converged != record.converged:
        return f"converged {converged} now, {record.converged} then"
    for name, then in record.parameters.items():
        now = parameters.get(name)
        if then is None or now is None:
            if then is not now:
                return f"{name} {now} now, {then} then"
        elif tolerance == 0.0 and now != then:
            return f"{name} {now!r} now, {then!r} then (not bit-identical)"
        elif abs(now - then) > tolerance * max(abs(then), 1e-300):
            return f"{name} {now!r} now, {then!r} then (beyond {tolerance:g} relative)"
    return None


class Reruns:
    """Runs archived calibrations again with this code: a stream fit from its warm start, a
    runbook walk, a playbook job; one set of calibrators per fixed beta."""

    def __init__(self) -> None:
        self._by_beta: dict[float | None, Calibrations] = {}

    def _calibrations(self, underlying: str, beta: float | None) -> Calibrations:
        if beta not in self._by_beta:
            self._by_beta[beta] = Calibrations()
        calibrations = self._by_beta[beta]
        if beta is not None:
            calibrations.betas[underlying] = beta
        return calibrations

    def again(self, record: CalibrationRecord) -> tuple[bool, dict[str, float | None]]:
        """``record``'s run again: whether it converged (a job: ran) and its parameters."""
        inputs = record.inputs
        run = inputs.get("run", "stream")
        if run == "job":
            snaps = [_snapshot_from(s) for s in inputs["snapshots"]]
            (result,) = [r for r in run_on_book(inputs["job"], snaps, inputs["now"])
                         if r.subject == record.asset]  # fmt: skip
            return "error" not in result.failed, dict(result.figures)
        snap, start = snapshot_of(inputs)
        calibrations = self._calibrations(snap.underlying, inputs["settings"].get("beta"))
        if run == "runbook":
            params, _ = calibrations.runbook(snap)
        else:
            params = calibrations.refit(snap, start)
        return params.converged, dict(params.params)


def rerun_all(
    records: Sequence[CalibrationRecord], tolerance: float, reruns: Reruns | None = None
) -> list[tuple[CalibrationRecord, str]]:
    """Each record run again (:class:`Reruns`); the ones that differ and how. Bit for bit
    where the record was written by this code on this platform, within ``tolerance``
    elsewhere."""
    reruns = reruns or Reruns()
    out = []
    for record in records:
        settings = record.inputs.get("settings", {})
        here = (
            record.model_version == model_version() and settings.get("platform") == platform_name()
        )
        problem = same_fit(record, *reruns.again(record), 0.0 if here else tolerance)
        if problem:
            out.append((record, problem))
    return out
