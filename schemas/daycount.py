"""Year fractions: ACT/365F, the convention of every time-to-expiry volstream computes.

An option expires at 00:00 UTC of its expiry date; event times are UTC epoch seconds.
"""

from __future__ import annotations

import datetime as dt
import functools

__all__ = ["YEAR_SECONDS", "act365f", "expiry_epoch", "time_to_expiry"]

YEAR_SECONDS = 365 * 24 * 3600.0  # an ACT/365F year


def act365f(start: dt.date | dt.datetime, end: dt.date | dt.datetime) -> float:
    """Actual/365 Fixed year fraction from ``start`` to ``end`` (datetimes keep their time)."""
    if isinstance(start, dt.datetime) != isinstance(end, dt.datetime):
        start = start if isinstance(start, dt.datetime) else dt.datetime.combine(start, dt.time())
        end = end if isinstance(end, dt.datetime) else dt.datetime.combine(end, dt.time())
    return (end - start) / dt.timedelta(days=365)


@functools.lru_cache(maxsize=65536)
def expiry_epoch(expiry: str) -> float:
    """UTC epoch seconds of 00:00 UTC on the ISO date ``expiry`` (cached: a stream asks per tick)."""
    return dt.datetime.combine(dt.date.fromisoformat(expiry), dt.time(), dt.UTC).timestamp()


def time_to_expiry(ts: float, expiry: str) -> float:
    """ACT/365F years from event time ``ts`` to 00:00 UTC of the ISO date ``expiry``."""
    return (expiry_epoch(expiry) - ts) / YEAR_SECONDS
