"""Reading quote partitions back: for a takeover (:mod:`streams.worker.takeover`) and for a
playbook job on the stream's current surfaces (``volstream playbook NAME --stream``)."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.book.source import BookSource
from streams.feed.send import topic_partitions
from streams.settings import Settings
from streams.worker.pipeline import Pipeline, Record

__all__ = ["read_ranges", "stream_source"]


async def read_ranges(
    consumer: AIOKafkaConsumer, topic: str, ranges: dict[TopicPartition, tuple[int, int]]
) -> list[Record]:
    """The records of ``[start, end)`` of each partition of ``ranges`` (the consumer already
    assigned and sought to each start), in partition order."""
    ranges = dict(ranges)
    records: list[Record] = []
    while ranges:
        batch = await consumer.getmany(*ranges, timeout_ms=5000)
        if not batch:
            break
        for tp, got in batch.items():
            records += [
                Record(r.value, topic, tp.partition, r.offset, 0.0)
                for r in got
                if r.offset < ranges[tp][1]
            ]
            if got[-1].offset + 1 >= ranges[tp][1]:
                del ranges[tp]
                consumer.pause(tp)
    return records


async def stream_source(settings: Settings) -> BookSource:
    """The stream's current surfaces: every quote partition read back, no consumer group,
    from ``max_quote_age`` ago (Kafka timestamps) to its end, into a book."""
    topic = settings.topics["quotes"]
    found = await topic_partitions(settings.client(), topic)
    if not found:
        raise LookupError(
            f"no topic {topic!r} on {settings.bootstrap}: nothing has been streamed there"
        )
    consumer = AIOKafkaConsumer(**settings.client(enable_auto_commit=False))
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in found]
        consumer.assign(tps)
        since = int(1000 * (time.time() - settings.surface.max_quote_age))
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, since))
        ends = await consumer.end_offsets(tps)
        ranges = {}
        for tp in tps:
            if starts[tp] is not None and starts[tp].offset < ends[tp]:
                ranges[tp] = (starts[tp].offset, ends[tp])
                consumer.seek(tp, starts[tp].offset)
        records = await read_ranges(consumer, topic, ranges)
    finally:
        await consumer.stop()
    pipeline = Pipeline(settings, sink=None)  # type: ignore[arg-type]  # rebuild never sends
    pipeline.rebuild(records)
    return BookSource(pipeline.book.current(), time.time())
