"""Rolling volatility surfaces as arrays, the snapshots that event-time epochs close, and
what the published parameters reflect.

Every (smile or surface, expiry, strike) the worker has seen owns a *slot*: one row of the
book's arrays holding that option's latest quote. An FX quote belongs to its smile (underlying,
expiry), calibrated alone (SABR); an equity quote to its index's whole surface (every expiry,
calibrated together with Heston). Quotes arrive as :class:`schemas.QuoteColumns` and update the
arrays vectorised.

**When a smile or surface is calibrated.** Every tick is checked, vectorised, against the
current fit of its smile or surface (:mod:`engine.model_values`: SABR in closed form at the
tick's own forward, a Heston surface through a grid of its vols in standardised moneyness, so a
forward or spot move alone is no trigger). A tick whose mid is farther from the model than its
*tolerance* (half its bid-ask spread in vol, at least ``tolerance_floor_bp``; a price quote
compares prices, the tolerance times its vega; a quote without bid and ask gets
``tolerance_bp``) makes its smile *due*; so does a smile never fitted, or one whose last fit is
``max_age`` seconds of event time older than its latest quote. A due smile is calibrated when
an epoch closes, but not sooner than ``min_interval`` seconds of event time after its last
calibration: calibrations per second are bounded by smiles / ``min_interval`` whatever the tick
rate.

**Epochs.** Calibrations are coalesced by *epochs* of event time (``epoch`` seconds of the
quotes' ``ts``, never the wall clock). Each Kafka partition's epoch closes when a tick of a later
epoch arrives; its due smiles and surfaces then yield one :class:`SmileSnapshot` or
:class:`SurfaceSnapshot` each of their latest quotes, which are fitted (the ``fit`` callback of
:meth:`SurfaceBook.ingest`) *before* the next epoch's ticks are checked, against the new fits
(:meth:`SurfaceBook.fitted`). One partition's ticks are in order, so what is fitted and when
depends on the ticks alone, never on how they were cut into messages or batches: a replay
reproduces every snapshot and every decision. A tick later than its partition's epoch joins the
epoch that is open; one older than ``max_quote_age`` before it is refused (:meth:`SurfaceBook.screen`:
the worker dead-letters it as ``stale``).

**Coverage.** :meth:`SurfaceBook.coverage` says, per partition, the event time up to which every
tick is reflected by the parameters fitted so far: within tolerance of its smile's fit, or
included in a fit since. A tick that made its smile due holds it back until that smile's fit;
a smile with too few quotes to fit is named instead of holding it back forever.

A snapshot ages out quotes older than ``max_quote_age`` and expired ones, and drops outliers:
vols more than ``outlier`` (relative) away from the median of their two neighbours on each side
along the same expiry (price quotes are not filtered).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from engine.blackscholes import forward_price
from engine.heston import PARAM_NAMES as HESTON_NAMES
from engine.model_values import (
    VolGrid,
    grid_vols,
    heston_vol_grid,
    quote_checks,
)
from engine.sabr import PARAM_NAMES as SABR_NAMES
from schemas import Params, QuoteColumns, RowProblem, book_key, mid, time_to_expiry
from schemas.daycount import YEAR_SECONDS, expiry_epoch

__all__ = [
    "Coverage",
    "SmileSnapshot",
    "Snapshot",
    "SurfaceBook",
    "SurfaceConfig",
    "SurfaceSnapshot",
]


@dataclass(frozen=True)
class SurfaceConfig:
    tolerance_floor_bp: float = 5.0  # vol bp: the least tolerance of a quote with bid and ask
    tolerance_bp: float = 10.0  # vol bp: the tolerance of a quote without bid and ask
    min_interval: float = 0.5  # event-time seconds between two calibrations of one smile
    max_age: float = 30.0  # event-time seconds after which a smile with news is due anyway
    min_quotes: int = 5
    max_quote_age: float = 300.0
    outlier: float = 0.5
    surface_min_quotes: int = 20
    epoch: float = 0.025  # event-time seconds: each smile or surface is calibrated once per epoch
    evict_after: float = 3600.0  # event-time seconds without a quote before a book is dropped

    def __post_init__(self) -> None:
        if not self.epoch > 0:
            raise ValueError(f"epoch must be positive seconds of event time, got {self.epoch}")
        if not self.evict_after >= self.max_quote_age:
            raise ValueError(f"evict_after ({self.evict_after} s) must be at least max_quote_age "
                             f"({self.max_quote_age} s): a book still quoted would be dropped")  # fmt: skip
        for name in ("tolerance_floor_bp", "tolerance_bp", "min_interval", "max_age"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


class Coverage(NamedTuple):
    """What the fits so far reflect of one partition's ticks: every tick at or before
    ``event_time`` (NaN: no tick yet); ``pending`` smiles and surfaces are due and not yet
    fitted; ``unfit`` names those with quotes not reflected because they are too few to fit."""

    event_time: float
    pending: int
    unfit: tuple[str, ...]


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
_EXPIRY_CODES = 1 << 20  # more distinct expiries than a book will hold: a slot key's radix
# the columns of a smile or surface
_BOOK_FIELDS = (
    "surface",  # 1 for an index surface, 0 for a smile
    "last_ts", "level", "fit_ts", "first_received",
    "live",  # slots holding a quote
    "partition",  # the quotes partition of its underlying
    "due_ts",  # event time of its first tick out of tolerance since its last snapshot
    "model",  # its current fit: 0 none, 1 SABR (the columns below), 2 Heston (a vol grid)
    *SABR_NAMES,
)  # fmt: skip


class _Columns:
    """Named float64 columns that grow by doubling; :meth:`keep` drops rows (the capacity
    stays: what was once needed is needed again)."""

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

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (ascending), moved to the front in their order."""
        for name, a in self.cols.items():
            a[: rows.size] = a[rows]
            a[rows.size : self.n] = self.fill[name]
        self.n = rows.size

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]


