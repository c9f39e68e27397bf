"""Write ``data/sample_ticks.csv``: three minutes of option quote ticks (deterministic).

Three FX pairs (four expiries, 15 strikes each: SABR vols) and one equity index, SPX (four
expiries, 11 strikes each: Heston prices with spot, rate, dividend and open interest), 40
ticks/s, from ``streams.simulate``. Regenerate:

    .venv/bin/python data/make_ticks.py
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

from streams.simulate import TickSimulator

START = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC).timestamp()
FIELDS = [
    "ts",
    "underlying",
    "asset_class",
    "expiry",
    "strike",
    "forward",
    "bid_vol",
    "ask_vol",
    "spot",
    "rate",
    "dividend",
    "bid_price",
    "ask_price",
    "call",
    "open_interest",
    "source",
    "seq",
]


def main() -> None:
    path = Path(__file__).with_name("sample_ticks.csv")
    quotes = list(
        TickSimulator(pairs=3, indices=1, source="sample").ticks(START, rate=40.0, count=40 * 180)
    )
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        for q in quotes:
            writer.writerow({k: "" if getattr(q, k) is None else getattr(q, k) for k in FIELDS})
    print(f"wrote {len(quotes)} ticks to {path}")


if __name__ == "__main__":
    main()
