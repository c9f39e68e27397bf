"""Write ``data/fx_smiles.csv``: the bundled sample FX smiles (deterministic).

Three pairs, six expiries each, 15 strikes spanning about +-2.2 ATM standard deviations, vols
from SABR (beta 0.5) with pair-specific skew plus 0-3 bp of quote noise. Regenerate with

    .venv/bin/python data/make_fx_smiles.py
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np

from engine.sabr import hagan_vol

VALUATION = dt.date(2026, 11, 25)
TENOR_DAYS = (7, 30, 91, 182, 365, 730)  # 1W 1M 3M 6M 1Y 2Y
PAIRS = {  # spot forward, ATM vol, rho, nu (per year^-1/2 at 1Y)
    "EURUSD": (1.0850, 0.075, -0.10, 0.55),
    "USDJPY": (151.20, 0.095, -0.35, 0.70),
    "GBPUSD": (1.2650, 0.082, -0.20, 0.60),
}


def rows(seed: int = 11) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for pair, (forward, atm, rho, nu) in PAIRS.items():
        for days in TENOR_DAYS:
            t = days / 365.0
            f = forward * (1 + 0.002 * t)  # small carry
            alpha = atm * f**0.5 * (1 + 0.05 * np.sqrt(t))
            x = np.linspace(-2.2, 2.2, 15)
            strikes = f * np.exp(atm * np.sqrt(t) * x)
            vols = np.asarray(hagan_vol(strikes, f, t, alpha, 0.5, rho, nu / max(t, 0.25) ** 0.25))
            vols = vols + rng.uniform(0, 3e-4) * rng.standard_normal(vols.size)
            expiry = VALUATION + dt.timedelta(days=days)
            for k, v in zip(strikes, vols):
                out.append(
                    {
                        "underlying": pair,
                        "valuation_date": VALUATION.isoformat(),
                        "expiry": expiry.isoformat(),
                        "forward": f"{f:.6f}",
                        "strike": f"{k:.6f}",
                        "mid_vol": f"{v:.6f}",
                    }
                )
    return out


def main() -> None:
    path = Path(__file__).with_name("fx_smiles.csv")
    data = rows()
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(data[0]))
        writer.writeheader()
        writer.writerows(data)
    print(f"wrote {len(data)} quotes to {path}")


if __name__ == "__main__":
    main()
