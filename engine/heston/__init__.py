"""The Heston (1993) stochastic-volatility model: exact prices and batched calibration, plain
and with piecewise-constant time-dependent parameters."""

from engine.heston.calibrator import HestonCalibrator, HestonPricing, HestonThresholds
from engine.heston.model import PARAM_NAMES, HestonParams
from engine.heston.piecewise import TimeSegment, ptd_heston_price
from engine.heston.pricer import characteristic_function, heston_price, mean_variance
from engine.heston.surface import HestonSurface, pack_surface, surface_shape
from engine.heston.time_dependent import (
    SmoothnessRegularization,
    TimeDependentCalibrator,
    check_calendar_arbitrage,
)

__all__ = [
    "PARAM_NAMES",
    "HestonCalibrator",
    "HestonParams",
    "HestonPricing",
    "HestonSurface",
    "HestonThresholds",
    "SmoothnessRegularization",
    "TimeDependentCalibrator",
    "TimeSegment",
    "characteristic_function",
    "check_calendar_arbitrage",
    "heston_price",
    "mean_variance",
    "pack_surface",
    "ptd_heston_price",
    "surface_shape",
]
