"""The warm-state topic, its one owner: what is written there and how it is read back.

The topic is compacted and keyed by smile or surface (:func:`schemas.book_key`); each value is a
:class:`schemas.WarmState`. A worker writes the latest state of every smile it calibrated in a
batch, and reads the topic back when it starts or takes partitions over, so it starts warm.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from schemas import CalibrationRecord, KeyHealth, SchemaError, WarmState, decode, encode
from streams.access import Kafka

__all__ = ["read_all", "read_latest", "read_state", "state_message"]

M = TypeVar("M", WarmState, KeyHealth, CalibrationRecord)

log = logging.getLogger(__name__)


def state_message(key: str, state: WarmState) -> tuple[bytes, bytes]:
    """The Kafka key and value that record ``state`` of smile or surface ``key``."""
    return key.encode(), encode(state)


async def read_state(kafka: Kafka, topic: str, timeout: float = 10.0) -> dict[str, WarmState]:
    """The latest state per key of the state topic (empty if it does not exist); a value that
    does not decode is skipped with a warning (that smile starts cold)."""
    return await read_latest(kafka, topic, WarmState, timeout)


async def read_latest(kafka: Kafka, topic: str, kind: type[M], timeout: float = 10.0
                      ) -> dict[str, M]:  # fmt: skip
    """The latest ``kind`` message per key of a compacted ``topic`` (empty if the topic does
    not exist; a key whose latest record is a tombstone has none); a value that does not
    decode is skipped with a warning."""
    latest: dict[str, M] = {}
    for key, message in await _read(kafka, topic, kind, timeout):
        if message is None:
            latest.pop(key, None)
        else:
            latest[key] = message
    return latest


async def read_all(kafka: Kafka, topic: str, kind: type[M], timeout: float = 10.0
                   ) -> list[tuple[str, M]]:  # fmt: skip
    """Every ``kind`` message of ``topic`` with its key, partition by partition in offset
    order, up to the end it had when asked (empty if the topic does not exist); a value that
    does not decode is skipped with a warning."""
    return [(key, m) for key, m in await _read(kafka, topic, kind, timeout) if m is not None]


async def _read(kafka: Kafka, topic: str, kind: type[M], timeout: float
                ) -> list[tuple[str, M | None]]:  # fmt: skip
    """:func:`read_all` with tombstones (None)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.feed.send import topic_partitions

    found = await topic_partitions(kafka, topic)
    if not found:  # no such topic yet
        return []
    tps = [TopicPartition(topic, p) for p in found]
    consumer = AIOKafkaConsumer(**kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[tuple[str, M | None]] = []
        while any([await consumer.position(tp) < end[tp] for tp in tps]):
            batch = await consumer.getmany(*tps, timeout_ms=int(timeout * 1000))
            if not batch:
                break
            for records in batch.values():
                for r in records:
                    if r.offset >= end[TopicPartition(r.topic, r.partition)]:
                        continue
                    if r.value is None:
                        out.append((r.key.decode(), None))
                        continue
                    try:
                        out.append((r.key.decode(), decode(r.value, kind)))
                    except SchemaError as exc:
                        log.warning("%s of %r skipped: %s", kind.TYPE, r.key, exc)
        return out
    finally:
        await consumer.stop()
