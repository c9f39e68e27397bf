"""Surface files for the playbooks: FX smiles (``fx_daily_smiles.csv``) and equity option
surfaces (``equity_surfaces.csv``), read into arrays with times in ACT/365F years.

A request that matches nothing, or more than one thing where one is meant, is an error that
says what the file holds, never a guess.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from engine.sabr import atm_weights
from schemas.daycount import act365f

__all__ = [
    "DATA",
    "EquityOptionSurface",
    "FXVolatilitySurface",
    "SampleFiles",
    "get_dividend_yield",
    "get_risk_free_rate",
    "load_equity_option_surface",
    "load_fx_volatility_surface",
    "prepare_full_surface_data",
    "prepare_heston_data",
]

DATA = Path(__file__).resolve().parents[1] / "data"


class FXVolatilitySurface(NamedTuple):
    """One pair's quotes on one trade date; arrays per quote."""

    forward: np.ndarray
    strikes: np.ndarray
    maturities: np.ndarray  # years from the trade date
    implied_vols: np.ndarray


class EquityOptionSurface(NamedTuple):
    """One index's call prices on one trade date; arrays per option."""

    spot: float
    strikes: np.ndarray
    maturities: np.ndarray
    market_prices: np.ndarray  # calls
    open_interest: np.ndarray
    rate: float
    dividend: float


def _rows(path: Path, key: str, name: str, trade_date: str) -> list[dict]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    hits = [r for r in rows if r[key] == name and r["trade_date"] == str(trade_date)]
    if not hits:
        have = sorted({(r[key], r["trade_date"]) for r in rows})
        raise LookupError(f"{path.name} has no {key} {name!r} on {trade_date}; it has {have}")
    return hits


def _years(trade_date: str, expiries) -> np.ndarray:
    start = dt.date.fromisoformat(str(trade_date))
    return np.array([act365f(start, dt.date.fromisoformat(e)) for e in expiries])


def load_fx_volatility_surface(
    currency_pair: str, trade_date: str, path: Path | None = None
) -> FXVolatilitySurface:
    """The pair's quotes on ``trade_date`` from ``path`` (``data/fx_daily_smiles.csv``)."""
    rows = _rows(path or DATA / "fx_daily_smiles.csv", "pair", currency_pair, trade_date)
    col = lambda name: np.array([float(r[name]) for r in rows])  # noqa: E731
    return FXVolatilitySurface(
        col("forward"),
        col("strike"),
        _years(trade_date, [r["expiry"] for r in rows]),
        col("mid_vol"),
    )


def load_equity_option_surface(
    index: str, date: str, path: Path | None = None
) -> EquityOptionSurface:
    """The index's call prices on ``date`` from ``path`` (``data/equity_surfaces.csv``)."""
    rows = _rows(path or DATA / "equity_surfaces.csv", "index", index, date)
    col = lambda name: np.array([float(r[name]) for r in rows])  # noqa: E731
    for name in ("spot", "dividend", "currency"):
        if len({r[name] for r in rows}) > 1:
            raise ValueError(f"{index} on {date}: several values of {name!r} in one surface")
    return EquityOptionSurface(
        spot=float(col("spot")[0]),
        strikes=col("strike"),
        maturities=_years(date, [r["expiry"] for r in rows]),
        market_prices=col("call_price"),
        open_interest=col("open_interest"),
        rate=get_risk_free_rate(date, rows[0]["currency"]),
        dividend=float(col("dividend")[0]),
    )


def get_risk_free_rate(date: str, currency: str = "USD", path: Path | None = None) -> float:
    """The continuously compounded rate of ``currency`` on ``date`` (``data/rates.csv``)."""
    return float(_rows(path or DATA / "rates.csv", "currency", currency, date)[0]["rate"])


def get_dividend_yield(index: str, date: str, path: Path | None = None) -> float:
    """The continuous dividend yield the surface file quotes for ``index`` on ``date``."""
    return load_equity_option_surface(index, date, path).dividend


def prepare_heston_data(surface: EquityOptionSurface) -> dict:
    """An equity surface as ``HestonCalibrator`` market data: call prices with their own
    index's rate and dividend yield, and open interest for the playbook's liquidity filter
    (options at or below 100 weigh zero)."""
    return {
        "spot": surface.spot,
        "strikes": surface.strikes,
        "maturities": surface.maturities,
        "target_prices": surface.market_prices,
        "call": True,
        "rate": surface.rate,
        "dividend": surface.dividend,
        "open_interest": surface.open_interest,
    }


# the term-structure playbook's name for the same: every expiry of the surface, in one dict
prepare_full_surface_data = prepare_heston_data


class SampleFiles:
    """The jobs' surfaces from the sample files of one trade date (and prior dates for
    out-of-sample checks). Another source (the stream's book) offers the same methods."""

    def __init__(self, date: str, prior: Sequence[str] = ()) -> None:
        self.date, self.prior = date, tuple(prior)

    @property
    def label(self) -> str:
        return f"on {self.date}"

    def fx_smiles(self, pair: str) -> list[dict]:
        """SABR market data of each of the pair's expiries (ATM-weighted as the daily
        playbook weighs them)."""
        s = load_fx_volatility_surface(pair, self.date)
        out = []
        for t in np.unique(s.maturities):
            rows = s.maturities == t
            out.append(
                {"forward": float(s.forward[rows][0]), "strikes": s.strikes[rows],
                 "maturities": float(t), "target_vols": s.implied_vols[rows],
                 "weights": atm_weights(s.strikes[rows], float(s.forward[rows][0]))}
            )  # fmt: skip
        return out

    def index_surface(self, index: str) -> dict:
        """``HestonCalibrator`` market data of the index's surface (call prices)."""
        return prepare_heston_data(load_equity_option_surface(index, self.date))

    def prior_surfaces(self, index: str) -> list[dict]:
        return [prepare_heston_data(load_equity_option_surface(index, d)) for d in self.prior]
