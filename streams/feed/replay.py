"""Replay tick files into the quotes topic, keeping event timestamps.

Files are read by :func:`streams.feed.tickfile.read_tick_file`: CSV, JSON lines or Parquet with
:class:`schemas.Quote`'s field names in any order (others renamed with ``rename``), ``ts`` as
epoch seconds or ISO-8601, ``seq`` optional; or a stream of msgpack-encoded quotes
(``.msgpack``). Rows that do not make a valid quote are refused there, each with its row number
and field, and not sent. The valid rows go out as columns through
:func:`streams.feed.send.send_columns`, keyed by underlying, each keeping its event time in its
``ts`` field (the Kafka record timestamp stays the send time: brokers refuse record times far in
the future and expire segments by record time). ``speed`` paces sending by event time
(``speed=10``: ten times real time); ``None`` sends as fast as the broker takes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from schemas import Quote, SchemaError
from streams.feed.send import SendSummary, send_columns
from streams.feed.tickfile import TickFile, read_tick_file
from streams.settings import Settings

__all__ = ["read_ticks", "replay", "replay_ticks"]


def read_ticks(path: Path, rename: dict[str, str] | None = None) -> Iterator[Quote | SchemaError]:
    """Quotes in file order, then each refused row as the :class:`SchemaError` that names it."""
    ticks = read_tick_file(path, rename)
    yield from ticks.quotes()
    yield from (problem.error() for problem in ticks.rejected)


async def replay(
    path: Path,
    settings: Settings,
    *,
    speed: float | None = None,
    progress: bool = True,
    batch: int = 1,
    rename: dict[str, str] | None = None,
) -> SendSummary:
    """Send the file's valid quotes (up to ``batch`` per message and underlying), paced by event
    time at ``speed`` times real time when given; count confirmed ticks and say which rows
    were refused. Raises :class:`streams.feed.tickfile.TickFileError` for a file that cannot be
    read as ticks at all."""
    ticks = read_tick_file(path, rename)
    return await replay_ticks(ticks, settings, speed=speed, progress=progress, batch=batch)


async def replay_ticks(
    ticks: TickFile,
    settings: Settings,
    *,
    speed: float | None = None,
    progress: bool = True,
    batch: int = 1,
) -> SendSummary:
    """:func:`replay` of a file already read (a caller that reads its ticks too reads once)."""
    chunks = [] if ticks.columns is None else [ticks.columns]
    first = ticks.columns.numbers["ts"][0] if chunks else 0.0
    summary = await send_columns(
        chunks,
        settings,
        due=None if speed is None else (lambda ts: (ts - first) / speed),
        batch=batch,
        progress=progress,
        total=ticks.columns.n if chunks else 0,
    )
    summary.rejected.update(p.reason for p in ticks.rejected)
    summary.problems, summary.ignored = ticks.rejected, ticks.ignored
    return summary
