"""Year fractions: ACT/365F, the convention of every time-to-expiry volstream computes."""

from __future__ import annotations

import datetime as dt

__all__ = ["act365f"]


def act365f(start: dt.date | dt.datetime, end: dt.date | dt.datetime) -> float:
    """Actual/365 Fixed year fraction from ``start`` to ``end`` (datetimes keep their time)."""
    if isinstance(start, dt.datetime) != isinstance(end, dt.datetime):
        start = start if isinstance(start, dt.datetime) else dt.datetime.combine(start, dt.time())
        end = end if isinstance(end, dt.datetime) else dt.datetime.combine(end, dt.time())
    return (end - start) / dt.timedelta(days=365)
