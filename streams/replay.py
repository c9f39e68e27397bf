"""Replay tick files into the quotes topic, keeping event timestamps.

Files: CSV or JSON lines whose columns are :class:`schemas.Quote`'s field names (``ts`` as
epoch seconds or an ISO datetime, UTC), or a stream of msgpack-encoded quotes (``.msgpack``).
Rows that do not make a valid quote are rejected here, counted by reason, and not sent. Each
quote is keyed by its underlying (so one smile stays in one partition, in order) and keeps its
event time in its ``ts`` field; the Kafka record timestamp stays the send time, since brokers
refuse record times far in the future and expire segments by record time. ``speed`` paces
sending by event time (``speed=10``: ten times real time); ``None`` sends as fast as the broker
takes them. Every send is confirmed: the summary counts deliveries, not attempts.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from schemas import Quote, SchemaError, decode, encode
from streams.settings import Settings

__all__ = ["ReplaySummary", "ensure_topics", "read_ticks", "replay"]

_NUMBERS = {"ts", "strike", "forward", "bid_vol", "ask_vol", "mid_vol", "size", "open_interest"}


@dataclass
class ReplaySummary:
    sent: int = 0
    rejected: Counter = field(default_factory=Counter)
    failed: int = 0
    seconds: float = 0.0


def _row_to_quote(row: dict) -> Quote:
    data: dict = {"type": "quote", "v": Quote.VERSION}
    for key, value in row.items():
        if value in ("", None):
            continue
        if key in _NUMBERS and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                if key == "ts":
                    value = dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC).timestamp()
        elif key == "seq" and isinstance(value, str) and value.isdigit():
            value = int(value)
        data[key] = value
    return decode(msgpack.packb(data))


def read_ticks(path: Path) -> Iterator[Quote | SchemaError]:
    """Quotes in file order; invalid rows come out as the :class:`SchemaError` they raise."""
    suffix = path.suffix.lower()
    if suffix == ".msgpack":
        with path.open("rb") as fh:
            for obj in msgpack.Unpacker(fh, raw=False):
                try:
                    yield decode(msgpack.packb(obj), Quote)
                except SchemaError as exc:
                    yield exc
        return
    with path.open() as fh:
        rows = (
            csv.DictReader(fh)
            if suffix == ".csv"
            else (json.loads(line) for line in fh if line.strip())
        )
        for row in rows:
            try:
                yield _row_to_quote(row)
            except (SchemaError, ValueError) as exc:
                yield exc if isinstance(exc, SchemaError) else SchemaError("wrong_type", str(exc))


async def ensure_topics(settings: Settings) -> None:
    """Create volstream's topics (explicit partitions and settings) where missing."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    topics, partitions = settings.topics, settings.partitions
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(topics["quotes"], partitions, 1),
            NewTopic(topics["params"], partitions, 1),
            NewTopic(topics["alerts"], 1, 1),
            NewTopic(topics["dlq"], 1, 1),
            NewTopic(topics["state"], 1, 1, topic_configs={"cleanup.policy": "compact"}),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


async def replay(
    path: Path, settings: Settings, *, speed: float | None = None, progress: bool = True
) -> ReplaySummary:
    from aiokafka import AIOKafkaProducer

    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, linger_ms=5, acks="all")
    await producer.start()
    summary, start = ReplaySummary(), time.monotonic()
    first_ts, last_print = None, 0.0
    pending: list[asyncio.Future] = []

    async def settle(futures: list[asyncio.Future]) -> None:
        for outcome in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(outcome, BaseException):
                summary.failed += 1
            else:
                summary.sent += 1
        futures.clear()

    try:
        for item in read_ticks(path):
            if isinstance(item, SchemaError):
                summary.rejected[item.reason] += 1
                continue
            if speed is not None:
                first_ts = item.ts if first_ts is None else first_ts
                delay = (item.ts - first_ts) / speed - (time.monotonic() - start)
                if delay > 0:
                    await asyncio.sleep(delay)
            await producer.send(
                settings.topics["quotes"],
                encode(item),
                key=item.underlying.encode(),
                timestamp_ms=int(item.ts * 1000),
            )
            summary.sent += 1
            now = time.monotonic()
            if progress and now - last_print > 0.5:
                last_print = now
                rate = summary.sent / max(now - start, 1e-9)
                print(
                    f"\rreplayed {summary.sent:,} ticks ({rate:,.0f}/s)",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
        await settle(pending)
    finally:
        await producer.stop()
    summary.seconds = time.monotonic() - start
    if progress:
        print(file=sys.stderr)
    return summary
