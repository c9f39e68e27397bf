"""Synthetic option quote ticks from a moving market, for demos, load and samples.

What is quoted. FX: each smile (pair x expiry, 15 strikes spanning +-2.2 ATM standard
deviations) quotes SABR vols (beta 0.5). Equity indices: each index quotes Heston prices of
out-of-the-money options (11 strikes per expiry from -2 to +1.5 standard deviations) with spot,
rate and dividend, and an open interest (some below the playbook's liquidity filter of 100).
Every smile or index first quotes all its options, 1 ms apart; then each tick re-quotes one
random option of a random smile or index expiry, the ticks a Poisson stream of ``rate`` a
second of event time. A quote is the model plus noise inside its bid-ask: the half spread is
0.25-0.5% of the vol (FX) or 0.5-1% of the price (indices), the mid is the model plus a
uniform noise of up to half the half spread either way, so ``bid <= model <= ask`` always (the
bid rounded down, the ask up, to 6 decimals). :class:`Truth` gives each row's model value.
Expiries are dates (tenor days after the start's UTC date) and each quote is priced at the time
left then to 00:00 UTC of its date, as the book counts it (:mod:`schemas.daycount`).

How the market moves, in event time: the tick rate changes how often a smile is quoted, not
how fast it moves. With :math:`dt` the event time in years (seconds / (365 x 86400)) since a
walk's previous update, each update multiplies it by a lognormal martingale step

.. math:: X \\to X \\exp(\\sigma \\sqrt{dt}\\, z - \\sigma^2 dt / 2), \\quad z \\sim N(0, 1).

- FX: each smile's forward (``forward_vol``, default 8% a year) and SABR alpha (``vol_vol``,
  default 90% a year: the vol of vol of its ATM vol level) walk, updated at each of the smile's
  ticks; rho and nu stay fixed.
- Indices: each index's spot (``spot_vol``, default 20% a year) and sqrt(v0) (``vol_vol``)
  walk, shared by the index's expiries; rate, dividend, kappa, theta, sigma and rho stay fixed.
  A Heston price costs about 70 us on a CPU, too slow to reprice each tick at load, so an
  index's state is sampled on an event-time clock: at multiples of ``index_clock`` seconds
  after ``start`` (those some tick needs) and at its jumps; a tick quotes the state at the
  latest such time at or before it, priced once for all the index's options.
- Jumps, every ``jump_every`` seconds of event time (at ``start + k * jump_every``; None, the
  default, for none: callers such as ``volstream simulate --jump-every`` choose): one pair or
  index, drawn at random, has its whole term structure moved at once by a size drawn uniformly
  from ``jump_bp`` vol basis points with a random sign. Every smile of a pair has its alpha
  scaled so that its ATM vol (Hagan at the forward) moves by the size (at least 1% vol left);
  an index has sqrt(v0) moved by it, v0 -> (sqrt(v0) + size)^2 (sqrt(v0) at least 2%), so its
  shortest ATM vol moves by about the size and longer ones less (theta does not move). Ticks
  before a jump quote the old state, ticks at or after it the new one, within a chunk too;
  :attr:`TickSimulator.jumps` lists every jump applied.

Deterministic for a seed, whatever the ``chunk`` size: each source of randomness (arrival
times, the option picked, the FX walks, each index's walk, the jumps, the quote noise) has its
own generator, drawn in tick order. Each :meth:`TickSimulator.columns` call starts the market
afresh from the seed.

Ticks are made as columns (:meth:`TickSimulator.columns`), thousands at once: the FX walks are
cumulative sums of log steps per smile, the vols one vectorised Hagan call per chunk and the
index prices one Heston call per chunk for the index states it newly needs (none while the
clock stands), so a load generator makes millions of ticks a second.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import NamedTuple

import jax
import numpy as np

from engine.blackscholes import forward_price
from engine.heston import heston_price
from engine.sabr import hagan_vol
from schemas import Quote, QuoteColumns
from schemas.columns import Text
from schemas.daycount import time_to_expiry

__all__ = ["INDICES", "PAIRS", "TENOR_DAYS", "Jump", "TickSimulator", "Truth"]

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
YEAR = 365 * 86400.0  # seconds of event time in a year of the walks
BETA = 0.5  # the FX smiles' SABR beta
MIN_FX_ATM = 0.01  # a jump leaves an FX smile at least this ATM vol
MIN_SQRT_V0 = 0.02  # and an index at least this sqrt(v0)
_vols = jax.jit(hagan_vol)
_prices = jax.jit(heston_price)


def _log_steps(sigma: float, years: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The log of each lognormal martingale step of the walks (see the module doc)."""
    return sigma * np.sqrt(years) * z - 0.5 * sigma**2 * years


