"""SABR: the Hagan implied-vol formula and its batched calibrator."""

from engine.sabr.calibrator import PARAM_NAMES, GateThresholds, SABRCalibrator
from engine.sabr.hagan import hagan_vol
from engine.sabr.market import SmileBatch, atm_weights, pack_smiles

__all__ = [
    "PARAM_NAMES",
    "GateThresholds",
    "SABRCalibrator",
    "SmileBatch",
    "atm_weights",
    "hagan_vol",
    "pack_smiles",
]
