"""Rolling volatility surfaces: the latest quote per (expiry, strike), triggers, snapshots.

An FX quote belongs to its smile (underlying, expiry), calibrated alone (SABR); an equity quote
to its index's whole surface (every expiry, calibrated together with Heston). Everything here
follows event time (the quotes' ``ts``), never the wall clock, so replaying a tick file
reproduces the same snapshots, hence the same calibrations. A smile or surface becomes due when
it has enough fresh quotes and, since its last snapshot, ``ticks`` (``surface_ticks``) new
quotes arrived, the forward (the spot) moved by ``forward_move`` (relative), or ``max_age``
seconds of event time passed. A snapshot ages out quotes older than ``max_quote_age`` and
expired ones, and drops outliers: vols more than ``outlier`` (relative) away from the median of
their two neighbours on each side along the same expiry (price quotes are not filtered).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from itertools import groupby

from schemas import Quote, time_to_expiry

__all__ = ["SURFACE", "SmileSnapshot", "SurfaceBook", "SurfaceConfig", "SurfaceSnapshot"]

SURFACE = "surface"  # the second half of a surface's key, where a smile has its expiry


@dataclass(frozen=True)
class SurfaceConfig:
    ticks: int = 5
    forward_move: float = 5e-4
    max_age: float = 30.0
    min_quotes: int = 5
    max_quote_age: float = 300.0
    outlier: float = 0.5
    surface_ticks: int = 25
    surface_min_quotes: int = 20


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
    def key(self) -> str:
        return f"{self.underlying}|{self.expiry}"


@dataclass(frozen=True)
class SurfaceSnapshot:
    """What one Heston calibration fits: an equity index's surface at an event time.

    Columns are per option, by expiry then strike; ``rates`` and ``dividends`` are each option's
    latest. An option has a vol or a price (NaN in the other); a price comes with whether it is
    a call (None for a vol quote) and the spot it was struck at (``quote_spots``), because a
    price is only comparable with the spot it was quoted against. ``open_interest`` is NaN
    where it was not reported."""

    underlying: str
    spot: float
    expiries: tuple[str, ...]
    times: tuple[float, ...]
    strikes: tuple[float, ...]
    rates: tuple[float, ...]
    dividends: tuple[float, ...]
    vols: tuple[float, ...]
    prices: tuple[float, ...]
    calls: tuple[bool | None, ...]
    quote_spots: tuple[float, ...]
    open_interest: tuple[float, ...]
    window_start: float
    window_end: float
    dropped: int
    received_at: float
    asset_class: str = "equity"

    @property
    def key(self) -> str:
        return f"{self.underlying}|{SURFACE}"

    @property
    def shape(self) -> tuple[int, int]:
        """(expiries, most strikes of one expiry)."""
        counts = Counter(self.expiries)
        return len(counts), max(counts.values())


@dataclass
class _Quotes:
    """The live quotes of one smile or surface, keyed by (expiry, strike)."""

    quotes: dict[tuple[str, float], Quote] = field(default_factory=dict)
    level: float = 0.0  # the forward of a smile, the spot of a surface
    last_ts: float = 0.0
    pending: int = 0
    fit_ts: float | None = None
    fit_level: float | None = None
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
    """All smiles and surfaces of all underlyings a worker owns."""

    def __init__(self, config: SurfaceConfig | None = None) -> None:
        self.config = config or SurfaceConfig()
        self._books: dict[str, _Quotes] = {}

    def __len__(self) -> int:
        return len(self._books)

    def on_quote(self, quote: Quote, received_at: float) -> SmileSnapshot | SurfaceSnapshot | None:
        """Add a validated quote; return a snapshot when it triggers a calibration."""
        c = self.config
        equity = quote.asset_class == "equity"
        book = self._books.setdefault(
            f"{quote.underlying}|{SURFACE if equity else quote.expiry}", _Quotes()
        )
        if quote.ts < book.last_ts - c.max_quote_age:
            return None  # far out of order: already aged out
        slot = (quote.expiry, quote.strike)
        previous = book.quotes.get(slot)
        if previous is None or quote.ts >= previous.ts:
            book.quotes[slot] = quote
        if quote.ts >= book.last_ts:
            book.last_ts = quote.ts
            book.level = quote.spot if equity else quote.forward  # type: ignore[assignment]
        book.pending += 1
        if book.first_received is None:
            book.first_received = received_at
        if equity:
            if self._due(book, c.surface_min_quotes, c.surface_ticks):
                return self._surface(quote.underlying, book)
        elif self._due(book, c.min_quotes, c.ticks):
            return self._smile(quote.underlying, quote.expiry, book)
        return None

    def _due(self, book: _Quotes, min_quotes: int, ticks: int) -> bool:
        c = self.config
        if len(book.quotes) < min_quotes:
            return False
        if book.fit_ts is None:
            return True
        moved = book.fit_level and abs(book.level / book.fit_level - 1.0) >= c.forward_move
        return book.pending >= ticks or bool(moved) or book.last_ts - book.fit_ts >= c.max_age

    def _fresh(self, book: _Quotes) -> list[Quote]:
        """Age out stale and expired quotes; the rest by expiry, then strike."""
        horizon = book.last_ts - self.config.max_quote_age
        book.quotes = {
            k: q
            for k, q in book.quotes.items()
            if q.ts >= horizon and time_to_expiry(book.last_ts, q.expiry) > 0
        }
        return [book.quotes[k] for k in sorted(book.quotes)]

    def _kept(self, quotes: list[Quote]) -> list[Quote]:
        """``quotes`` (one expiry, by strike) less the outliers among their vols."""
        rated = [q for q in quotes if q.vol is not None]
        flags = _outliers([q.vol for q in rated], self.config.outlier)  # type: ignore[misc]
        bad = {id(q) for q, flag in zip(rated, flags) if flag}
        return [q for q in quotes if id(q) not in bad]

    def _fitted(self, book: _Quotes) -> float:
        """Mark ``book`` as snapshotted; return when its first tick since the last one came."""
        received = book.first_received or 0.0
        book.pending, book.fit_ts, book.fit_level = 0, book.last_ts, book.level
        book.first_received = None
        return received

    def _smile(self, underlying: str, expiry: str, book: _Quotes) -> SmileSnapshot | None:
        quotes = self._fresh(book)
        kept = self._kept(quotes)
        if len(kept) < self.config.min_quotes:
            return None
        return SmileSnapshot(
            underlying=underlying,
            asset_class=quotes[0].asset_class,
            expiry=expiry,
            forward=book.level,
            time_to_expiry=time_to_expiry(book.last_ts, expiry),
            strikes=tuple(q.strike for q in kept),
            vols=tuple(q.vol for q in kept),  # type: ignore[misc]
            window_start=min(q.ts for q in kept),
            window_end=book.last_ts,
            dropped=len(quotes) - len(kept),
            received_at=self._fitted(book),
        )

    def _surface(self, underlying: str, book: _Quotes) -> SurfaceSnapshot | None:
        quotes = self._fresh(book)
        kept = [q for _, s in groupby(quotes, lambda q: q.expiry) for q in self._kept(list(s))]
        if len(kept) < self.config.surface_min_quotes:
            return None
        column = lambda get: tuple(get(q) for q in kept)  # noqa: E731
        nan = lambda x: math.nan if x is None else x  # noqa: E731
        return SurfaceSnapshot(
            underlying=underlying,
            spot=book.level,
            expiries=column(lambda q: q.expiry),
            times=column(lambda q: time_to_expiry(book.last_ts, q.expiry)),
            strikes=column(lambda q: q.strike),
            rates=column(lambda q: q.rate),
            dividends=column(lambda q: q.dividend),
            vols=column(lambda q: nan(q.vol)),
            prices=column(lambda q: nan(q.price)),
            calls=column(lambda q: q.call if q.price is not None else None),
            quote_spots=column(lambda q: q.spot),
            open_interest=column(lambda q: nan(q.open_interest)),
            window_start=min(q.ts for q in kept),
            window_end=book.last_ts,
            dropped=len(quotes) - len(kept),
            received_at=self._fitted(book),
        )
