"""Replay tick files into the quotes topic, keeping event timestamps.

Files are read by :func:`streams.tickfile.read_tick_file`: CSV, JSON lines or Parquet with
:class:`schemas.Quote`'s field names in any order (others renamed with ``rename``), ``ts`` as
epoch seconds or ISO-8601, ``seq`` optional; or a stream of msgpack-encoded quotes
(``.msgpack``). Rows that do not make a valid quote are refused there, each with its row number
and field, and not sent. Each quote is keyed by its underlying (so one smile stays in one
partition, in order) and keeps its event time in its ``ts`` field; the Kafka record timestamp
stays the send time, since brokers refuse record times far in the future and expire segments by
record time. ``speed`` paces sending by event time (``speed=10``: ten times real time); ``None``
sends as fast as the broker takes them. ``batch`` > 1 packs up to that many quotes of one
underlying into one :class:`schemas.QuoteColumns` message (far fewer, smaller messages); a
paced quote then waits at most ``linger`` (5 ms) for company. Every send is confirmed: the
summary counts delivered ticks, not attempts. :func:`send_quotes` is the one send path, shared
by replay, ``volstream simulate`` and the benchmarks.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from schemas import Quote, QuoteColumns, RowProblem, SchemaError, encode
from schemas.columns import MAX_COLUMN_ROWS
from streams.settings import Settings
from streams.tickfile import read_tick_file

__all__ = ["Batcher", "ReplaySummary", "ensure_topics", "read_ticks", "replay", "send_quotes"]


class Batcher:
    """Group quotes per underlying into :class:`schemas.QuoteColumns` messages of ``size``.

    ``add`` returns the (key, message, quote count) triples ready to send; ``flush`` the rest.
    Size 1 sends each quote as its own message. Per key, order is kept, so one partition keeps
    a smile's ticks in order either way.
    """

    def __init__(self, size: int = 1) -> None:
        if not 1 <= size <= MAX_COLUMN_ROWS:
            raise ValueError(f"batch size must be 1 to {MAX_COLUMN_ROWS}, got {size}")
        self.size = size
        self.pending: dict[bytes, list[Quote]] = {}

    def add(self, quote: Quote) -> list[tuple[bytes, bytes, int]]:
        key = quote.underlying.encode()
        if self.size == 1:
            return [(key, encode(quote), 1)]
        items = self.pending.setdefault(key, [])
        items.append(quote)
        if len(items) < self.size:
            return []
        del self.pending[key]
        return [(key, encode(QuoteColumns.from_quotes(items)), len(items))]

    def flush(self) -> list[tuple[bytes, bytes, int]]:
        ready = [(k, encode(QuoteColumns.from_quotes(v)), len(v)) for k, v in self.pending.items()]
        self.pending.clear()
        return ready


@dataclass
class ReplaySummary:
    sent: int = 0
    rejected: Counter = field(default_factory=Counter)
    failed: int = 0
    seconds: float = 0.0
    problems: list[RowProblem] = field(default_factory=list)  # each refused row of a file
    ignored: list[str] = field(default_factory=list)  # file columns that are not quote fields


def read_ticks(path: Path, rename: dict[str, str] | None = None) -> Iterator[Quote | SchemaError]:
    """Quotes in file order, then each refused row as the :class:`SchemaError` that names it."""
    ticks = read_tick_file(path, rename)
    yield from ticks.quotes()
    yield from (problem.error() for problem in ticks.rejected)


async def ensure_topics(settings: Settings) -> None:
    """Create volstream's topics where missing, as :attr:`Settings.topic_specs` says."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
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
    finally:
        await admin.close()


