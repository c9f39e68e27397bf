"""SABR: the Hagan implied-vol formula and its batched calibrator."""

from engine.sabr.hagan import hagan_vol

__all__ = ["hagan_vol"]