class Jump(NamedTuple):
    """A jump applied at event time ``ts``: every expiry of ``underlying`` moved by
    ``size_bp`` vol basis points (signed; 1 bp is 0.0001 of vol)."""

    ts: float
    underlying: str
    size_bp: float


class Truth(NamedTuple):
    """What each row of a chunk was quoted from: ``model``, the SABR vol (FX) or Heston price
    (index) its bid and ask enclose; ``level``, the forward or spot it quotes; ``vol``, the SABR
    alpha or Heston v0; ``atm``, the level a jump moves: the smile's ATM vol (Hagan at the
    forward) or the index's sqrt(v0)."""

    model: np.ndarray
    level: np.ndarray
    vol: np.ndarray
    atm: np.ndarray


class TickSimulator:
    """``columns(start, rate)`` yields ticks as columns with event times from ``start`` at
    ``rate``/s; ``ticks(start, rate)`` the same ticks as :class:`schemas.Quote` objects;
    ``columns_and_truth`` the columns with each row's :class:`Truth`. The keyword arguments
    set how the market moves (see the module doc): annualised lognormal vols ``forward_vol``
    (FX forwards), ``spot_vol`` (index spots) and ``vol_vol`` (SABR alpha and Heston sqrt(v0)),
    jumps every ``jump_every`` event seconds (None or 0: none) of ``jump_bp`` (low, high) vol
    bp, and the index states' clock ``index_clock`` in event seconds."""

    def __init__(
        self,
        pairs: int = 3,
        tenors=TENOR_DAYS,
        seed: int = 5,
        source: str = "simulated",
        indices: int = 0,
        index_tenors=None,
        *,
        forward_vol: float = 0.08,
        spot_vol: float = 0.20,
        vol_vol: float = 0.9,
        jump_every: float | None = None,
        jump_bp: tuple[float, float] = (20.0, 60.0),
        index_clock: float = 1.0,
    ):
        if not 0 <= pairs <= len(PAIRS) or not 0 <= indices <= len(INDICES) or pairs + indices < 1:
            raise ValueError(
                f"pairs must be 0..{len(PAIRS)} and indices 0..{len(INDICES)}, not both 0"
            )
        if min(forward_vol, spot_vol, vol_vol) < 0:
            raise ValueError("forward_vol, spot_vol and vol_vol must be >= 0")
        if jump_every is not None and jump_every < 0:
            raise ValueError(
                f"jump_every must be > 0 seconds, or 0 or None for no jumps, not {jump_every}"
            )
        low, high = (float(b) for b in jump_bp)
        if not 0 <= low <= high:
            raise ValueError(f"jump_bp must be (low, high) with 0 <= low <= high, not {jump_bp}")
        if not index_clock > 0:
            raise ValueError(f"index_clock must be > 0 seconds, not {index_clock}")
        self.seed = seed
        self.source = source
        self.tenors = tuple(tenors)
        self.index_tenors = self.tenors if index_tenors is None else tuple(index_tenors)
        self.pairs = list(PAIRS)[:pairs]
        self.indices = list(INDICES)[:indices]
        self.forward_vol, self.spot_vol, self.vol_vol = forward_vol, spot_vol, vol_vol
        self.jump_every = jump_every or None
        self.jump_bp = (low, high)
        self.index_clock = float(index_clock)
        self.jumps: list[Jump] = []
        self._table: dict[str, np.ndarray] | None = None  # the last call's books

    def _books(self, start: float) -> dict[str, np.ndarray]:
        """Per smile (FX) or index expiry, as arrays: underlying and expiry codes, time,
        strikes (padded with NaN), the walk each follows (its smile's; for an index, the
        index's number) and its place among its index's expiries; sets the market's starting
        state."""
        today = dt.datetime.fromtimestamp(start, dt.UTC).date()
        days = sorted(set(self.tenors) | set(self.index_tenors))
        expiry = {d: i for i, d in enumerate(days)}
        self._expiries = tuple((today + dt.timedelta(days=d)).isoformat() for d in days)
        # each option's years to its expiry (00:00 UTC of the date) as the book counts them
        # at ``start``: a tick at ``ts`` is priced at the time left then (see ``_left``)
        years = {d: time_to_expiry(start, self._expiries[expiry[d]]) for d in days}
        rows: dict[str, list] = {k: [] for k in ("u", "x", "t", "walk", "local", "strikes")}
        fx: dict[str, list] = {k: [] for k in ("level", "vol", "rho", "nu")}
        for u, pair in enumerate(self.pairs):
            fwd, atm, rho, nu = PAIRS[pair]
            for d in self.tenors:
                t = years[d]
                rows["u"].append(u)
                rows["x"].append(expiry[d])
                rows["t"].append(t)
                rows["walk"].append(len(fx["level"]))
                rows["local"].append(0)
                rows["strikes"].append(fwd * np.exp(atm * np.sqrt(t) * np.linspace(-2.2, 2.2, 15)))
                fx["level"].append(fwd)
                fx["vol"].append(atm * fwd ** (1 - BETA))  # SABR alpha
                fx["rho"].append(rho)
                fx["nu"].append(nu / max(t, 0.25) ** 0.25)
        for i, name in enumerate(self.indices):
            spot, r, q, *_ = INDICES[name]
            for local, d in enumerate(self.index_tenors):
                t = years[d]
                forward = forward_price(spot, r, q, t)
                std = math.sqrt(INDICES[name][5] * t)
                strikes = forward * np.exp(std * np.linspace(-2.0, 1.5, 11))
                rows["u"].append(len(self.pairs) + i)
                rows["x"].append(expiry[d])
                rows["t"].append(t)
                rows["walk"].append(i)
                rows["local"].append(local)
                rows["strikes"].append(np.r_[strikes, [np.nan] * 4])
        self._names = tuple(self.pairs + self.indices)
        self._fixed = np.array(
            [(np.nan,) * 6] * len(self.pairs)
            + [INDICES[n][1:3] + INDICES[n][4:] for n in self.indices]
        )  # per underlying: r, q, kappa, theta, sigma, rho (indices)
        books = {k: np.array(v) for k, v in rows.items()}
        books["n_strikes"] = np.isfinite(books["strikes"]).sum(axis=1)
        books["index"] = books["u"] >= len(self.pairs)
        fx_books = np.flatnonzero(~books["index"])
        self._pair_walks = [
            books["walk"][fx_books[books["u"][fx_books] == u]] for u in range(len(self.pairs))
        ]
        self._index_books = [
            np.flatnonzero(books["index"] & (books["walk"] == i)) for i in range(len(self.indices))
        ]
        self._fx = {k: np.array(v, dtype=float) for k, v in fx.items()}
        self._fx["t"] = books["t"][fx_books]
        self._fx["last"] = np.full(fx_books.size, float(start))
        self._index = {
            "spot": np.array([INDICES[n][0] for n in self.indices], dtype=float),
            "v0": np.array([INDICES[n][3] for n in self.indices], dtype=float),
            "time": np.full(len(self.indices), float(start)),  # of the latest state
            "tick": np.zeros(len(self.indices), np.int64),  # its clock period
            "version": np.zeros(len(self.indices), np.int64),
        }
        self._grids: dict[int, tuple] = {}  # index -> (version, spot, v0, calls, prices)
        seeds = np.random.SeedSequence(self.seed).spawn(6 + len(self.indices))
        self._rng = dict(
            zip(("arrival", "pick", "walk", "quote", "jump"), map(np.random.default_rng, seeds))
        )
        self._index_rng = [np.random.default_rng(s) for s in seeds[6:]]
        self._start = float(start)
        self.jumps = []
        self._jump_count = 0
        return books

    def columns(
        self,
        start: float,
        rate: float,
        count: int | None = None,
        chunk: int = 4096,
        opening: bool = True,
        resume: bool = False,
    ) -> Iterator[QuoteColumns]:
        """The opening quotes of every smile and index (1 ms apart; left out when not
        ``opening``), then ``count`` (or endless) updates at ``rate`` a second, ``chunk`` rows
        a message. ``resume``: the market goes on from where the previous call left it (its
        walks, the moves of its jumps, its clocks; ``start`` must not precede that call's last
        tick; jumps due between the calls are skipped) instead of opening anew: one market
        quoted at several rates, as a benchmark's phases need."""
        for columns, _ in self.columns_and_truth(start, rate, count, chunk, opening, resume):
            yield columns

    def columns_and_truth(
        self,
        start: float,
        rate: float,
        count: int | None = None,
        chunk: int = 4096,
        opening: bool = True,
        resume: bool = False,
    ) -> Iterator[tuple[QuoteColumns, Truth]]:
        """:meth:`columns`, each chunk with its rows' :class:`Truth`."""
        if resume and self._table is None:
            raise ValueError("resume=True needs an earlier call whose market it goes on with")
        if resume:  # one clock: the index's and the jumps' schedule go on
            books, self.jumps = self._table, []
            if self.jump_every:  # those due between the calls are skipped
                skipped = math.floor((start - self._start) / self.jump_every)
                self._jump_count = max(self._jump_count, skipped)
        else:
            books = self._table = self._books(start)
        first = np.flatnonzero(np.isfinite(books["strikes"]).ravel()) if opening else []
        book, strike = np.divmod(np.asarray(first, np.int64), books["strikes"].shape[1])
        ts = start + 0.001 * np.arange(1, book.size + 1)
        seq = 0
        for lo in range(0, book.size, chunk):
            part = slice(lo, lo + chunk)
            yield self._chunk(books, book[part], strike[part], ts[part], seq)
            seq += book[part].size
        now, done = float(ts[-1]) if ts.size else start, 0
        n_books = len(books["t"])
        while count is None or done < count:
            n = chunk if count is None else min(chunk, count - done)
            gaps = self._rng["arrival"].exponential(1 / rate, n)
            ts = np.cumsum(np.r_[now, gaps])[1:]  # added one by one: whatever the chunks
            pick = self._rng["pick"].random((n, 2))
            book = np.minimum((pick[:, 0] * n_books).astype(np.int64), n_books - 1)
            strike = (pick[:, 1] * books["n_strikes"][book]).astype(np.int64)
            yield self._chunk(books, book, strike, ts, seq)
            now, done, seq = float(ts[-1]), done + n, seq + n

    def _chunk(self, books, book, strike, ts, seq) -> tuple[QuoteColumns, Truth]:
        """The rows of ticks on ``book`` x ``strike`` at times ``ts`` (increasing), with their
        truth: the walks moved to each tick, split at the jumps among them, then priced."""
        n = book.size
        z = self._rng["walk"].standard_normal((n, 2))
        level, vol, state = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, np.int64)
        states: list[tuple[int, int, float, float, float]] = []  # (index, version, spot, v0, time)
        lo = 0
        while n and self.jump_every and self._next_jump() <= ts[-1]:
            at = self._next_jump()
            hi = int(np.searchsorted(ts, at, side="left"))  # ticks at or after it: the new state
            part = slice(lo, hi)
            self._move(
                books, book[part], ts[part], z[part], level[part], vol[part], state[part], states
            )
            self._jump(at)
            lo = hi
        part = slice(lo, n)
        self._move(
            books, book[part], ts[part], z[part], level[part], vol[part], state[part], states
        )
        model, atm, call = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, bool)
        k = np.round(books["strikes"][book, strike], 6)
        rows = np.flatnonzero(~books["index"][book])
        if rows.size:  # the quoted strikes' vols and the ATM vols in one call
            w = books["walk"][book[rows]]
            f, t, alpha = level[rows], self._left(books["t"][book[rows]], ts[rows]), vol[rows]
            rho, nu, beta = self._fx["rho"][w], self._fx["nu"][w], np.full(rows.size, BETA)
            twice = (np.r_[k[rows], f], *(np.r_[c, c] for c in (f, t, alpha, beta, rho, nu)))
            vols = np.asarray(_vols(*_padded(twice)))
            model[rows], atm[rows] = vols[: rows.size], vols[rows.size : 2 * rows.size]
        rows = np.flatnonzero(books["index"][book])
        if rows.size:  # each index state's options priced once, looked up per tick
            spots, v0s, calls, prices = self._price_states(books, states)
            s, local = state[rows], books["local"][book[rows]]
            level[rows], vol[rows] = spots[s], v0s[s]
            call[rows] = calls[s, local, strike[rows]]
            model[rows] = prices[s, local, strike[rows]]
            atm[rows] = np.sqrt(vol[rows])
        columns = self._quotes(books, book, k, ts, seq, model, level, call)
        return columns, Truth(model, level, vol, atm)

    def _left(self, t: np.ndarray, ts) -> np.ndarray:
        """Years to expiry at event times ``ts`` of options with ``t`` years left at the
        start: a quote made later in the day is priced to the same 00:00 UTC expiry."""
        return t - (np.asarray(ts, np.float64) - self._start) / YEAR

    def _next_jump(self) -> float:
        return self._start + (self._jump_count + 1) * self.jump_every

    def _move(self, books, book, ts, z, level, vol, state, states) -> None:
        """Move the walks through the ticks on ``book`` at ``ts`` (no jump among them): write
        each FX tick's forward and alpha, and each index tick's state, a position in
        ``states`` (entries ``(index, version, spot, v0, time)``, appended here)."""
        fx = self._fx
        rows = np.flatnonzero(~books["index"][book])
        if rows.size:  # per smile, in tick order: cumulative sums of log steps
            walk = books["walk"][book[rows]]
            order = np.argsort(walk, kind="stable")
            sorted_walk, sorted_ts = walk[order], ts[rows][order]
            first = np.r_[True, sorted_walk[1:] != sorted_walk[:-1]]
            last = np.r_[sorted_walk[1:] != sorted_walk[:-1], True]
            before = np.where(first, fx["last"][sorted_walk], np.r_[0.0, sorted_ts[:-1]])
            years = np.maximum(sorted_ts - before, 0.0) / YEAR
            base = np.maximum.accumulate(np.where(first, np.arange(rows.size), 0))
            for name, sigma, out, col in (
                ("level", self.forward_vol, level, 0),
                ("vol", self.vol_vol, vol, 1),
            ):
                grown = np.cumsum(_log_steps(sigma, years, z[rows, col][order]))
                earlier = np.where(base > 0, grown[np.maximum(base - 1, 0)], 0.0)
                value = fx[name][sorted_walk] * np.exp(grown - earlier)
                out[rows[order]] = value
                fx[name][sorted_walk[last]] = value[last]
            fx["last"][sorted_walk[last]] = sorted_ts[last]
            level[rows] = np.round(level[rows], 6)  # the forward quoted, and priced at
        rows = np.flatnonzero(books["index"][book])
        index = self._index
        walks = books["walk"][book[rows]]
        for i in np.unique(walks).tolist():  # per index (a handful), its clock's new states
            mine = rows[walks == i]
            tick = np.floor((ts[mine] - self._start) / self.index_clock).astype(np.int64)
            new = np.unique(tick[tick > index["tick"][i]])
            current = bool((tick == index["tick"][i]).any())  # some ticks see the state now
            seen = np.searchsorted(new, tick, side="right")  # 0: the current state, j: new[j-1]
            state[mine] = len(states) + seen - (0 if current else 1)
            if current:
                now = (index["spot"][i], index["v0"][i], index["time"][i])
                states.append((i, int(index["version"][i]), *now))
            if new.size:
                states += self._advance(i, self._start + new * self.index_clock)
                index["tick"][i] = new[-1]

    def _advance(self, i: int, times: np.ndarray) -> list[tuple[int, int, float, float, float]]:
        """Index ``i``'s spot and sqrt(v0) walked to each of ``times`` (increasing, after its
        latest state): the states, as ``(index, version, spot, v0, time)``."""
        index = self._index
        years = np.diff(np.r_[index["time"][i], times]) / YEAR
        z = self._index_rng[i].standard_normal((times.size, 2))
        paths = []
        for start, sigma, col in (
            (index["spot"][i], self.spot_vol, 0),
            (math.sqrt(index["v0"][i]), self.vol_vol, 1),
        ):
            paths.append(start * np.exp(np.cumsum(_log_steps(sigma, years, z[:, col]))))
        spot, v0 = paths[0], paths[1] ** 2
        versions = index["version"][i] + np.arange(1, times.size + 1)
        index["spot"][i], index["v0"][i] = spot[-1], v0[-1]
        index["time"][i], index["version"][i] = times[-1], versions[-1]
        return list(
            zip([i] * times.size, versions.tolist(), spot.tolist(), v0.tolist(), times.tolist())
        )

    def _jump(self, at: float) -> None:
        """The jump due at event time ``at``: one underlying, drawn at random, has its whole
        term structure's ATM vol moved by a random size (see the module doc)."""
        draw = self._rng["jump"].random(3)
        which = min(int(draw[0] * len(self._names)), len(self._names) - 1)
        low, high = self.jump_bp
        size_bp = (low + (high - low) * draw[1]) * (1.0 if draw[2] < 0.5 else -1.0)
        size = size_bp * 1e-4
        if which < len(self.pairs):
            fx, walks = self._fx, self._pair_walks[which]
            years = np.maximum(at - fx["last"][walks], 0.0) / YEAR
            z = self._rng["jump"].standard_normal((walks.size, 2))
            for name, sigma, col in (("level", self.forward_vol, 0), ("vol", self.vol_vol, 1)):
                fx[name][walks] *= np.exp(_log_steps(sigma, years, z[:, col]))
            fx["last"][walks] = at
            forward, alpha = np.round(fx["level"][walks], 6), fx["vol"][walks]
            t = self._left(fx["t"][walks], at)
            smile = (t, np.full(walks.size, BETA), fx["rho"][walks], fx["nu"][walks])

            def atm(alpha):
                columns = _padded((forward, forward, smile[0], alpha, *smile[1:]))
                return np.asarray(_vols(*columns))[: walks.size]

            target = np.maximum(atm(alpha) + size, MIN_FX_ATM)
            for _ in range(4):  # the ATM vol is nearly proportional to alpha
                alpha = alpha * target / atm(alpha)
            fx["vol"][walks] = alpha
        else:
            i = which - len(self.pairs)
            index = self._index
            self._advance(i, np.array([at]))
            index["v0"][i] = max(math.sqrt(index["v0"][i]) + size, MIN_SQRT_V0) ** 2
            index["version"][i] += 1
            index["tick"][i] = math.floor((at - self._start) / self.index_clock)
        self.jumps.append(Jump(float(at), self._names[which], float(size_bp)))
        self._jump_count += 1

    def _price_states(self, books, states) -> tuple[np.ndarray, ...]:
        """Per entry of ``states``: the spot quoted, v0, and call flags and Heston prices of
        every option of its index, ``(state, expiry, strike)``; states priced before (an
        index's current one) come from the cache, the others from one vectorised call."""
        n, per = len(states), len(self.index_tenors)
        spot, v0 = np.empty(n), np.empty(n)
        calls, prices = np.zeros((n, per, 11), bool), np.empty((n, per, 11))
        todo: dict[tuple[int, int], list[int]] = {}
        for s, (i, version, level, variance, _) in enumerate(states):
            cached = self._grids.get(i)
            if cached is not None and cached[0] == version:
                spot[s], v0[s], calls[s], prices[s] = cached[1:]
            else:
                todo.setdefault((i, version), []).append(s)
                spot[s], v0[s] = round(level, 4), variance
        if todo:
            first = np.array([at[0] for at in todo.values()])
            ib = np.concatenate([self._index_books[states[s][0]] for s in first])
            when = np.repeat([states[s][4] for s in first], per)
            u, t = books["u"][ib], self._left(books["t"][ib], when)
            r, q, kappa, theta, sigma, rho = (c[:, None] for c in self._fixed[u].T)
            k = np.round(books["strikes"][ib, :11], 6)
            s0, var0 = np.repeat(spot[first], per)[:, None], np.repeat(v0[first], per)[:, None]
            call = k >= forward_price(s0, r, q, t[:, None])
            args = (s0, k, t[:, None], r, q, var0, kappa, theta, sigma, rho, call)
            grid = np.asarray(_prices(*_padded(args)))[: ib.size].reshape(first.size, per, 11)
            call = call.reshape(first.size, per, 11)
            for j, ((i, version), at) in enumerate(todo.items()):
                calls[at], prices[at] = call[j], grid[j]
                if version == self._index["version"][i]:
                    self._grids[i] = (version, spot[at[0]], v0[at[0]], call[j], grid[j])
        return spot, v0, calls, prices

    def _quotes(self, books, book, k, ts, seq, model, level, call) -> QuoteColumns:
        """The rows: the model plus noise inside a bid-ask (see the module doc)."""
        n = book.size
        u, index = books["u"][book], books["index"][book]
        fx = ~index
        r, q = self._fixed[u, 0], self._fixed[u, 1]
        draw = self._rng["quote"].random((n, 3))
        half = np.where(index, 0.005, 0.0025) * model * (1 + draw[:, 0])
        mid = model + (draw[:, 1] - 0.5) * half
        bid, ask = np.floor((mid - half) * 1e6) / 1e6, np.ceil((mid + half) * 1e6) / 1e6
        oi = 20.0 + np.floor(draw[:, 2] * 4980)
        nan = np.full(n, np.nan)
        numbers = {
            "ts": np.asarray(ts, dtype=float),
            "strike": k,
            "forward": np.where(fx, level, np.nan),
            "bid_vol": np.where(fx, bid, np.nan),
            "ask_vol": np.where(fx, ask, np.nan),
            "mid_vol": nan,
            "size": nan,
            "open_interest": np.where(index, oi, np.nan),
            "spot": np.where(index, level, np.nan),
            "rate": np.where(index, r, np.nan),
            "dividend": np.where(index, q, np.nan),
            "bid_price": np.where(index, bid, np.nan),
            "ask_price": np.where(index, ask, np.nan),
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

    def ticks(self, start: float, rate: float, count: int | None = None) -> Iterator[Quote]:
        """:meth:`columns` as single quotes, for consumers that take one at a time."""
        for columns in self.columns(start, rate, count, chunk=256):
            yield from columns.quotes()


def _padded(columns: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """Columns padded along their first axis to a power-of-two length with copies of their
    first row, so the vectorised pricers compile a few shapes, not one per chunk."""
    n = len(columns[0])
    size = 1 << max(n - 1, 1).bit_length()
    return tuple(np.concatenate([c, np.repeat(c[:1], size - n, axis=0)]) for c in columns)