def _grouped(keys: np.ndarray, values: np.ndarray) -> tuple[list[int], list[list[int]]]:
    """``values`` grouped by their ``keys``: the distinct keys (sorted) and each one's values."""
    if not keys.size:
        return [], []
    order = np.argsort(keys, kind="stable")
    distinct, starts = np.unique(keys[order], return_index=True)
    return distinct.tolist(), [v.tolist() for v in np.split(values[order], starts[1:])]


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
    """All smiles and surfaces of the underlyings a worker owns, as arrays, with the current
    fit of each (what new ticks are checked against)."""

    def __init__(self, config: SurfaceConfig | None = None) -> None:
        self.config = config or SurfaceConfig()
        self._underlying_of: dict[str, int] = {}
        # the book of (underlying, expiry): row by underlying, column 1 + expiry (0: a surface)
        self._book_table = np.full((8, 128), -1, np.int64)
        self._books: list[tuple[str, str, str | None]] = []  # (underlying, asset class, expiry)
        self._book_slots: list[list[int]] = []
        self._b = _Columns(
            _BOOK_FIELDS,
            {"surface": 0.0, "last_ts": -np.inf, "live": 0.0, "model": 0.0, "partition": -1.0},
        )
        # every slot's key (book * EXPIRY_CODES + expiry, strike as the imaginary part), sorted
        self._slot_keys = np.empty(0, np.complex128)
        self._slot_ids = np.empty(0, np.int64)  # the slot of each key
        self._s = _Columns(_SLOT_FIELDS, {"ts": -np.inf, "call": -1.0})
        self._expiries: list[str] = []
        self._expiry_of: dict[str, int] = {}
        self._expiry_end = np.empty(0)  # each expiry's UTC epoch seconds
        self._grids: dict[int, tuple[np.ndarray, VolGrid]] = {}  # surface -> expiry rows, grid
        self._refitted: set[int] = set()  # books given a new fit since ingest began
        self.ticks_out = 0  # ticks taken that no current fit reflected: each needed a fit
        self._watermark: dict[int, int] = {}  # partition -> latest epoch its ticks reached
        self._seen: dict[int, float] = {}  # partition -> latest event time of its ticks
        self._dirty: dict[int, set[int]] = {}  # partition -> books with quotes in the open epoch
        self._pending: dict[int, set[int]] = {}  # partition -> due books waiting for an interval
        self._partition_books: dict[int, list[int]] = {}
        self._sweep_at: dict[int, float] = {}  # partition -> event time of its next eviction
        self.evicted: list[str] = []  # keys of the books dropped since the caller last took them

    def __len__(self) -> int:
        return len(self._books)

    # -- taking quotes in -------------------------------------------------------------------

    def screen(
        self, quotes: QuoteColumns, partition: int | np.ndarray = 0
    ) -> tuple[np.ndarray, list[RowProblem]]:
        """What of valid ``quotes`` (each partition's in order) the book refuses before
        :meth:`ingest`, which is then given the kept rows: (kept rows as a mask, the refused
        ones with why). A tick older than ``max_quote_age`` behind the epoch its partition
        reached is ``stale``: the book would take nothing from it. (A tick older than the
        quote its option holds is taken as nothing too, but not refused: a late resend of a
        tick the book already reflects.)"""
        n = quotes.n
        keep = np.ones(n, bool)
        problems: list[RowProblem] = []
        c = self.config
        parts = np.broadcast_to(np.asarray(partition, np.int64), (n,))
        ts = quotes.numbers["ts"]
        epochs = np.floor(ts / c.epoch).astype(np.int64)
        for p in np.unique(parts).tolist():
            mine = np.flatnonzero(parts == p)
            mark = self._watermark.get(p)
            e = epochs[mine] if mark is None else np.maximum(epochs[mine], mark)
            reached = np.maximum.accumulate(e)  # as ingest reaches them
            late = ts[mine] < reached * c.epoch - c.max_quote_age
            for i, r in zip(mine[late].tolist(), reached[late].tolist()):
                detail = (f"{r * c.epoch - ts[i]:.0f} s behind its partition's event time (the "
                          f"book keeps quotes for {c.max_quote_age:.0f} s)")  # fmt: skip
                problems.append(RowProblem(i, "stale", "ts", detail))
            keep[mine[late]] = False
        return keep, problems

    def ingest(
        self,
        quotes: QuoteColumns,
        partition: int | np.ndarray = 0,
        received_at: float = 0.0,
        fit: Callable[[list[Snapshot]], None] | None = None,
        *,
        counted: bool = True,
    ) -> list[Snapshot]:
        """Add ``quotes`` (valid rows, each partition's in the order it holds them;
        ``partition`` one for all rows or one per row); ``counted``: their ticks out of
        tolerance count in :attr:`ticks_out` (not when another worker took them in first).
        The epochs they close yield snapshots, in order; ``fit`` (when given) calibrates each
        epoch's before the next epoch's ticks are checked, and calls :meth:`fitted`. Returns
        every snapshot."""
        if quotes.n == 0:
            return []
        c = self.config
        ts = quotes.numbers["ts"]
        parts = np.broadcast_to(np.asarray(partition, np.int64), ts.shape)
        books, expiries = self._locate(quotes, parts)
        epochs = np.floor(ts / c.epoch).astype(np.int64)
        reached = np.empty_like(epochs)
        for p in np.unique(parts).tolist():  # each partition's epoch only moves on
            mine = np.flatnonzero(parts == p)
            mark = self._watermark.get(p)
            e = epochs[mine] if mark is None else np.maximum(epochs[mine], mark)
            reached[mine] = np.maximum.accumulate(e)
        order = np.argsort(reached, kind="stable")  # by epoch; each partition's rows in order
        cuts = np.flatnonzero(np.diff(reached[order])) + 1
        # every tick checked at once against the fits as they stand; a tick whose book is
        # refitted at an epoch before its own is checked again then, against the new fit
        self._refitted = set()
        within = self._within(quotes.numbers, np.arange(quotes.n), books, expiries)
        out: list[Snapshot] = []
        for rows in np.split(order, cuts):
            epoch = int(reached[rows[0]])
            snaps: list[Snapshot] = []
            for p in np.unique(parts[rows]).tolist():
                mark = self._watermark.get(p)
                if mark is not None and epoch > mark:
                    snaps += self._close(p)
                self._watermark[p] = epoch
            if snaps:
                out += snaps
                if fit is not None:
                    fit(snaps)
            remap = self._sweep(np.unique(parts[rows]).tolist(), epoch * c.epoch)
            if remap is not None:  # books renumbered; a later row of one dropped starts anew
                books = np.where(books >= 0, remap[books], -1)
                lost = np.flatnonzero(books < 0)
                lost = lost[reached[lost] >= epoch]
                if lost.size:
                    books[lost], _ = self._locate(quotes.take(lost), parts[lost])
                    within[lost] = False
            rows = np.sort(rows[ts[rows] >= epoch * c.epoch - c.max_quote_age])  # aged out
            if self._refitted and rows.size:
                again = rows[np.isin(books[rows], list(self._refitted))]
                within[again] = self._within(quotes.numbers, again, books[again], expiries[again])
            if rows.size:
                self._apply(quotes, rows, books, expiries, parts, received_at, within[rows],
                            counted)  # fmt: skip
        return out

    def flush(self, partition: int | None = None) -> list[Snapshot]:
        """Close the open epoch of ``partition`` (every partition when None) now: for a stream
        gone quiet, or the end of a replay. A tick of that epoch arriving later joins the
        next."""
        parts = (
            sorted(self._dirty.keys() | self._pending.keys()) if partition is None else [partition]
        )
        return [snap for p in parts for snap in self._close(p)]

    def current(self) -> list[Snapshot]:
        """Every smile and surface as it stands (those with enough live quotes), without
        marking any as fitted: what a playbook job reads from the stream. Quotes past their
        age are left out as a calibration's snapshot would leave them."""
        ids = np.arange(len(self._books))
        epoch = max(self._watermark.values(), default=0)
        return self._snapshots(ids, epoch, mark=False) if ids.size else []

    def fitted(self, snapshots: Sequence[Snapshot], params: Sequence[Params | None]) -> None:
        """Take the parameters fitted to ``snapshots`` as their smiles' and surfaces' current
        fits: later ticks are checked against them. A fit without finite parameters (not
        converged, or None: the calibration raised) leaves none, so every later tick of that
        smile makes it due."""
        b = self._b
        for snap, message in zip(snapshots, params):
            expiry = getattr(snap, "expiry", None)  # a surface's book has none: column 0
            column = 0 if expiry is None else self._expiry_of[expiry] + 1
            book = int(self._book_table[self._underlying_of[snap.underlying], column])
            values = message.params if message is not None else {}
            usable = (
                message is not None
                and message.converged
                and all(v is not None and math.isfinite(v) for v in values.values())
            )
            b["model"][book] = 0.0
            self._grids.pop(book, None)
            self._refitted.add(book)
            if not usable:
                continue
            if isinstance(snap, SmileSnapshot):
                for name in SABR_NAMES:
                    b[name][book] = values[name]
                b["model"][book] = 1.0
                continue
            names, first = np.unique(np.array(snap.expiries), return_index=True)
            rows = np.full(len(self._expiries), -1)
            rows[[self._expiry_of[x] for x in names.tolist()]] = np.arange(names.size)
            grid = heston_vol_grid(
                snap.spot,
                np.array(snap.times)[first],
                np.array(snap.rates)[first],
                np.array(snap.dividends)[first],
                *(values[name] for name in HESTON_NAMES),
            )
            self._grids[book] = (rows, grid)
            b["model"][book] = 2.0

    def coverage(self, partition: int, quiet_until: float | None = None) -> Coverage:
        """What the fits so far reflect of ``partition``'s ticks (see :class:`Coverage`).
        ``quiet_until``: the event time the whole stream has reached, for a partition known to
        be quiet (no message for a while): with nothing pending, every tick it could have sent
        before then is reflected too."""
        c, b = self.config, self._b
        seen = self._seen.get(partition, math.nan)
        ids = np.array(self._partition_books.get(partition, []), np.int64)
        due = np.isfinite(b["due_ts"][ids])
        surface = b["surface"][ids] > 0
        able = b["live"][ids] >= np.where(surface, c.surface_min_quotes, c.min_quotes)
        held = due & able
        unfit = tuple(book_key(*self._books[i][::2]) for i in ids[due & ~able].tolist())
        if held.any():
            first = float(np.min(b["due_ts"][ids[held]]))
            return Coverage(min(seen, float(np.nextafter(first, -np.inf))), int(held.sum()), unfit)
        if quiet_until is not None and not math.isnan(seen):
            seen = max(seen, quiet_until)
        return Coverage(seen, 0, unfit)

    def latest(self) -> tuple[dict[int, float], dict[str, float]]:
        """The event time of the newest tick of each partition, and of each smile and surface
        with live quotes: what the stream's health rules hold watermarks and fits against."""
        live = np.flatnonzero(self._b["live"][: len(self._books)] > 0)
        last = self._b["last_ts"]
        keys = {book_key(*self._books[i][::2]): float(last[i]) for i in live.tolist()}
        return dict(self._seen), keys

    def partitions(self) -> list[int]:
        """The partitions whose ticks the book has taken."""
        return sorted(self._seen)

    def _locate(self, quotes: QuoteColumns, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The book and expiry index of every row (new books and expiries registered), by
        table lookups: Python runs only over a message's distinct names and new books."""
        u, a, e = (quotes.text[name] for name in ("underlying", "asset_class", "expiry"))
        uid = np.array([self._id(self._underlying_of, v) for v in u.values], np.int64)[u.codes]
        xid = np.array([self._expiry(v) for v in e.values], np.int64)[e.codes]
        equity = np.array([v == "equity" for v in a.values], bool)[a.codes]
        column = np.where(equity, 0, xid + 1)  # a surface's book has no expiry: column 0
        rows, cols = self._book_table.shape
        if uid.max() >= rows or column.max() >= cols:
            grown = np.full((max(rows, 2 * uid.max() + 1), max(cols, 2 * column.max() + 1)), -1)
            grown[:rows, :cols] = self._book_table
            self._book_table = grown
        books = self._book_table[uid, column]
        new = np.flatnonzero(books < 0)
        if new.size:
            # in order of first appearance: a book's index, hence its place in the snapshots
            # of an epoch, depends on its partition's ticks alone, not on where messages were cut
            _, first = np.unique(uid[new] * cols + column[new], return_index=True)
            for i in np.sort(new[first]).tolist():
                underlying = u.values[u.codes[i]]
                expiry = None if equity[i] else e.values[e.codes[i]]
                book = self._book_table[uid[i], column[i]] = len(self._books)
                self._books.append((underlying, a.values[a.codes[i]], expiry))
                self._book_slots.append([])
                row = self._b.add()
                self._b["surface"][row] = expiry is None
                self._b["partition"][row] = partition = int(parts[i])
                self._partition_books.setdefault(partition, []).append(book)
            books = self._book_table[uid, column]
        return books, xid

    # -- dropping books no longer quoted ---------------------------------------------------

    def _sweep(self, partitions: list[int], now: float) -> np.ndarray | None:
        """Drop the books of ``partitions`` with no quote for ``evict_after`` seconds of their
        partition's event time ``now`` (looked at every quarter of it; their keys go to
        :attr:`evicted`), so that the book holds what is quoted, not all ever quoted. Returns
        the old-to-new book numbers (-1: dropped) when any was. Decided by event time at epoch
        boundaries: a replay drops the same books at the same ticks, however it was batched.
        A dropped book quoted again starts anew: no fit, so its first tick makes it due."""
        c = self.config
        due = [p for p in partitions if now >= self._sweep_at.get(p, -math.inf)]
        if not due:
            return None
        for p in due:
            self._sweep_at[p] = now + c.evict_after / 4
        n, b = len(self._books), self._b
        last = b["last_ts"][:n]
        idle = np.isin(b["partition"][:n], due) & np.isfinite(last) & (last < now - c.evict_after)
        if not idle.any():
            return None
        self.evicted += [book_key(*self._books[i][::2]) for i in np.flatnonzero(idle).tolist()]
        return self._compact(np.flatnonzero(~idle))

    def _compact(self, keep: np.ndarray) -> np.ndarray:
        """Keep only books ``keep`` (ascending) and their slots, renumbered in the same order
        (a partition's books keep their order: the snapshots' order). Returns old-to-new."""
        remap = np.full(len(self._books), -1, np.int64)
        remap[keep] = np.arange(keep.size)
        s = self._s
        slots = np.flatnonzero(remap[s["book"][: s.n].astype(np.int64)] >= 0)
        s.keep(slots)
        n = s.n
        book = remap[s["book"][:n].astype(np.int64)]
        s["book"][:n] = book
        keys = (book * _EXPIRY_CODES + s["expiry"][:n].astype(np.int64)) + 1j * s["strike"][:n]
        self._slot_ids = np.argsort(keys, kind="stable").astype(np.int64)
        self._slot_keys = keys[self._slot_ids]
        self._book_slots = [[] for _ in range(keep.size)]
        for i, mine in zip(*_grouped(book, np.arange(n))):
            self._book_slots[i] = mine
        self._books = [self._books[i] for i in keep.tolist()]
        self._b.keep(keep)
        table = self._book_table
        table[table >= 0] = remap[table[table >= 0]]
        moved = lambda ids: [int(remap[i]) for i in ids if remap[i] >= 0]  # noqa: E731
        self._grids = {int(remap[i]): g for i, g in self._grids.items() if remap[i] >= 0}
        self._refitted = set(moved(self._refitted))
        self._dirty = {p: set(moved(ids)) for p, ids in self._dirty.items()}
        self._pending = {p: set(moved(ids)) for p, ids in self._pending.items()}
        self._partition_books = {p: moved(ids) for p, ids in self._partition_books.items()}
        return remap

    @staticmethod
    def _id(ids: dict[str, int], name: str) -> int:
        return ids.setdefault(name, len(ids))

    def _expiry(self, expiry: str) -> int:
        xid = self._expiry_of.get(expiry)
        if xid is None:
            xid = self._expiry_of[expiry] = len(self._expiries)
            self._expiries.append(expiry)
            self._expiry_end = np.append(self._expiry_end, expiry_epoch(expiry))
        return xid

    def _slots(self, books: np.ndarray, expiries: np.ndarray, strikes: np.ndarray) -> np.ndarray:
        """The slot of every (book, expiry, strike), new ones added in order of first
        appearance: a binary search of the sorted keys, Python only for new options."""
        keys = (books * _EXPIRY_CODES + expiries) + 1j * strikes
        at = np.searchsorted(self._slot_keys, keys)
        known = at < self._slot_keys.size
        known[known] = self._slot_keys[at[known]] == keys[known]
        if not known.all():
            new, first = np.unique(keys[~known], return_index=True)
            added = np.empty(new.size, np.int64)
            for j in np.argsort(first, kind="stable").tolist():
                book, expiry = divmod(int(new[j].real), _EXPIRY_CODES)
                slot = added[j] = self._s.add()
                self._s["book"][slot], self._s["expiry"][slot] = book, expiry
                self._s["strike"][slot] = new[j].imag
                self._book_slots[book].append(slot)
            where = np.searchsorted(self._slot_keys, new)
            self._slot_keys = np.insert(self._slot_keys, where, new)
            self._slot_ids = np.insert(self._slot_ids, where, added)
            at = np.searchsorted(self._slot_keys, keys)
        return self._slot_ids[at]

    def _apply(
        self,
        quotes: QuoteColumns,
        rows: np.ndarray,
        books: np.ndarray,
        expiries: np.ndarray,
        parts: np.ndarray,
        received_at: float,
        within: np.ndarray,
        counted: bool,
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
        s["vol"][taken] = mid(num["mid_vol"][src], num["bid_vol"][src], num["ask_vol"][src])
        s["price"][taken] = mid(num["mid_price"][src], num["bid_price"][src], num["ask_price"][src])
        s["call"][taken] = num["call"][src]
        for name in ("spot", "rate", "dividend", "open_interest"):
            s[name][taken] = num[name][src]
        # each book's level: the forward (a smile) or the spot (a surface) of its latest quote
        last = _latest(book, ts, rows)
        last = last[ts[last] >= b["last_ts"][book[last]]]
        moved, src = book[last], rows[last]
        b["last_ts"][moved] = num["ts"][src]
        b["level"][moved] = np.where(b["surface"][moved] > 0, num["spot"][src], num["forward"][src])
        # every tick that leaves its book's fit makes the book due from its event time
        out = ~within
        if counted:
            self.ticks_out += int(out.sum())
        if out.any():
            np.fmin.at(b["due_ts"], book[out], ts[out])
        touched = np.unique(book)
        fresh = touched[np.isnan(b["first_received"][touched])]
        b["first_received"][fresh] = received_at
        p = parts[rows]
        for partition in np.unique(p).tolist():
            self._seen[partition] = max(
                self._seen.get(partition, -math.inf), float(ts[p == partition].max())
            )
        for partition, ids in zip(*_grouped(b["partition"][touched].astype(np.int64), touched)):
            self._dirty.setdefault(partition, set()).update(ids)

    def _within(
        self, num: dict, rows: np.ndarray, book: np.ndarray, xids: np.ndarray
    ) -> np.ndarray:
        """True where a tick lies within tolerance of its book's current fit (False where the
        book has no fit, or the fit no value there)."""
        if not rows.size:
            return np.zeros(0, bool)
        c, b = self.config, self._b
        ts, strike = num["ts"][rows], num["strike"][rows]
        bid_v, ask_v = num["bid_vol"][rows], num["ask_vol"][rows]
        vol = mid(num["mid_vol"][rows], bid_v, ask_v)
        t = (self._expiry_end[xids] - ts) / YEAR_SECONDS
        kind = b["model"][book]
        sabr = kind == 1.0
        grid = np.full(rows.size, np.nan)  # a Heston surface's vol, read off its fit's grid
        heston = np.flatnonzero(kind == 2.0)
        spot, rate, dividend = (num[name][rows] for name in ("spot", "rate", "dividend"))
        for surface, mine in zip(*_grouped(book[heston], heston)):
            mine = np.asarray(mine)
            grid_rows, vol_grid = self._grids[surface]
            x = xids[mine]  # an expiry first seen after the fit has no row: -1
            at = np.where(x < grid_rows.size, grid_rows[np.minimum(x, grid_rows.size - 1)], -1)
            known = mine[at >= 0]
            forward = forward_price(spot[known], rate[known], dividend[known], t[known])
            grid[known] = grid_vols(vol_grid, at[at >= 0], np.log(strike[known] / forward))
        model, price, vega = quote_checks(
            strike, num["forward"][rows], t,
            *(np.where(sabr, b[name][book], np.nan) for name in SABR_NAMES),
            grid, spot, rate, dividend, num["call"][rows] > 0, priced=np.isnan(vol),
        )  # fmt: skip
        floor, flat = 1e-4 * c.tolerance_floor_bp, 1e-4 * c.tolerance_bp
        half = 0.5 * (ask_v - bid_v)
        tolerance = np.where(np.isnan(half), flat, np.maximum(half, floor))
        within = np.abs(vol - model) <= tolerance  # NaN (no vol, no model) is not within
        priced = np.flatnonzero(np.isnan(vol) & np.isfinite(model))
        if priced.size:  # a price quote: its gap in price against the tolerance times vega
            bid_p, ask_p = num["bid_price"][rows][priced], num["ask_price"][rows][priced]
            quoted = mid(num["mid_price"][rows][priced], bid_p, ask_p)
            price, vega = price[priced], vega[priced]
            half = 0.5 * (ask_p - bid_p)
            tolerance = np.where(np.isnan(half), flat * vega, np.maximum(half, floor * vega))
            within[priced] = np.abs(quoted - price) <= tolerance
        return within

    # -- closing an epoch -------------------------------------------------------------------

    def _close(self, partition: int) -> list[Snapshot]:
        """The snapshots of the books of ``partition`` that are due now (those with news in
        the epoch, or waiting for their interval), by book order."""
        waiting = self._pending.pop(partition, set())
        candidates = self._dirty.pop(partition, set()) | waiting
        if not candidates:
            return []
        c, b = self.config, self._b
        ids = np.array(sorted(candidates))
        fit_ts, last_ts, due_ts = b["fit_ts"][ids], b["last_ts"][ids], b["due_ts"][ids]
        surface = b["surface"][ids] > 0
        able = b["live"][ids] >= np.where(surface, c.surface_min_quotes, c.min_quotes)
        news = np.isfinite(due_ts) | (last_ts - fit_ts >= c.max_age)
        spaced = np.isnan(fit_ts) | (self._seen[partition] - fit_ts >= c.min_interval)
        due = able & news & spaced
        waiting = ids[able & np.isfinite(due_ts) & ~due]
        if waiting.size:
            self._pending[partition] = set(waiting.tolist())
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
            b["fit_ts"][done], b["due_ts"][done] = b["last_ts"][done], np.nan
            b["first_received"][done] = np.nan
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
