"""The one way quotes reach the quotes topic: columns in, confirmed messages out.

Replay, ``volstream simulate``, the demo and the benchmarks all send through
:func:`send_columns`. Rows are keyed by underlying (one smile stays in one partition, in order)
and packed, per underlying, into :class:`schemas.QuoteColumns` messages of up to ``batch``
rows (``batch=1``: one :class:`schemas.Quote` a message, for consumers that want that). Sending
is vectorised: a chunk of rows is split by underlying with one sort, never row by row.

Paced sending (``due``) lets each row leave at its due time after the start; a due row waits at
most ``linger`` seconds for company, so a busy stream sends large messages and a quiet one
small, prompt ones. ``restamp`` sets each row's event time to the wall-clock time it was due
(live load). Every message is confirmed by the broker (``acks=all``): the summary counts
delivered ticks, not attempts.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from schemas import QuoteColumns, RowProblem, encode
from schemas.columns import MAX_COLUMN_ROWS
from streams.access import Kafka
from streams.settings import Settings

__all__ = [
    "SendSummary",
    "ensure_topics",
    "messages",
    "send_columns",
    "topic_partitions",
    "wait_consumed",
]


@dataclass
class SendSummary:
    sent: int = 0
    rejected: Counter = field(default_factory=Counter)
    failed: int = 0
    seconds: float = 0.0
    started: float = 0.0  # wall clock at the start: a paced row of due ``d`` left at started + d
    problems: list[RowProblem] = field(default_factory=list)  # each refused row of a file
    ignored: list[str] = field(default_factory=list)  # file columns that are not quote fields


async def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Create volstream's topics where missing, as :attr:`Settings.topic_specs` says, and
    wait until every partition has a leader: a producer that starts before then logs
    NotLeaderForPartitionError and retries."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**settings.client())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(spec.name, spec.partitions, 1, topic_configs=spec.config)
            for spec in settings.topic_specs.values()
            if spec.name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
        names = [spec.name for spec in settings.topic_specs.values()]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = await admin.describe_topics(names)
            if all(
                not t["error_code"]
                and t["partitions"]
                and all(p["leader"] >= 0 and not p["error_code"] for p in t["partitions"])
                for t in described
            ):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"topics {names} have no leader after {timeout:.0f} s")
    finally:
        await admin.close()


async def topic_partitions(kafka: Kafka, topic: str) -> list[int]:
    """The partitions of ``topic`` (none when it does not exist), from a fresh describe: a
    consumer's own metadata knows only the topics it subscribed to (``partitions_for_topic``
    says None for any other)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**kafka)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] or not described["partitions"]:
        return []
    return sorted(p["partition"] for p in described["partitions"])


