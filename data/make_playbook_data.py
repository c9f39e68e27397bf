"""Write the playbooks' sample inputs (deterministic): ``data/fx_daily_smiles.csv``,
``data/equity_surfaces.csv`` and ``data/rates.csv``.

* FX: each pair's 3M smile on five trade dates (SABR, beta 0.5, parameters drifting a little
  day to day, 0-3 bp of quote noise): the daily SABR playbook's input and its history.
* Equity: SPX and SX5E call prices on 27 Nov 2026, six expiries of 11 strikes within +-2 ATM
  standard deviations, from Heston with 0.5% noise on the out-of-the-money price, with spot, currency, dividend yield
  and open interest (some quotes below the playbook's liquidity threshold of 100). Then NKY on
  27 Nov, and all three on 20 Nov (v0 10% lower, spots 1% lower): the joint playbook's third
  index and the prior date that out-of-sample checks fit.

Regenerate with ``.venv/bin/python data/make_playbook_data.py``.
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.blackscholes import forward_price
from engine.heston import heston_price
from engine.sabr import hagan_vol

FX_DATES = [dt.date(2026, 11, d) for d in (23, 24, 25, 26, 27)]
FX_PAIRS = {"EURUSD": (1.0850, 0.075, -0.10, 0.55), "USDJPY": (151.20, 0.095, -0.35, 0.70)}
EQUITY_DATE = dt.date(2026, 11, 27)
PRIOR_DATE = dt.date(2026, 11, 20)
RATES = {"USD": 0.042, "EUR": 0.021, "JPY": 0.005}  # continuously compounded, flat
INDICES = {  # currency, spot, dividend yield, Heston v0, kappa, theta, sigma, rho
    "SPX": ("USD", 6020.0, 0.013, 0.022, 2.1, 0.038, 0.62, -0.74),
    "SX5E": ("EUR", 4950.0, 0.030, 0.030, 1.6, 0.045, 0.55, -0.68),
}
LATER = {"NKY": ("JPY", 38500.0, 0.018, 0.026, 1.8, 0.040, 0.58, -0.70)}  # added after
EXPIRY_DAYS = (30, 61, 91, 182, 365, 730)


def fx_rows(rng: np.random.Generator) -> list[dict]:
    out = []
    for pair, (spot, atm, rho, nu) in FX_PAIRS.items():
        for day, date in enumerate(FX_DATES):
            t = 91 / 365
            f = spot * (1 + 0.003 * rng.standard_normal())
            alpha = atm * f**0.5 * (1 + 0.01 * day)
            strikes = f * np.exp(atm * np.sqrt(t) * np.linspace(-2.2, 2.2, 11))
            r = np.clip(rho + 0.01 * rng.standard_normal(), -0.9, 0.9)
            vols = np.asarray(hagan_vol(strikes, f, t, alpha, 0.5, r, nu))
            vols = vols + rng.uniform(0, 3e-4) * rng.standard_normal(vols.size)
            expiry = date + dt.timedelta(days=91)
            for k, v in zip(strikes, vols):
                out.append(
                    {"pair": pair, "trade_date": date.isoformat(), "expiry": expiry.isoformat(),
                     "forward": f"{f:.6f}", "strike": f"{k:.6f}", "mid_vol": f"{v:.6f}"}
                )  # fmt: skip
    return out


def equity_rows(rng: np.random.Generator) -> list[dict]:
    # the first surfaces draw their noise first, as they always have: the file's SPX and SX5E
    # rows of 27 Nov stay the same as more are added after them
    out = [row for i, p in INDICES.items() for row in _surface(rng, i, p, EQUITY_DATE)]
    out += [row for i, p in LATER.items() for row in _surface(rng, i, p, EQUITY_DATE)]
    for index, (currency, spot, dividend, v0, *rest) in (INDICES | LATER).items():
        moved = (currency, 0.99 * spot, dividend, 0.9 * v0, *rest)
        out += _surface(rng, index, moved, PRIOR_DATE)
    return out


def _surface(rng: np.random.Generator, index: str, spec: tuple, date: dt.date) -> list[dict]:
    currency, spot, dividend, *params = spec
    rate, out = RATES[currency], []
    for days in EXPIRY_DAYS:
        t = days / 365
        f = float(forward_price(spot, rate, dividend, t))
        strikes = np.round(f * np.exp(0.2 * np.sqrt(t) * np.linspace(-2, 2, 11)), 0)
        otm = strikes >= f
        prices = np.array(heston_price(spot, strikes, t, rate, dividend, *params, otm))
        prices *= 1 + 0.005 * rng.standard_normal(strikes.size)  # quote noise
        # the file quotes calls: in-the-money ones by put-call parity
        parity = spot * np.exp(-dividend * t) - strikes * np.exp(-rate * t)
        calls = np.where(otm, prices, prices + parity)
        interest = rng.integers(20, 5000, strikes.size)
        expiry = date + dt.timedelta(days=days)
        for k, c, oi in zip(strikes, calls, interest):
            out.append(
                {"index": index, "trade_date": date.isoformat(),
                 "expiry": expiry.isoformat(), "currency": currency, "spot": round(spot, 2),
                 "dividend": dividend, "strike": f"{k:.0f}", "call_price": f"{c:.4f}",
                 "open_interest": int(oi)}
            )  # fmt: skip
    return out


def _write(name: str, rows: list[dict]) -> None:
    path = Path(__file__).with_name(name)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {path}")


def main() -> None:
    rng = np.random.default_rng(2026)
    _write("fx_daily_smiles.csv", fx_rows(rng))
    _write("equity_surfaces.csv", equity_rows(rng))
    _write(
        "rates.csv",
        [
            {"trade_date": date.isoformat(), "currency": c, "rate": r}
            for date in (EQUITY_DATE, PRIOR_DATE)
            for c, r in RATES.items()
        ],
    )


if __name__ == "__main__":
    main()
