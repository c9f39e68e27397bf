"""Synthetic FX option quote ticks from evolving SABR smiles, for demos, load and samples.

Each smile (pair x expiry, 15 strikes spanning +-2.2 ATM standard deviations) first quotes all
its strikes; then every tick re-quotes one random strike of a random smile while its forward
random-walks and its alpha drifts. Bid/ask straddle the SABR vol by 0.25-0.5% of it.
Deterministic for a given seed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np

from engine.sabr import hagan_vol
from schemas import Quote

__all__ = ["PAIRS", "TickSimulator"]

PAIRS = {  # forward, ATM vol, rho, nu at one year
    "EURUSD": (1.085, 0.075, -0.10, 0.55),
    "USDJPY": (151.2, 0.095, -0.35, 0.70),
    "GBPUSD": (1.265, 0.082, -0.20, 0.60),
    "AUDUSD": (0.655, 0.095, -0.30, 0.75),
    "USDCHF": (0.885, 0.080, 0.05, 0.60),
    "USDCAD": (1.395, 0.065, 0.10, 0.50),
}
TENOR_DAYS = (30, 91, 182, 365)


class TickSimulator:
    """``ticks(start, rate)`` yields quotes with event times from ``start`` at ``rate``/s."""

    def __init__(self, pairs: int = 3, tenors=TENOR_DAYS, seed: int = 5, source: str = "simulated"):
        if not 1 <= pairs <= len(PAIRS):
            raise ValueError(f"pairs must be 1..{len(PAIRS)}")
        self.rng = np.random.default_rng(seed)
        self.source = source
        self.specs = [(name, *PAIRS[name], days) for name in list(PAIRS)[:pairs] for days in tenors]
        self.seq = 0

    def _smiles(self, start: float) -> list[dict]:
        today = dt.datetime.fromtimestamp(start, dt.UTC).date()
        smiles = []
        for pair, fwd, atm, rho, nu, days in self.specs:
            expiry = today + dt.timedelta(days=days)
            t = days / 365
            smiles.append(
                {
                    "pair": pair,
                    "expiry": expiry.isoformat(),
                    "t": t,
                    "forward": fwd,
                    "strikes": fwd * np.exp(atm * np.sqrt(t) * np.linspace(-2.2, 2.2, 15)),
                    "alpha": atm * fwd**0.5,
                    "rho": rho,
                    "nu": nu / max(t, 0.25) ** 0.25,
                }
            )
        return smiles

    def _quote(self, s: dict, strike: float, ts: float) -> Quote:
        vol = float(hagan_vol(strike, s["forward"], s["t"], s["alpha"], 0.5, s["rho"], s["nu"]))
        half = 0.0025 * vol * (1 + self.rng.random())
        self.seq += 1
        return Quote(
            ts=round(ts, 3),
            underlying=s["pair"],
            asset_class="fx",
            expiry=s["expiry"],
            strike=round(float(strike), 6),
            source=self.source,
            seq=self.seq,
            forward=round(s["forward"], 6),
            bid_vol=round(vol - half, 6),
            ask_vol=round(vol + half, 6),
        )

    def ticks(self, start: float, rate: float, count: int | None = None) -> Iterator[Quote]:
        """The opening quotes of every smile, then ``count`` (or endless) random updates."""
        smiles = self._smiles(start)
        now = start
        for s in smiles:
            for k in s["strikes"]:
                now += 0.001
                yield self._quote(s, k, now)
        n = 0
        while count is None or n < count:
            now += self.rng.exponential(1 / rate)
            s = smiles[self.rng.integers(len(smiles))]
            s["forward"] *= 1 + 2e-5 * self.rng.standard_normal()
            s["alpha"] *= 1 + 1e-3 * self.rng.standard_normal()
            yield self._quote(s, s["strikes"][self.rng.integers(15)], now)
            n += 1
