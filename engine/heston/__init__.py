"""The Heston (1993) stochastic-volatility model: exact prices and batched calibration."""

from engine.heston.calibrator import (
    HestonCalibrator,
    HestonSurface,
    HestonThresholds,
    pack_surface,
    surface_shape,
)
from engine.heston.model import PARAM_NAMES, HestonParams
from engine.heston.pricer import characteristic_function, heston_price, mean_variance

__all__ = [
    "PARAM_NAMES",
    "HestonCalibrator",
    "HestonParams",
    "HestonSurface",
    "HestonThresholds",
    "characteristic_function",
    "heston_price",
    "mean_variance",
    "pack_surface",
    "surface_shape",
]
