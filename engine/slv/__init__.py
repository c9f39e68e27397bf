"""Heston stochastic local volatility: Dupire local vol from the market's smiles, the leverage
function by the particle method, and a repricing check (see :mod:`engine.slv.calibrator`)."""

from engine.slv.calibrator import SLVCalibrator, SLVResult, SLVThresholds
from engine.slv.localvol import ImpliedSurface, implied_surface, local_variance
from engine.slv.particles import LeverageGrid, calibrate_leverage, simulate_log_spots

__all__ = [
    "ImpliedSurface",
    "LeverageGrid",
    "SLVCalibrator",
    "SLVResult",
    "SLVThresholds",
    "calibrate_leverage",
    "implied_surface",
    "local_variance",
    "simulate_log_spots",
]
