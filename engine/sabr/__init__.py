"""SABR: the model, the Hagan implied-vol formula and its batched calibrator."""

from engine.sabr.calibrator import SABRCalibrator, SABRThresholds, batch_arguments
from engine.sabr.hagan import hagan_vol
from engine.sabr.market import SmileBatch, atm_weights, pack_smiles
from engine.sabr.model import PARAM_NAMES, SABRParams

__all__ = [
    "PARAM_NAMES",
    "SABRCalibrator",
    "SABRParams",
    "SABRThresholds",
    "SmileBatch",
    "atm_weights",
    "batch_arguments",
    "hagan_vol",
    "pack_smiles",
]
