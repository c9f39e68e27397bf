"""Synthetic option quote ticks from evolving models, for demos, load and samples.

FX: each smile (pair x expiry, 15 strikes spanning +-2.2 ATM standard deviations) quotes SABR
vols; bid/ask straddle the vol by 0.25-0.5% of it. Equity indices: each index quotes Heston
prices of out-of-the-money options (11 strikes per expiry from -2 to +1.5 standard deviations)
with spot, rate and dividend, a bid/ask of 0.5-1% around the model price, and an open interest
(some below the playbook's liquidity filter of 100). Every smile or index first quotes all its
options; then every tick re-quotes one random option of a random smile or index expiry while
forwards and spots random-walk and SABR's alpha and Heston's v0 drift. Deterministic for a
given seed.

Ticks are made as columns (:meth:`TickSimulator.columns`), thousands at once: the random walks
are cumulative sums per smile or index, the vols and prices one vectorised Hagan or Heston call
per chunk, so a load generator makes millions of ticks a second.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator

import jax
import numpy as np

from engine.heston import heston_price
from engine.sabr import hagan_vol
from schemas import Quote, QuoteColumns
from schemas.columns import Text

__all__ = ["INDICES", "PAIRS", "TickSimulator"]

PAIRS = {  # forward, ATM vol, rho, nu at one year
    "EURUSD": (1.085, 0.075, -0.10, 0.55),
    "USDJPY": (151.2, 0.095, -0.35, 0.70),
    "GBPUSD": (1.265, 0.082, -0.20, 0.60),
    "AUDUSD": (0.655, 0.095, -0.30, 0.75),
    "USDCHF": (0.885, 0.080, 0.05, 0.60),
    "USDCAD": (1.395, 0.065, 0.10, 0.50),
}
INDICES = {  # spot, rate, dividend, Heston v0, kappa, theta, sigma, rho (Feller holds)
    "SPX": (5000.0, 0.040, 0.013, 0.030, 2.0, 0.040, 0.38, -0.70),
    "SX5E": (4900.0, 0.025, 0.030, 0.035, 1.5, 0.045, 0.35, -0.65),
    "NDX": (17500.0, 0.040, 0.007, 0.045, 2.5, 0.055, 0.50, -0.60),
    "NKY": (38000.0, 0.001, 0.018, 0.040, 1.8, 0.050, 0.40, -0.60),
    "UKX": (8200.0, 0.045, 0.035, 0.025, 2.2, 0.035, 0.36, -0.70),
}
TENOR_DAYS = (30, 91, 182, 365)
_vols = jax.jit(hagan_vol)
_prices = jax.jit(heston_price)


class TickSimulator:
    """``columns(start, rate)`` yields ticks as columns with event times from ``start`` at
    ``rate``/s; ``ticks(start, rate)`` the same ticks as :class:`schemas.Quote` objects."""

    def __init__(
        self,
        pairs: int = 3,
        tenors=TENOR_DAYS,
        seed: int = 5,
        source: str = "simulated",
        indices: int = 0,
        index_tenors=None,
    ):
        if not 0 <= pairs <= len(PAIRS) or not 0 <= indices <= len(INDICES) or pairs + indices < 1:
            raise ValueError(
                f"pairs must be 0..{len(PAIRS)} and indices 0..{len(INDICES)}, not both 0"
            )
        self.rng = np.random.default_rng(seed)
        self.source = source
        self.tenors = tuple(tenors)
        self.index_tenors = self.tenors if index_tenors is None else tuple(index_tenors)
        self.pairs = list(PAIRS)[:pairs]
        self.indices = list(INDICES)[:indices]

    def _books(self, start: float) -> dict[str, np.ndarray]:
        """Per smile (FX) or index expiry, as arrays: underlying and expiry codes, time,
        strikes (padded with NaN), and the walk each follows (its own smile's, or its index's,
        shared by the index's expiries)."""
        today = dt.datetime.fromtimestamp(start, dt.UTC).date()
        days = sorted(set(self.tenors) | set(self.index_tenors))
        expiry = {d: i for i, d in enumerate(days)}
        rows: dict[str, list] = {k: [] for k in ("u", "x", "t", "walk", "strikes")}
        walks: dict[str, list] = {k: [] for k in ("level", "vol", "rho", "nu")}
        for u, pair in enumerate(self.pairs):
            fwd, atm, rho, nu = PAIRS[pair]
            for d in self.tenors:
                x, t = expiry[d], d / 365.0
                rows["u"].append(u)
                rows["x"].append(x)
                rows["t"].append(t)
                rows["walk"].append(len(walks["level"]))
                rows["strikes"].append(fwd * np.exp(atm * np.sqrt(t) * np.linspace(-2.2, 2.2, 15)))
                walks["level"].append(fwd)
                walks["vol"].append(atm * fwd**0.5)  # SABR alpha at beta 0.5
                walks["rho"].append(rho)
                walks["nu"].append(nu / max(t, 0.25) ** 0.25)
        for i, name in enumerate(self.indices):
            spot, r, q, v0, *_ = INDICES[name]
            walk = len(walks["level"])
            for d in self.index_tenors:
                x, t = expiry[d], d / 365.0
                forward = spot * math.exp((r - q) * t)
                std = math.sqrt(INDICES[name][5] * t)
                strikes = forward * np.exp(std * np.linspace(-2.0, 1.5, 11))
                rows["u"].append(len(self.pairs) + i)
                rows["x"].append(x)
                rows["t"].append(t)
                rows["walk"].append(walk)
                rows["strikes"].append(np.r_[strikes, [np.nan] * 4])
            walks["level"].append(spot)
            walks["vol"].append(v0)
            walks["rho"].append(np.nan)
            walks["nu"].append(np.nan)
        self._names = tuple(self.pairs + self.indices)
        self._expiries = tuple((today + dt.timedelta(days=d)).isoformat() for d in days)
        self._fixed = np.array(
            [(np.nan,) * 6] * len(self.pairs)
            + [INDICES[n][1:3] + INDICES[n][4:] for n in self.indices]
        )  # per underlying: r, q, kappa, theta, sigma, rho (indices)
        self._walks = {k: np.array(v, dtype=float) for k, v in walks.items()}
        books = {k: np.array(v) for k, v in rows.items()}
        books["n_strikes"] = np.isfinite(books["strikes"]).sum(axis=1)
        books["index"] = books["u"] >= len(self.pairs)
        return books

    def _step(self, walk: np.ndarray, index: np.ndarray) -> dict[str, np.ndarray]:
        """Each tick's walk moved one step (forward and alpha of a smile, spot and v0 of an
        index, multiplicative), applied in tick order: the value each tick quotes at."""
        n = walk.size
        noise = self.rng.standard_normal((2, n))
        level_step = np.where(index, 1e-5, 2e-5) * noise[0]  # spot ~20% a year at 10 ticks/s
        vol_step = np.where(index, 1e-4, 1e-3) * noise[1]
        order = np.argsort(walk, kind="stable")
        sorted_walk = walk[order]
        first = np.r_[True, sorted_walk[1:] != sorted_walk[:-1]]
        out = {}
        for name, step in (("level", level_step), ("vol", vol_step)):
            grown = np.cumsum(np.log1p(step[order]))
            base = np.maximum.accumulate(np.where(first, np.arange(n), 0))
            before = np.where(base > 0, grown[base - 1], 0.0)
            value = self._walks[name][sorted_walk] * np.exp(grown - before)
            out[name] = np.empty(n)
            out[name][order] = value
            last = np.r_[sorted_walk[1:] != sorted_walk[:-1], True]
            self._walks[name][sorted_walk[last]] = value[last]
        return out

    def columns(
        self,
        start: float,
        rate: float,
        count: int | None = None,
        chunk: int = 4096,
        opening: bool = True,
    ) -> Iterator[QuoteColumns]:
        """The opening quotes of every smile and index (1 ms apart; left out when not
        ``opening``), then ``count`` (or endless) updates at ``rate`` a second, ``chunk`` rows
        a message."""
        books = self._books(start)
        first = np.flatnonzero(np.isfinite(books["strikes"]).ravel()) if opening else []
        book, strike = np.divmod(np.asarray(first, np.int64), books["strikes"].shape[1])
        ts = start + 0.001 * np.arange(1, book.size + 1)
        seq = 0
        for lo in range(0, book.size, chunk):
            part = slice(lo, lo + chunk)
            walk = books["walk"][book[part]]
            current = {k: self._walks[k][walk] for k in ("level", "vol")}
            yield self._rows(books, book[part], strike[part], ts[part], current, seq)
            seq += book[part].size
        now, done = float(ts[-1]) if ts.size else start, 0
        while count is None or done < count:
            n = chunk if count is None else min(chunk, count - done)
            ts = now + np.cumsum(self.rng.exponential(1 / rate, n))
            book = self.rng.integers(len(books["t"]), size=n)
            strike = (self.rng.random(n) * books["n_strikes"][book]).astype(np.int64)
            moved = self._step(books["walk"][book], books["index"][book])
            yield self._rows(books, book, strike, ts, moved, seq)
            now, done, seq = float(ts[-1]), done + n, seq + n

    def _rows(self, books, book, strike, ts, walk, seq) -> QuoteColumns:
        n = book.size
        u, index, t = books["u"][book], books["index"][book], books["t"][book]
        k = np.round(books["strikes"][book, strike], 6)
        r, q = self._fixed[u, 0], self._fixed[u, 1]
        level, vol = walk["level"], walk["vol"]
        fx = ~index
        w = books["walk"][book]
        spot, call = np.full(n, np.nan), np.zeros(n, bool)
        vols, prices = np.full(n, np.nan), np.full(n, np.nan)
        rows = np.flatnonzero(fx)
        if rows.size:
            rho, nu = self._walks["rho"][w[rows]], self._walks["nu"][w[rows]]
            args = (k[rows], level[rows], t[rows], vol[rows], np.full(rows.size, 0.5), rho, nu)
            vols[rows] = np.asarray(_vols(*_padded(args)))[: rows.size]
        rows = np.flatnonzero(index)
        if rows.size:  # an index's options are priced together, at the chunk's spot and v0
            grid_spot, grid_call, grid = self._index_grid(books)
            spot[rows] = grid_spot[book[rows]]
            call[rows] = grid_call[book[rows], strike[rows]]
            prices[rows] = grid[book[rows], strike[rows]]
        half_vol = 0.0025 * vols * (1 + self.rng.random(n))
        half_price = 0.005 * prices * (1 + self.rng.random(n))
        oi = self.rng.integers(20, 5000, n).astype(float)
        nan = np.full(n, np.nan)
        numbers = {
            "ts": np.asarray(ts, dtype=float),
            "strike": k,
            "forward": np.where(fx, np.round(level, 6), np.nan),
            "bid_vol": np.where(fx, np.round(vols - half_vol, 6), np.nan),
            "ask_vol": np.where(fx, np.round(vols + half_vol, 6), np.nan),
            "mid_vol": nan,
            "size": nan,
            "open_interest": np.where(index, oi, np.nan),
            "spot": np.where(index, spot, np.nan),
            "rate": np.where(index, r, np.nan),
            "dividend": np.where(index, q, np.nan),
            "bid_price": np.where(index, np.round(prices - half_price, 6), np.nan),
            "ask_price": np.where(index, np.round(prices + half_price, 6), np.nan),
            "mid_price": nan,
            "seq": np.arange(seq + 1, seq + n + 1, dtype=np.int64),
            "call": np.where(index, call, -1).astype(np.int8),
        }
        text = {
            "underlying": Text(self._names, u.astype(np.int32)),
            "asset_class": Text(("equity", "fx"), np.where(index, 0, 1).astype(np.int32)),
            "expiry": Text(self._expiries, books["x"][book].astype(np.int32)),
            "source": Text((self.source,), np.zeros(n, np.int32)),
        }
        return QuoteColumns(n, numbers, text)

    def _index_grid(self, books) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Spot, call flags and Heston prices of every index option at the walks' current
        state, per book and strike (NaN for FX books): one vectorised call of fixed shape."""
        ib = np.flatnonzero(books["index"])
        u, t = books["u"][ib], books["t"][ib]
        r, q, kappa, theta, sigma, rho = (c[:, None] for c in self._fixed[u].T)
        walk = books["walk"][ib]
        spot = np.round(self._walks["level"][walk], 4)[:, None]
        v0 = self._walks["vol"][walk][:, None]
        k = np.round(books["strikes"][ib, :11], 6)
        call = k >= spot * np.exp((r - q) * t[:, None])
        prices = np.asarray(_prices(spot, k, t[:, None], r, q, v0, kappa, theta, sigma, rho, call))
        out_spot = np.full(len(books["t"]), np.nan)
        out_call = np.zeros(books["strikes"].shape, bool)
        out = np.full(books["strikes"].shape, np.nan)
        out_spot[ib], out_call[ib, :11], out[ib, :11] = spot[:, 0], call, prices
        return out_spot, out_call, out

    def ticks(self, start: float, rate: float, count: int | None = None) -> Iterator[Quote]:
        """:meth:`columns` as single quotes, for consumers that take one at a time."""
        for columns in self.columns(start, rate, count, chunk=256):
            yield from columns.quotes()


def _padded(columns: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Columns padded to a power-of-two length with copies of their first row, so the
    vectorised pricers compile a few shapes, not one per chunk."""
    n = columns[0].size
    size = 1 << max(n - 1, 1).bit_length()
    return tuple(np.r_[c, np.full(size - n, c[0])] for c in columns)
