"""Rolling volatility surfaces as arrays, and the snapshots that event-time epochs close.

Every (smile or surface, expiry, strike) the worker has seen owns a *slot*: one row of the
book's arrays holding that option's latest quote. An FX quote belongs to its smile (underlying,
expiry), calibrated alone (SABR); an equity quote to its index's whole surface (every expiry,
calibrated together with Heston). Quotes arrive as :class:`schemas.QuoteColumns` and update the
arrays vectorised, a message at a time.

Calibrations are coalesced by *epochs* of event time (``epoch`` seconds, the quotes' ``ts``,
never the wall clock). Each Kafka partition has a watermark, the latest epoch its ticks
reached; when a tick moves it on, the epoch closes for every smile and surface of that partition
that received quotes in it (*dirty*): the triggers are evaluated once, and each that is due
yields one :class:`SmileSnapshot` or :class:`SurfaceSnapshot` of its latest quotes. A smile or
surface is due when it has enough fresh quotes and, since its last snapshot, ``ticks``
(``surface_ticks``) new quotes arrived, the forward (the spot) moved by ``forward_move``
(relative), or ``max_age`` seconds of event time passed. One partition's ticks are in order, so
what a snapshot holds depends on the ticks alone, never on how they were cut into messages or
batches: a replay reproduces every snapshot. A tick later than its partition's watermark joins
the epoch that is open; one older than ``max_quote_age`` before it is ignored.

A snapshot ages out quotes older than ``max_quote_age`` and expired ones, and drops outliers:
vols more than ``outlier`` (relative) away from the median of their two neighbours on each side
along the same expiry (price quotes are not filtered).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from schemas import QuoteColumns, book_key, time_to_expiry
from schemas.daycount import expiry_epoch

__all__ = ["SmileSnapshot", "Snapshot", "SurfaceBook", "SurfaceConfig", "SurfaceSnapshot"]


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
    epoch: float = 0.025  # event-time seconds: each smile or surface is calibrated once per epoch

    def __post_init__(self) -> None:
        if not self.epoch > 0:
            raise ValueError(f"epoch must be positive seconds of event time, got {self.epoch}")


@dataclass(frozen=True)
class SmileSnapshot:
    """What one calibration fits: a frozen copy of a smile at the end of an epoch."""

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
    epoch: int = 0  # the event-time epoch it closes

    @property
    def key(self) -> str:
        return book_key(self.underlying, self.expiry)


@dataclass(frozen=True)
class SurfaceSnapshot:
    """What one Heston calibration fits: an equity index's surface at the end of an epoch.

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
    epoch: int = 0
    asset_class: str = "equity"

    @property
    def key(self) -> str:
        return book_key(self.underlying)

    @property
    def shape(self) -> tuple[int, int]:
        """(expiries, most strikes of one expiry)."""
        _, counts = np.unique(np.array(self.expiries, dtype=object), return_counts=True)
        return len(counts), int(counts.max())


Snapshot = SmileSnapshot | SurfaceSnapshot

# the columns of a slot: the latest quote of one option
_SLOT_FIELDS = (
    "book", "expiry", "strike",  # what the slot is
    "ts", "vol", "price", "call", "spot", "rate", "dividend", "open_interest",  # its latest quote
)  # fmt: skip
# the columns of a smile or surface
_BOOK_FIELDS = (
    "surface",  # 1 for an index surface, 0 for a smile
    "last_ts", "level", "pending", "fit_ts", "fit_level", "first_received",
    "live",  # slots holding a quote
)  # fmt: skip


class _Columns:
    """Named float64 columns that grow by doubling (rows are never removed)."""

    def __init__(self, names: tuple[str, ...], fill: dict[str, float]) -> None:
        self.fill = {name: fill.get(name, np.nan) for name in names}
        self.n, self.capacity = 0, 64
        self.cols = {name: np.full(self.capacity, value) for name, value in self.fill.items()}

    def add(self) -> int:
        if self.n == self.capacity:
            self.capacity *= 2
            for name, a in self.cols.items():
                grown = np.full(self.capacity, self.fill[name])
                grown[: a.size] = a
                self.cols[name] = grown
        self.n += 1
        return self.n - 1

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]


