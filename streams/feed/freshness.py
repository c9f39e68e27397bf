"""How current a subscriber finds the parameters, measured from outside the worker: per tick,
the time from when it was sent to when the first watermark of its quotes partition that
covers it was read (what ``volstream demo`` reports and ``bench/stream.py`` measures).

A producer keys quotes by underlying, so a tick's partition is its underlying's under Kafka's
default partitioner (murmur2 of the key), the one :func:`streams.feed.send.send_columns` and
every Kafka client use.
"""

from __future__ import annotations

import numpy as np
from aiokafka.partitioner import DefaultPartitioner

from schemas import Watermark
from schemas.columns import Text

__all__ = ["partitions_of", "watermark_lags"]


def partitions_of(underlying: Text, partitions: int) -> np.ndarray:
    """The quotes partition of each row of an ``underlying`` column, as a producer keying by
    it chooses it (each distinct name hashed once)."""
    choose, every = DefaultPartitioner(), list(range(partitions))
    lut = np.array([choose(u.encode(), every, every) for u in underlying.values], np.int64)
    return lut[underlying.codes] if lut.size else np.zeros(0, np.int64)


def watermark_lags(
    ts: np.ndarray, partitions: np.ndarray, sent: np.ndarray, marks: list[tuple[float, Watermark]]
) -> np.ndarray:
    """Seconds from ``sent`` to the read time (first of ``marks``, ``(read, Watermark)`` in
    the order read) of the first watermark of each tick's partition at or past its event time
    ``ts``; NaN for a tick no watermark read covers."""
    lag = np.full(ts.size, np.nan)
    by_partition: dict[int, list[tuple[float, float]]] = {}
    for read, mark in marks:
        by_partition.setdefault(mark.partition, []).append((mark.event_time, read))
    for p, pairs in by_partition.items():
        event, read = np.array(pairs).T
        event = np.maximum.accumulate(event)  # a watermark never moves back; a repeat no news
        mine = np.flatnonzero(partitions == p)
        i = np.searchsorted(event, ts[mine], side="left")
        ok = i < event.size
        lag[mine[ok]] = read[i[ok]] - sent[mine[ok]]
    return lag
