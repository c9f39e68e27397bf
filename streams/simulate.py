"""Synthetic option quote ticks from evolving models, for demos, load and samples.

FX: each smile (pair x expiry, 15 strikes spanning +-2.2 ATM standard deviations) quotes SABR
vols; bid/ask straddle the vol by 0.25-0.5% of it. Equity indices: each index quotes Heston
prices of out-of-the-money options (11 strikes per expiry from -2 to +1.5 standard deviations)
with spot, rate and dividend, a bid/ask of 0.5-1% around the model price, and an open interest
(some below the playbook's liquidity filter of 100). Every smile or index first quotes all its
options; then every tick re-quotes one random option of a random smile or index expiry while
forwards and spots random-walk and SABR's alpha and Heston's v0 drift. Deterministic for a
given seed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator

import jax
import numpy as np

from engine.heston import heston_price
from engine.sabr import hagan_vol
from schemas import Quote

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
}
TENOR_DAYS = (30, 91, 182, 365)
_price = jax.jit(heston_price)


class TickSimulator:
    """``ticks(start, rate)`` yields quotes with event times from ``start`` at ``rate``/s."""

    def __init__(
        self,
        pairs: int = 3,
        tenors=TENOR_DAYS,
        seed: int = 5,
        source: str = "simulated",
        indices: int = 0,
    ):
        if not 0 <= pairs <= len(PAIRS) or not 0 <= indices <= len(INDICES) or pairs + indices < 1:
            raise ValueError(
                f"pairs must be 0..{len(PAIRS)} and indices 0..{len(INDICES)}, not both 0"
            )
        self.rng = np.random.default_rng(seed)
        self.source = source
        self.tenors = tuple(tenors)
        self.pairs = list(PAIRS)[:pairs]
        self.indices = list(INDICES)[:indices]
        self.seq = 0

    def _books(self, start: float) -> list[dict]:
        """One dict per FX smile, then one per index expiry (sharing its index's state)."""
        today = dt.datetime.fromtimestamp(start, dt.UTC).date()
        expiries = [((today + dt.timedelta(days=d)).isoformat(), d / 365) for d in self.tenors]
        books = []
        for pair in self.pairs:
            fwd, atm, rho, nu = PAIRS[pair]
            for expiry, t in expiries:
                books.append(
                    {
                        "name": pair,
                        "expiry": expiry,
                        "t": t,
                        "forward": fwd,
                        "strikes": fwd * np.exp(atm * np.sqrt(t) * np.linspace(-2.2, 2.2, 15)),
                        "alpha": atm * fwd**0.5,
                        "rho": rho,
                        "nu": nu / max(t, 0.25) ** 0.25,
                    }
                )
        for name in self.indices:
            spot, r, q, v0, kappa, theta, sigma, rho = INDICES[name]
            index = {"spot": spot, "v0": v0, "fixed": (r, q, kappa, theta, sigma, rho)}
            for expiry, t in expiries:
                forward = spot * math.exp((r - q) * t)
                std = math.sqrt(theta * t)
                books.append(
                    {
                        "name": name,
                        "expiry": expiry,
                        "t": t,
                        "index": index,
                        "strikes": forward * np.exp(std * np.linspace(-2.0, 1.5, 11)),
                    }
                )
        return books

    def _quote(self, b: dict, strike: float, ts: float) -> Quote:
        self.seq += 1
        strike = round(float(strike), 6)
        common = dict(ts=round(ts, 3), underlying=b["name"], expiry=b["expiry"], source=self.source)
        if "index" not in b:
            vol = float(hagan_vol(strike, b["forward"], b["t"], b["alpha"], 0.5, b["rho"], b["nu"]))
            half = 0.0025 * vol * (1 + self.rng.random())
            return Quote(
                **common,
                asset_class="fx",
                strike=strike,
                seq=self.seq,
                forward=round(b["forward"], 6),
                bid_vol=round(vol - half, 6),
                ask_vol=round(vol + half, 6),
            )
        index = b["index"]
        r, q, kappa, theta, sigma, rho = index["fixed"]
        spot = round(index["spot"], 4)
        call = strike >= spot * math.exp((r - q) * b["t"])
        price = float(
            _price(spot, strike, b["t"], r, q, index["v0"], kappa, theta, sigma, rho, call)
        )
        half = 0.005 * price * (1 + self.rng.random())
        return Quote(
            **common,
            asset_class="equity",
            strike=strike,
            seq=self.seq,
            spot=spot,
            rate=r,
            dividend=q,
            bid_price=round(price - half, 6),
            ask_price=round(price + half, 6),
            call=bool(call),
            open_interest=float(self.rng.integers(20, 5000)),
        )

    def ticks(self, start: float, rate: float, count: int | None = None) -> Iterator[Quote]:
        """The opening quotes of every smile and index, then ``count`` (or endless) updates."""
        books = self._books(start)
        now = start
        for b in books:
            for k in b["strikes"]:
                now += 0.001
                yield self._quote(b, k, now)
        n = 0
        while count is None or n < count:
            now += self.rng.exponential(1 / rate)
            b = books[self.rng.integers(len(books))]
            if "index" in b:
                b["index"]["spot"] *= 1 + 1e-5 * self.rng.standard_normal()  # ~20% a year at 10/s
                b["index"]["v0"] *= 1 + 1e-4 * self.rng.standard_normal()
            else:
                b["forward"] *= 1 + 2e-5 * self.rng.standard_normal()
                b["alpha"] *= 1 + 1e-3 * self.rng.standard_normal()
            yield self._quote(b, b["strikes"][self.rng.integers(len(b["strikes"]))], now)
            n += 1