def _mid(mid: np.ndarray, bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
    """``mid`` where given, else the mean of bid and ask (NaN when neither), as Quote.vol."""
    return np.where(np.isnan(mid), 0.5 * (bid + ask), mid)


def _latest(keys: np.ndarray, ts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per distinct key, the position of its latest row: the greatest ``ts``, a tie going to
    the later row (so two messages taken in turn leave what one message of both would)."""
    order = np.lexsort((rows, ts, keys))
    return order[np.r_[keys[order][1:] != keys[order][:-1], True]]


def _outliers(vols: np.ndarray, groups: np.ndarray, limit: float) -> np.ndarray:
    """True where a vol is more than ``limit`` away (relative) from the median of the window of
    five quotes around it (three at the ends) within its group (one expiry of one smile or
    surface, contiguous in ``groups``), itself included: robust while fewer than half of a
    window are outliers. Every group at once: the groups are laid end to end with two NaN
    between them, so a window never reaches into the next group."""
    n = vols.size
    if n == 0:
        return np.zeros(0, bool)
    starts = np.r_[True, groups[1:] != groups[:-1]]
    rank = np.cumsum(starts) - 1  # each vol's group, 0, 1, 2...
    position = np.arange(n) + 2 * (rank + 1)
    padded = np.full(n + 2 * (rank[-1] + 2), np.nan)
    padded[position] = vols
    windows = np.sort(np.lib.stride_tricks.sliding_window_view(padded, 5)[position - 2], axis=1)
    count = 5 - np.isnan(windows).sum(axis=1)  # NaN sort last
    rows = np.arange(n)
    median = 0.5 * (windows[rows, (count - 1) // 2] + windows[rows, count // 2])
    sizes = np.bincount(rank)[rank]
    return (np.abs(vols / median - 1.0) > limit) & (sizes >= 3)


class SurfaceBook:
    """All smiles and surfaces of the underlyings a worker owns, as arrays."""

    def __init__(self, config: SurfaceConfig | None = None) -> None:
        self.config = config or SurfaceConfig()
        self._book_of: dict[tuple[str, str | None], int] = {}
        self._books: list[tuple[str, str, str | None]] = []  # (underlying, asset class, expiry)
        self._book_slots: list[list[int]] = []
        self._b = _Columns(
            _BOOK_FIELDS, {"surface": 0.0, "last_ts": -np.inf, "pending": 0.0, "live": 0.0}
        )
        self._slot_of: dict[tuple[int, int, float], int] = {}
        self._s = _Columns(_SLOT_FIELDS, {"ts": -np.inf, "call": -1.0})
        self._expiries: list[str] = []
        self._expiry_of: dict[str, int] = {}
        self._expiry_end = np.empty(0)  # each expiry's UTC epoch seconds
        self._watermark: dict[int, int] = {}  # partition -> latest epoch its ticks reached
        self._dirty: dict[int, set[int]] = {}  # partition -> books with quotes in the open epoch

    def __len__(self) -> int:
        return len(self._books)

    # -- taking quotes in -------------------------------------------------------------------

    def ingest(
        self, quotes: QuoteColumns, partition: int = 0, received_at: float = 0.0
    ) -> list[Snapshot]:
        """Add ``quotes`` (valid rows, in the order their partition holds them); return the
        snapshots of every epoch they closed, in order."""
        if quotes.n == 0:
            return []
        c = self.config
        num = quotes.numbers
        ts = num["ts"]
        books, expiries = self._locate(quotes)
        epochs = np.floor(ts / c.epoch).astype(np.int64)
        mark = self._watermark.get(partition)
        reached = np.maximum.accumulate(epochs if mark is None else np.maximum(epochs, mark))
        bounds = [0, *(np.flatnonzero(np.diff(reached)) + 1).tolist(), quotes.n]
        out: list[Snapshot] = []
        for lo, hi in itertools.pairwise(bounds):
            epoch = int(reached[lo])
            if mark is not None and epoch > mark:
                out += self._close(partition)
            mark = self._watermark[partition] = epoch
            horizon = epoch * c.epoch - c.max_quote_age
            rows = np.arange(lo, hi)[ts[lo:hi] >= horizon]  # older ones have aged out already
            if rows.size:
                self._apply(quotes, rows, books, expiries, partition, received_at)
        return out

    def flush(self, partition: int | None = None) -> list[Snapshot]:
        """Close the open epoch of ``partition`` (every partition when None) now: for a stream
        gone quiet, or the end of a replay. A tick of that epoch arriving later joins the
        next."""
        parts = sorted(self._dirty) if partition is None else [partition]
        return [snap for p in parts for snap in self._close(p)]

    def current(self) -> list[Snapshot]:
        """Every smile and surface as it stands (those with enough live quotes), without
        marking any as fitted: what a playbook job reads from the stream. Quotes past their
        age are left out as a calibration's snapshot would leave them."""
        ids = np.arange(len(self._books))
        epoch = max(self._watermark.values(), default=0)
        return self._snapshots(ids, epoch, mark=False) if ids.size else []

    def _locate(self, quotes: QuoteColumns) -> tuple[np.ndarray, np.ndarray]:
        """The book and expiry index of every row (new books and expiries registered)."""
        u, a, e = (quotes.text[name] for name in ("underlying", "asset_class", "expiry"))
        combo = (u.codes.astype(np.int64) * len(a.values) + a.codes) * len(e.values) + e.codes
        distinct, first, inverse = np.unique(combo, return_index=True, return_inverse=True)
        book_ids, expiry_ids = [0] * distinct.size, [0] * distinct.size
        # in order of first appearance: a book's index, hence its place in the snapshots of an
        # epoch, depends on its partition's ticks alone, not on where messages were cut
        for j in np.argsort(first, kind="stable").tolist():
            code = int(distinct[j])
            rest, ie = divmod(code, len(e.values))
            iu, ia = divmod(rest, len(a.values))
            underlying, asset_class, expiry = u.values[iu], a.values[ia], e.values[ie]
            key = (underlying, None if asset_class == "equity" else expiry)
            book = self._book_of.get(key)
            if book is None:
                book = self._book_of[key] = len(self._books)
                self._books.append((underlying, asset_class, key[1]))
                self._book_slots.append([])
                row = self._b.add()
                self._b["surface"][row] = key[1] is None
            xid = self._expiry_of.get(expiry)
            if xid is None:
                xid = self._expiry_of[expiry] = len(self._expiries)
                self._expiries.append(expiry)
                self._expiry_end = np.append(self._expiry_end, expiry_epoch(expiry))
            book_ids[j], expiry_ids[j] = book, xid
        return np.array(book_ids)[inverse], np.array(expiry_ids)[inverse]

    def _slots(self, books: np.ndarray, expiries: np.ndarray, strikes: np.ndarray) -> np.ndarray:
        """The slot of every (book, expiry, strike), new ones added."""
        out = np.empty(books.size, np.int64)
        get = self._slot_of.get
        for i, key in enumerate(zip(books.tolist(), expiries.tolist(), strikes.tolist())):
            slot = get(key)
            if slot is None:
                slot = self._slot_of[key] = self._s.add()
                for name, value in zip(("book", "expiry", "strike"), key):
                    self._s[name][slot] = value
                self._book_slots[key[0]].append(slot)
            out[i] = slot
        return out

    def _apply(
        self,
        quotes: QuoteColumns,
        rows: np.ndarray,
        books: np.ndarray,
        expiries: np.ndarray,
        partition: int,
        received_at: float,
    ) -> None:
        num = quotes.numbers
        ts, book = num["ts"][rows], books[rows]
        slot = self._slots(book, expiries[rows], num["strike"][rows])
        s, b = self._s, self._b
        # each slot takes its latest quote: the last of the greatest ts (a tie: the later row)
        last = _latest(slot, ts, rows)
        last = last[ts[last] >= s["ts"][slot[last]]]
        taken, src = slot[last], rows[last]
        newly = taken[np.isinf(s["ts"][taken])]
        np.add.at(b["live"], s["book"][newly].astype(np.int64), 1.0)
        s["ts"][taken] = num["ts"][src]
        s["vol"][taken] = _mid(num["mid_vol"][src], num["bid_vol"][src], num["ask_vol"][src])
        s["price"][taken] = _mid(
            num["mid_price"][src], num["bid_price"][src], num["ask_price"][src]
        )
        s["call"][taken] = num["call"][src]
        for name in ("spot", "rate", "dividend", "open_interest"):
            s[name][taken] = num[name][src]
        # each book's level: the forward (a smile) or the spot (a surface) of its latest quote
        last = _latest(book, ts, rows)
        last = last[ts[last] >= b["last_ts"][book[last]]]
        moved, src = book[last], rows[last]
        b["last_ts"][moved] = num["ts"][src]
        b["level"][moved] = np.where(b["surface"][moved] > 0, num["spot"][src], num["forward"][src])
        np.add.at(b["pending"], book, 1.0)
        touched = np.unique(book)
        fresh = touched[np.isnan(b["first_received"][touched])]
        b["first_received"][fresh] = received_at
        self._dirty.setdefault(partition, set()).update(touched.tolist())

    # -- closing an epoch -------------------------------------------------------------------

    def _close(self, partition: int) -> list[Snapshot]:
        """The snapshots of the dirty books of ``partition`` that are due, by book order."""
        dirty = self._dirty.pop(partition, set())
        if not dirty:
            return []
        c, b = self.config, self._b
        ids = np.array(sorted(dirty))
        surface = b["surface"][ids] > 0
        fit_ts, fit_level = b["fit_ts"][ids], b["fit_level"][ids]
        moved = np.abs(b["level"][ids] / fit_level - 1.0) >= c.forward_move
        due = (b["live"][ids] >= np.where(surface, c.surface_min_quotes, c.min_quotes)) & (
            np.isnan(fit_ts)
            | (b["pending"][ids] >= np.where(surface, c.surface_ticks, c.ticks))
            | (moved & (fit_level != 0))
            | (b["last_ts"][ids] - fit_ts >= c.max_age)
        )
        return self._snapshots(ids[due], self._watermark[partition]) if due.any() else []

    def _snapshots(self, ids: np.ndarray, epoch: int, mark: bool = True) -> list[Snapshot]:
        """Snapshots of books ``ids``, all at once: their live slots in one array, aged out,
        ordered by expiry and strike, outliers dropped; books left with too few quotes give
        none (and stay due). ``mark``: the books given are now fitted (their triggers reset)."""
        c, s, b = self.config, self._s, self._b
        lists = [self._book_slots[i] for i in ids.tolist()]
        sizes = np.array([len(x) for x in lists])
        slots = np.fromiter(itertools.chain.from_iterable(lists), np.int64, int(sizes.sum()))
        seg = np.repeat(np.arange(ids.size), sizes)  # which book of ``ids`` a slot is of
        live = np.isfinite(s["ts"][slots])
        slots, seg = slots[live], seg[live]
        last_ts = b["last_ts"][ids]
        xids = s["expiry"][slots].astype(np.int64)
        ends = self._expiry_end[xids]
        stale = (s["ts"][slots] < last_ts[seg] - c.max_quote_age) | (ends <= last_ts[seg])
        if stale.any():  # age out: the slot stays, empty, for the option's next quote
            s["ts"][slots[stale]] = -np.inf
            np.subtract.at(b["live"], ids[seg[stale]], 1.0)
            slots, seg, xids, ends = slots[~stale], seg[~stale], xids[~stale], ends[~stale]
        strikes = s["strike"][slots]
        order = np.lexsort((strikes, ends, seg))
        slots, seg, xids, strikes = slots[order], seg[order], xids[order], strikes[order]
        vols = s["vol"][slots]
        rated = np.flatnonzero(np.isfinite(vols))  # outliers among vol quotes, per expiry
        keep = np.ones(slots.size, bool)
        keep[
            rated[_outliers(vols[rated], seg[rated] * len(self._expiries) + xids[rated], c.outlier)]
        ] = False
        counts = np.bincount(seg, minlength=ids.size)
        kept_counts = np.bincount(seg[keep], minlength=ids.size)
        surface = b["surface"][ids] > 0
        ok = kept_counts >= np.where(surface, c.surface_min_quotes, c.min_quotes)
        received = b["first_received"][ids]
        if mark:
            done = ids[ok]
            b["pending"][done], b["fit_ts"][done] = 0.0, b["last_ts"][done]
            b["fit_level"][done], b["first_received"][done] = b["level"][done], np.nan
        # one conversion per column for every snapshot; each takes its slice
        slots, seg, xids = slots[keep], seg[keep], xids[keep]
        cols = {
            "strikes": strikes[keep].tolist(),
            "vols": vols[keep].tolist(),
            "ts": s["ts"][slots].tolist(),
        }
        starts = np.concatenate([[0], np.cumsum(kept_counts)]).tolist()
        out: list[Snapshot] = []
        for j in np.flatnonzero(ok).tolist():
            lo, hi = starts[j], starts[j + 1]
            book = int(ids[j])
            underlying, asset_class, expiry = self._books[book]
            common = {
                "underlying": underlying,
                "strikes": tuple(cols["strikes"][lo:hi]),
                "vols": tuple(cols["vols"][lo:hi]),
                "window_start": min(cols["ts"][lo:hi]),
                "window_end": float(last_ts[j]),
                "dropped": int(counts[j] - kept_counts[j]),
                "received_at": 0.0 if math.isnan(received[j]) else float(received[j]),
                "epoch": epoch,
            }
            if expiry is not None:
                out.append(
                    SmileSnapshot(
                        asset_class=asset_class,
                        expiry=expiry,
                        forward=float(b["level"][book]),
                        time_to_expiry=time_to_expiry(float(last_ts[j]), expiry),
                        **common,
                    )
                )
            else:
                out.append(
                    self._surface(slots[lo:hi], xids[lo:hi], float(b["level"][book]), common)
                )
        return out

    def _surface(
        self, slots: np.ndarray, xids: np.ndarray, spot: float, common: dict
    ) -> SurfaceSnapshot:
        s = self._s
        names = [self._expiries[x] for x in xids.tolist()]
        times = {x: time_to_expiry(common["window_end"], x) for x in set(names)}
        priced = np.isfinite(s["price"][slots]).tolist()
        return SurfaceSnapshot(
            spot=spot,
            expiries=tuple(names),
            times=tuple(times[x] for x in names),
            rates=tuple(s["rate"][slots].tolist()),
            dividends=tuple(s["dividend"][slots].tolist()),
            prices=tuple(s["price"][slots].tolist()),
            calls=tuple(
                bool(call) if p and call >= 0 else None
                for call, p in zip(s["call"][slots].tolist(), priced)
            ),
            quote_spots=tuple(s["spot"][slots].tolist()),
            open_interest=tuple(s["open_interest"][slots].tolist()),
            **common,
        )
