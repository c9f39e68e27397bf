"""Rolling volatility surfaces: the latest quote per (expiry, strike), triggers, snapshots.

Everything here follows event time (the quotes' ``ts``), never the wall clock, so replaying a
tick file reproduces the same snapshots, hence the same calibrations. A smile becomes due for
calibration when it has enough fresh quotes and, since its last snapshot, ``ticks`` new quotes
arrived, the forward moved by ``forward_move`` (relative), or ``max_age`` seconds of event time
passed. A snapshot ages out quotes older than ``max_quote_age`` and drops outliers: vols more
than ``outlier`` (relative) away from the median of their two neighbours on each side.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from schemas import Quote, time_to_expiry

__all__ = ["SmileSnapshot", "SurfaceBook", "SurfaceConfig"]


@dataclass(frozen=True)
class SurfaceConfig:
    ticks: int = 5
    forward_move: float = 5e-4
    max_age: float = 30.0
    min_quotes: int = 5
    max_quote_age: float = 300.0
    outlier: float = 0.5


@dataclass(frozen=True)
class SmileSnapshot:
    """What one calibration fits: a frozen copy of a smile at an event time."""

    underlying: str
    asset_class: str
    expiry: str
    forward: float
    time_to_expiry: float
    strikes: tuple[float, ...]
    vols: tuple[float, ...]
    window_start: float
    window_end: float
    dropped: int  # outliers left out
    received_at: float  # wall clock when the first tick since the last snapshot arrived

    @property
    def key(self) -> tuple[str, str]:
        return (self.underlying, self.expiry)


@dataclass
class _Smile:
    quotes: dict[float, Quote] = field(default_factory=dict)
    forward: float = 0.0
    last_ts: float = 0.0
    pending: int = 0
    fit_ts: float | None = None
    fit_forward: float | None = None
    first_received: float | None = None


def _outliers(vols: list[float], limit: float) -> list[bool]:
    """True where a vol is more than ``limit`` away (relative) from the median of the window of
    five quotes around it (three at the ends), itself included: robust while fewer than half of
    a window are outliers."""
    if len(vols) < 3:
        return [False] * len(vols)
    flags = []
    for i, v in enumerate(vols):
        median = statistics.median(vols[max(0, i - 2) : i + 3])
        flags.append(abs(v / median - 1.0) > limit)
    return flags


class SurfaceBook:
    """All smiles of all underlyings a worker owns."""

    def __init__(self, config: SurfaceConfig | None = None) -> None:
        self.config = config or SurfaceConfig()
        self._smiles: dict[tuple[str, str], _Smile] = {}

    def __len__(self) -> int:
        return len(self._smiles)

    def on_quote(self, quote: Quote, received_at: float) -> SmileSnapshot | None:
        """Add a validated quote; return a snapshot when it triggers a calibration."""
        c = self.config
        key = (quote.underlying, quote.expiry)
        smile = self._smiles.setdefault(key, _Smile())
        if quote.ts < smile.last_ts - c.max_quote_age:
            return None  # far out of order: already aged out
        previous = smile.quotes.get(quote.strike)
        if previous is None or quote.ts >= previous.ts:
            smile.quotes[quote.strike] = quote
        if quote.ts >= smile.last_ts:
            smile.last_ts = quote.ts
            if quote.forward is not None:
                smile.forward = quote.forward
        smile.pending += 1
        if smile.first_received is None:
            smile.first_received = received_at
        if not self._due(smile):
            return None
        return self._snapshot(key, smile)

    def _due(self, smile: _Smile) -> bool:
        c = self.config
        if len(smile.quotes) < c.min_quotes:
            return False
        if smile.fit_ts is None:
            return True
        moved = smile.fit_forward and abs(smile.forward / smile.fit_forward - 1.0) >= c.forward_move
        return smile.pending >= c.ticks or bool(moved) or smile.last_ts - smile.fit_ts >= c.max_age

    def _snapshot(self, key: tuple[str, str], smile: _Smile) -> SmileSnapshot | None:
        c = self.config
        horizon = smile.last_ts - c.max_quote_age
        smile.quotes = {k: q for k, q in smile.quotes.items() if q.ts >= horizon}
        quotes = [smile.quotes[k] for k in sorted(smile.quotes)]
        vols = [q.vol for q in quotes]
        flags = _outliers(vols, c.outlier)
        kept = [(q, v) for q, v, bad in zip(quotes, vols, flags) if not bad]
        if len(kept) < c.min_quotes:
            return None
        underlying, expiry = key
        t = time_to_expiry(smile.last_ts, expiry)
        if t <= 0:
            return None
        snapshot = SmileSnapshot(
            underlying=underlying,
            asset_class=quotes[0].asset_class,
            expiry=expiry,
            forward=smile.forward,
            time_to_expiry=t,
            strikes=tuple(q.strike for q, _ in kept),
            vols=tuple(v for _, v in kept),
            window_start=min(q.ts for q, _ in kept),
            window_end=smile.last_ts,
            dropped=len(quotes) - len(kept),
            received_at=smile.first_received or 0.0,
        )
        smile.pending = 0
        smile.fit_ts = smile.last_ts
        smile.fit_forward = smile.forward
        smile.first_received = None
        return snapshot