async def send_quotes(
    items: Iterable[Quote | SchemaError],
    settings: Settings,
    *,
    due: Callable[[Quote], float] | None = None,
    restamp: bool = False,
    batch: int = 1,
    linger: float = 0.005,
    progress: bool = False,
    total: int | None = None,
) -> ReplaySummary:
    """Send quotes to the quotes topic and count what the broker confirmed.

    ``due(quote)``: seconds after the start at which the quote leaves (``None``: at once);
    ``restamp`` sets each quote's event time to its send time (live load). With ``batch`` > 1
    a paced quote waits at most ``linger`` seconds for others of its underlying. Items that are
    :class:`SchemaError` (invalid rows) are counted as rejected, never sent. ``progress``
    prints a line with the rate (and, given the ``total``, the share sent and an ETA)."""
    from aiokafka import AIOKafkaProducer

    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=1, acks="all")
    await producer.start()
    summary, start = ReplaySummary(), time.monotonic()
    batcher = Batcher(batch)
    last_print, queued, waiting_since = 0.0, 0, None
    in_flight: deque[tuple[asyncio.Future, int]] = deque()

    async def send(messages: list[tuple[bytes, bytes, int]]) -> None:
        for key, value, count in messages:
            future = await producer.send(settings.topics["quotes"], value, key=key)
            in_flight.append((future, count))

    async def settle(limit: int) -> None:
        """Count what the broker confirmed; wait only while more than ``limit`` sends are
        unconfirmed, oldest first, so a paced stream is never held up by a full round trip."""
        while in_flight and (in_flight[0][0].done() or len(in_flight) > limit):
            future, n = in_flight.popleft()
            try:
                await future
            except Exception:  # counted as failed, never raised
                summary.failed += n
            else:
                summary.sent += n

    try:
        for item in items:
            if isinstance(item, SchemaError):
                summary.rejected[item.reason] += 1
                continue
            if due is not None:
                leave = start + due(item)
                while (now := time.monotonic()) < leave:
                    if waiting_since is not None and now >= waiting_since + linger:
                        await send(batcher.flush())
                        waiting_since = None
                    wake = leave if waiting_since is None else min(leave, waiting_since + linger)
                    await asyncio.sleep(wake - now)
                if restamp:
                    item = replace(item, ts=time.time())
            await send(batcher.add(item))
            waiting_since = (waiting_since or time.monotonic()) if batcher.pending else None
            queued += 1
            await settle(10_000)
            now = time.monotonic()
            if progress and now - last_print > 0.5:
                last_print = now
                rate = queued / max(now - start, 1e-9)
                line = f"sent {queued:,} ticks ({rate:,.0f}/s)"
                if total:
                    eta = (total - queued) / max(rate, 1e-9)
                    line = (
                        f"sent {queued:,} of {total:,} ticks ({queued / total:.0%}, "
                        f"{rate:,.0f}/s, ETA {eta:,.0f} s)"
                    )
                print(f"\r{line}", end="", file=sys.stderr, flush=True)
        await send(batcher.flush())
        await settle(0)
    finally:
        await producer.stop()
    summary.seconds = time.monotonic() - start
    if progress:
        print(file=sys.stderr)
    return summary


async def replay(
    path: Path,
    settings: Settings,
    *,
    speed: float | None = None,
    progress: bool = True,
    batch: int = 1,
    rename: dict[str, str] | None = None,
) -> ReplaySummary:
    """Send the file's valid quotes (``batch`` per message and underlying), paced by event
    time at ``speed`` times real time when given; count confirmed ticks and say which rows
    were refused. Raises :class:`streams.tickfile.TickFileError` for a file that cannot be
    read as ticks at all."""
    ticks = read_tick_file(path, rename)
    quotes = ticks.quotes()
    first = quotes[0].ts if quotes else 0.0
    summary = await send_quotes(
        quotes,
        settings,
        due=None if speed is None else (lambda quote: (quote.ts - first) / speed),
        batch=batch,
        progress=progress,
        total=len(quotes),
    )
    summary.rejected.update(p.reason for p in ticks.rejected)
    summary.problems, summary.ignored = ticks.rejected, ticks.ignored
    return summary
