"""The Heston (1993) model: its parameters, their bounds and constraints, and nothing else.

.. math:: dS = (r - q) S\\,dt + \\sqrt{v} S\\,dW_1,\\quad
   dv = \\kappa(\\theta - v)\\,dt + \\sigma\\sqrt{v}\\,dW_2,\\quad d\\langle W_1, W_2\\rangle = \\rho\\,dt

Pricing lives in :mod:`engine.heston.pricer`, the fit's market data and problem in
:mod:`engine.heston.surface` and :mod:`engine.heston.problem`, fitting in
:mod:`engine.heston.calibrator`.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.parameters import ParameterSpec

__all__ = ["PARAM_NAMES", "HestonParams", "default_specs"]


class HestonParams(NamedTuple):
    """Initial variance, mean reversion, long-run variance, vol-of-vol, spot-vol correlation.

    Fields are scalars or arrays of one shape (a batch); a NamedTuple, so it jits and vmaps.
    """

    v0: object
    kappa: object
    theta: object
    sigma: object
    rho: object

    @property
    def feller_gap(self):
        """:math:`\\sigma^2 - 2\\kappa\\theta`: negative where the Feller condition holds (the
        variance never reaches zero)."""
        return self.sigma**2 - 2.0 * self.kappa * self.theta


PARAM_NAMES: tuple[str, ...] = HestonParams._fields


def default_specs() -> dict[str, ParameterSpec]:
    """Bounds and default starts: variances and vol-of-vol positive, ``|rho| < 1``."""
    return {
        "v0": ParameterSpec(0.04, 1e-6, 4.0),
        "kappa": ParameterSpec(1.5, 1e-3, 30.0),
        "theta": ParameterSpec(0.04, 1e-6, 4.0),
        "sigma": ParameterSpec(0.5, 1e-3, 5.0),
        "rho": ParameterSpec(-0.6, -0.999, 0.999, scale="absolute"),
    }
