"""The Heston (1993) stochastic-volatility model: exact prices and batched calibration."""

from engine.heston.calibrator import (
    PARAM_NAMES,
    HestonCalibrator,
    HestonSurface,
    pack_surface,
    surface_shape,
)
from engine.heston.pricer import characteristic_function, heston_price, mean_variance

__all__ = [
    "PARAM_NAMES",
    "HestonCalibrator",
    "HestonSurface",
    "characteristic_function",
    "heston_price",
    "mean_variance",
    "pack_surface",
    "surface_shape",
]
