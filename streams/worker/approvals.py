"""Approvals on the stream, and the decisions topic's one owner.

With approvers registered (``VOLSTREAM_APPROVERS``), a fit that changes materially from the
parameters last approved for its key (:mod:`audit.material`) is recorded ``pending`` and
published with ``approval="pending"``. An approver's signed :class:`schemas.Decision`
(``volstream approve|reject``, on ``PREFIX.decisions``, kept forever) is read by every worker;
the worker owning the key checks it (:func:`audit.check_decision`) and, when it stands,
publishes the same fit again marked ``approved`` or ``rejected``; an approval makes those
parameters the ones the next fits are measured from. A decision that does not stand raises a
critical alert and changes nothing. The key's approved and pending figures travel with its
audit chain's head in the warm state (:class:`schemas.WarmState`), so a restart or takeover
goes on with them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import NamedTuple

from audit import material_changes
from audit.material import RMSE
from schemas import Decision, Params, SchemaError, WarmState, decode, encode
from streams.settings import Settings

__all__ = ["Head", "decided", "decision_message", "figures", "follow_decisions", "judge",
           "moved_on"]  # fmt: skip

log = logging.getLogger(__name__)


class Head(NamedTuple):
    """The record a decision must name: a key's last record, and who ran it."""

    key: str
    seq: int
    record_hash: str
    operator: str


def figures(params: Params) -> dict[str, float | None]:
    """What a material change is measured on: the parameters, and the fit's RMSE."""
    return {**params.params, RMSE: params.rmse}


def judge(params: Params, head: WarmState, settings: Settings) -> list[str]:
    """Why ``params`` need an approver (empty: they do not, or approvals are off). Only a
    converged fit can be approved: one that failed to converge is flagged, never good."""
    if not settings.approvals or not params.converged:
        return []
    failed = [name for name, gate in params.gates.items() if gate["verdict"] == "fail"]
    rules = settings.material[params.model]
    return material_changes(params.params, params.rmse, failed, head.approved, rules)


def moved_on(head: WarmState, params: Params, seq: int, record_hash: str) -> WarmState:
    """The key's head after ``params`` were recorded as ``seq``: a pending fit waits (the
    approved figures stay); a good one that needs no approval becomes the approved figures;
    any fit supersedes a pending one (a decision on it then changes nothing)."""
    pending = params.approval == "pending"
    approved = figures(params) if params.good and not pending else head.approved
    return replace(head, audit_seq=seq, audit_hash=record_hash, approved=approved,
                   pending=figures(params) if pending else None)  # fmt: skip


def decided(head: WarmState, decision: Decision) -> WarmState:
    """The key's head once ``decision`` on its pending record stands."""
    approved = head.pending if decision.decision == "approved" else head.approved
    return replace(head, approved=approved, pending=None)


def decision_message(decision: Decision) -> tuple[bytes, bytes]:
    """The Kafka key and value of ``decision`` (keyed by the record's key)."""
    return decision.record_key.encode(), encode(decision)


async def follow_decisions(
    settings: Settings, take: Callable[[Sequence[Decision]], Awaitable[None]], poll: float = 1.0
) -> None:
    """Give ``take`` every decision on the decisions topic, from its first, as they come
    (every worker reads them all: a decision concerns the key's owner, whoever it is now).
    Runs until cancelled; a value that does not decode is skipped with a warning."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = settings.topics["decisions"]
    consumer = AIOKafkaConsumer(**settings.client(enable_auto_commit=False))
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)  # one partition (Settings.topic_specs)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        while True:
            batch = await consumer.getmany(tp, timeout_ms=int(poll * 1000))
            decisions = []
            for r in batch.get(tp, []):
                try:
                    decisions.append(decode(r.value, Decision))
                except SchemaError as exc:
                    log.warning("decision at offset %d skipped: %s", r.offset, exc)
            if decisions:
                await take(decisions)
    finally:
        await consumer.stop()
