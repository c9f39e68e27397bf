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
from collections.abc import Sequence
from typing import Any

from audit import GENESIS, digest, seal
from schemas import CalibrationRecord, Params, WarmState, encode
from streams.book.surfaces import SmileSnapshot, Snapshot, SurfaceSnapshot
from streams.provenance import model_version, platform_name

__all__ = [
    "fit_inputs",
    "record_fit",
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


def fit_inputs(snap: Snapshot, start: WarmState, beta: float | None) -> dict:
    """Everything a fit used, as plain data: the snapshot as fitted, the state it started
    from (warm start and stability reference), the fixed beta and where it ran."""
    fields = {
        f.name: _plain(getattr(snap, f.name))
        for f in dataclasses.fields(snap)
        if f.name not in _WALL
    }
    kind = "smile" if isinstance(snap, SmileSnapshot) else "surface"
    return {
        "snapshot": {"kind": kind, **fields},
        "start": {"warm": start.warm, "prior": start.prior},
        "settings": {"beta": beta, "platform": platform_name()},
    }


def snapshot_of(inputs: dict) -> tuple[Snapshot, WarmState]:
    """The snapshot and start state :func:`fit_inputs` archived."""
    fields = dict(inputs["snapshot"])
    cls = SmileSnapshot if fields.pop("kind") == "smile" else SurfaceSnapshot
    for name, value in fields.items():
        if isinstance(value, list):  # a missing number was NaN; a missing call stays None
            missing = None if name == "calls" else math.nan
            fields[name] = tuple(missing if v is None else v for v in value)
    start = inputs["start"]
    return cls(**fields, received_at=0.0), WarmState(warm=start["warm"], prior=start["prior"])


def record_fit(
    params: Params,
    snap: Snapshot,
    start: WarmState,
    head: WarmState,
    beta: float | None,
    operator: str,
    pending: bool = False,
) -> CalibrationRecord:
    """The sealed record of ``params``, fitted to ``snap`` from ``start`` by ``operator``,
    chained after ``head``'s ``audit_seq`` and ``audit_hash`` (the key's first record when
    None); ``pending`` when it is a material change waiting for approval."""
    inputs = fit_inputs(snap, start, beta)
    first = head.audit_seq is None
    diagnostics = {"rmse": params.rmse, "iterations": float(params.iterations)}
    return seal(
        CalibrationRecord(
            key=params.key,
            seq=0 if first else head.audit_seq + 1,  # type: ignore[operator]
            ts=snap.window_end,
            asset=params.underlying,
            calibration_date=dt.datetime.fromtimestamp(snap.window_end, dt.UTC).isoformat(),
            model_type=params.model,
            model_version=model_version(),
            parameters=dict(params.params),
            market_data_hash=digest(inputs),
            diagnostics=diagnostics | dict(params.diagnostics),
            converged=params.converged,
            status=params.status,
            operator=operator,
            validation_status="pending" if pending else "passed" if params.good else "flagged",
            inputs=inputs,
            prev_hash=GENESIS if first else head.audit_hash or GENESIS,
        )
    )


def record_message(record: CalibrationRecord) -> tuple[bytes, bytes]:
    """The Kafka key and value of ``record``."""
    return record.key.encode(), encode(record)


def same_fit(record: CalibrationRecord, again: Params, tolerance: float = 0.0) -> str | None:
    """None when ``again`` (the archived inputs fitted anew) matches ``record``: bit for bit
    when ``tolerance`` is 0, else each parameter within ``tolerance`` relative; otherwise
    what differs."""
    if again.converged != record.converged:
        return f"converged {again.converged} now, {record.converged} then"
    for name, then in record.parameters.items():
        now = again.params.get(name)
        if then is None or now is None:
            if then is not now:
                return f"{name} {now} now, {then} then"
        elif tolerance == 0.0 and now != then:
            return f"{name} {now!r} now, {then!r} then (not bit-identical)"
        elif abs(now - then) > tolerance * max(abs(then), 1e-300):
            return f"{name} {now!r} now, {then!r} then (beyond {tolerance:g} relative)"
    return None


def rerun_all(
    records: Sequence[CalibrationRecord], refit, tolerance: float
) -> list[tuple[CalibrationRecord, str]]:
    """Each record's fit run again (``refit(snapshot, start, beta)``); the ones that differ
    and how. Bit for bit where the record was written by this code on this platform,
    within ``tolerance`` elsewhere."""
    out = []
    for record in records:
        snap, start = snapshot_of(record.inputs)
        settings = record.inputs.get("settings", {})
        here = (
            record.model_version == model_version() and settings.get("platform") == platform_name()
        )
        again = refit(snap, start, settings.get("beta"))
        problem = same_fit(record, again, 0.0 if here else tolerance)
        if problem:
            out.append((record, problem))
    return out
