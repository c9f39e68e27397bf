"""The calibration playbooks' data side: loaders of the sample surface files in ``data/`` (and
files of the same columns), so the playbooks of ``calibration-playbooks.md`` run as written.

Imports flow one way: ``playbooks`` -> ``engine``, ``schemas``.
"""

from playbooks.data import (
    EquityOptionSurface,
    FXVolatilitySurface,
    get_dividend_yield,
    get_risk_free_rate,
    load_equity_option_surface,
    load_fx_volatility_surface,
    prepare_full_surface_data,
    prepare_heston_data,
)

__all__ = [
    "EquityOptionSurface",
    "FXVolatilitySurface",
    "get_dividend_yield",
    "get_risk_free_rate",
    "load_equity_option_surface",
    "load_fx_volatility_surface",
    "prepare_full_surface_data",
    "prepare_heston_data",
]