async def wait_consumed(settings: Settings, group: str | None = None, timeout: float = 300.0):
    """Wait until consumer ``group`` (the worker's, ``settings.app_id``, by default) has
    committed the end of every quotes partition: everything sent so far is processed, its
    results delivered (a worker commits only then)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    group = group or settings.app_id
    topic = settings.topics["quotes"]
    probe = AIOKafkaConsumer(**settings.client())
    admin = AIOKafkaAdminClient(**settings.client())
    await probe.start()
    await admin.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        end = await probe.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                done = await admin.list_consumer_group_offsets(group)
            except KafkaError:  # the group's coordinator is not ready yet
                done = {}
            if all(not end[tp] or (tp in done and done[tp].offset >= end[tp]) for tp in tps):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"group {group} did not reach the end of {topic} in {timeout:.0f} s")
    finally:
        await probe.stop()
        await admin.close()


def messages(rows: QuoteColumns, batch: int) -> Iterator[tuple[bytes, bytes, int]]:
    """``rows`` as (key, message, row count) triples: per underlying, in row order, up to
    ``batch`` rows a message (``batch=1``: single quotes)."""
    if not 1 <= batch <= MAX_COLUMN_ROWS:
        raise ValueError(f"batch size must be 1 to {MAX_COLUMN_ROWS}, got {batch}")
    names = rows.text["underlying"]
    order = np.argsort(names.codes, kind="stable")
    codes = names.codes[order]
    bounds = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1], True])
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        key = names.values[codes[lo]].encode()
        for start in range(lo, hi, batch):
            part = rows.take(order[start : min(start + batch, hi)])
            if batch == 1:
                yield key, encode(part.quotes()[0]), 1
            else:
                yield key, encode(part), part.n


async def send_columns(
    chunks: Iterable[QuoteColumns],
    settings: Settings,
    *,
    due: Callable[[np.ndarray], np.ndarray] | None = None,
    restamp: bool = False,
    batch: int = 1024,
    linger: float = 0.005,
    progress: bool = False,
    total: int | None = None,
) -> SendSummary:
    """Send every row of ``chunks`` (valid quotes, in order) to the quotes topic.

    ``due(ts)``: seconds after the start at which rows of event times ``ts`` leave (``None``:
    at once); ``restamp`` makes a row's event time the wall-clock time it was due. ``progress``
    prints a line with the rate (and, given the ``total``, the share sent and an ETA)."""
    from aiokafka import AIOKafkaProducer

    await ensure_topics(settings)
    # batches of up to 512 KiB: a columns message is ~56 KiB, past aiokafka's 16 KiB default
    producer = AIOKafkaProducer(**settings.client(linger_ms=1, acks="all", max_batch_size=1 << 19))
    await producer.start()
    start, wall = time.monotonic(), time.time()
    summary = SendSummary(started=wall)
    queued, last_print = 0, 0.0
    in_flight: deque[tuple[asyncio.Future, int]] = deque()

    async def settle(limit: int) -> None:
        """Count what the broker confirmed; wait only while more than ``limit`` sends are
        unconfirmed, oldest first, so a paced stream is never held up by a round trip."""
        while in_flight and (in_flight[0][0].done() or len(in_flight) > limit):
            future, n = in_flight.popleft()
            try:
                await future
            except Exception:  # counted as failed, never raised
                summary.failed += n
            else:
                summary.sent += n

    async def send(rows: QuoteColumns) -> None:
        nonlocal queued, last_print
        for key, value, count in messages(rows, batch):
            future = await producer.send(settings.topics["quotes"], value, key=key)
            in_flight.append((future, count))
        queued += rows.n
        await settle(10_000)
        now = time.monotonic()
        if progress and now - last_print > 0.5:
            last_print = now
            _progress(queued, total, now - start)

    try:
        for chunk in chunks:
            if due is None:
                for lo in range(0, chunk.n, MAX_COLUMN_ROWS):
                    await send(chunk.take(slice(lo, lo + MAX_COLUMN_ROWS)))
                continue
            leave = due(chunk.numbers["ts"])
            i, held = 0, None  # rows [held, i) are due and wait, at most ``linger``, for company
            while i < chunk.n or held is not None:
                now = time.monotonic() - start
                j = int(np.searchsorted(leave, now, side="right"))
                if j > i:
                    held = i if held is None else held
                    i = j
                if held is not None and (
                    i - held >= batch or now >= leave[held] + linger or i == chunk.n
                ):
                    rows = chunk.take(slice(held, i))
                    if restamp:
                        rows.numbers["ts"] = wall + leave[held:i]
                    await send(rows)
                    held = None
                if i < chunk.n:
                    wake = leave[i] if held is None else min(leave[i], leave[held] + linger)
                    await asyncio.sleep(max(0.0, wake - (time.monotonic() - start)))
        await settle(0)
    finally:
        await producer.stop()
    summary.seconds = time.monotonic() - start
    if progress:
        _progress(queued, total, summary.seconds)
        print(file=sys.stderr)
    return summary


def _progress(queued: int, total: int | None, seconds: float) -> None:
    rate = queued / max(seconds, 1e-9)
    line = f"sent {queued:,} ticks ({rate:,.0f}/s)"
    if total:
        eta = (total - queued) / max(rate, 1e-9)
        line = (
            f"sent {queued:,} of {total:,} ticks ({queued / total:.0%}, "
            f"{rate:,.0f}/s, ETA {eta:,.0f} s)"
        )
    print(f"\r{line}", end="", file=sys.stderr, flush=True)
