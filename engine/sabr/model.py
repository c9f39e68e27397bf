"""The SABR model (Hagan et al. 2002): its parameters, their bounds, and nothing else.

.. math:: dF = \\alpha_t F^\\beta\\,dW_1,\\quad d\\alpha = \\nu\\,\\alpha\\,dW_2,\\quad
   d\\langle W_1, W_2\\rangle = \\rho\\,dt

The implied-vol formula lives in :mod:`engine.sabr.hagan`, fitting in
:mod:`engine.sabr.calibrator`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from engine.parameters import ParameterSpec

__all__ = ["PARAM_NAMES", "SABRParams", "default_specs"]


class SABRParams(NamedTuple):
    """Vol level, CEV exponent, forward-vol correlation, vol-of-vol; scalars or arrays of one
    shape (a batch). A NamedTuple, so it jits and vmaps."""

    alpha: object
    beta: object
    rho: object
    nu: object


PARAM_NAMES: tuple[str, ...] = SABRParams._fields


def default_specs(beta: float | None = 0.5) -> dict[str, ParameterSpec]:
    """Bounds and default starts: ``alpha > 0``, ``0 <= beta <= 1``, ``|rho| < 1``,
    ``nu >= 0``; the starts of alpha, rho and nu (``None``) come from the smile's ATM level,
    skew and curvature. A number ``beta`` is held fixed, ``None`` frees it."""
    if beta is not None and not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    return {
        "alpha": ParameterSpec(None, 0.0, math.inf),
        "beta": ParameterSpec(
            0.5 if beta is None else beta, 0.0, 1.0, fixed=beta is not None, scale="absolute"
        ),
        "rho": ParameterSpec(None, -1.0, 1.0, scale="absolute"),
        "nu": ParameterSpec(None, 0.0, math.inf),
    }
