"""Write ``data/sample_ticks.csv``: a few minutes of FX option quote ticks (deterministic).

Three pairs, four expiries, 15 strikes each. The first pass quotes every strike of every smile;
then ticks update random strikes while forwards random-walk and smiles drift slowly. Regenerate:

    .venv/bin/python data/make_ticks.py
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np

from engine.sabr import hagan_vol

START = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
EXPIRIES = ("2026-12-24", "2027-02-24", "2027-05-25", "2027-11-25")
PAIRS = {
    "EURUSD": (1.085, 0.075, -0.10, 0.55),
    "USDJPY": (151.2, 0.095, -0.35, 0.70),
    "GBPUSD": (1.265, 0.082, -0.20, 0.60),
}
FIELDS = [
    "ts",
    "underlying",
    "asset_class",
    "expiry",
    "strike",
    "forward",
    "bid_vol",
    "ask_vol",
    "source",
    "seq",
]


def ticks(minutes: float = 3.0, rate: float = 40.0, seed: int = 5) -> list[dict]:
    rng = np.random.default_rng(seed)
    smiles = []
    for pair, (fwd, atm, rho, nu) in PAIRS.items():
        for expiry in EXPIRIES:
            t = (dt.datetime.fromisoformat(expiry).replace(tzinfo=dt.UTC) - START).days / 365
            strikes = fwd * np.exp(atm * np.sqrt(t) * np.linspace(-2.2, 2.2, 15))
            smiles.append(
                {
                    "pair": pair,
                    "expiry": expiry,
                    "t": t,
                    "forward": fwd,
                    "strikes": strikes,
                    "alpha": atm * fwd**0.5,
                    "rho": rho,
                    "nu": nu / max(t, 0.25) ** 0.25,
                }
            )
    rows, seq, now = [], 0, START.timestamp()

    def quote(s, k):
        nonlocal seq
        vol = float(hagan_vol(k, s["forward"], s["t"], s["alpha"], 0.5, s["rho"], s["nu"]))
        half = 0.0025 * vol * (1 + rng.random())
        seq += 1
        rows.append(
            {
                "ts": f"{now:.3f}",
                "underlying": s["pair"],
                "asset_class": "fx",
                "expiry": s["expiry"],
                "strike": f"{k:.6f}",
                "forward": f"{s['forward']:.6f}",
                "bid_vol": f"{vol - half:.6f}",
                "ask_vol": f"{vol + half:.6f}",
                "source": "sample",
                "seq": seq,
            }
        )

    for s in smiles:
        for k in s["strikes"]:
            now += 0.01
            quote(s, k)
    end = now + 60 * minutes
    while now < end:
        now += rng.exponential(1 / rate)
        s = smiles[rng.integers(len(smiles))]
        s["forward"] *= 1 + 2e-5 * rng.standard_normal()
        s["alpha"] *= 1 + 1e-3 * rng.standard_normal()
        quote(s, s["strikes"][rng.integers(15)])
    return rows


def main() -> None:
    path = Path(__file__).with_name("sample_ticks.csv")
    rows = ticks()
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} ticks to {path}")


if __name__ == "__main__":
    main()
