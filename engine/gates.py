"""Validation gates of the playbooks: each a pass/fail with the figure it was decided on.

A gate is data (:class:`Gate`), vectorised over a batch. ``applicable`` is ``False`` where a
gate does not apply (no prior parameters given; a Heston-only condition on SABR): such a gate
reads ``"n/a"``, never a silent pass. Figures are computed under ``jit`` by the calibrators;
these helpers only compare them with thresholds, on the host.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax import Array

__all__ = [
    "Gate",
    "feller_gate",
    "gate_verdict",
    "not_applicable",
    "price_error_gate",
    "threshold_gate",
]


class Gate(NamedTuple):
    """``passed``/``applicable`` are booleans, ``value`` the figure compared to ``threshold``."""

    value: Array
    threshold: float
    passed: Array
    applicable: Array
    description: str


jax.tree_util.register_pytree_node(  # the figures are leaves; threshold and text are not
    Gate,
    lambda g: ((g.value, g.passed, g.applicable), (g.threshold, g.description)),
    lambda aux, leaves: Gate(leaves[0], aux[0], leaves[1], leaves[2], aux[1]),
)


def threshold_gate(value: Array, threshold: float, description: str, applicable=True) -> Gate:
    """Pass where ``value < threshold`` (NaN fails)."""
    value = np.asarray(value, np.float64)
    applicable = np.asarray(applicable, bool)
    if applicable.shape != value.shape:
        applicable = np.full(value.shape, applicable)
    return Gate(value, threshold, applicable & (value < threshold), applicable, description)


FELLER = "Feller condition 2 kappa theta > sigma^2"


def feller_gate(gap, scope: str = "") -> Gate:
    """The Feller condition as a gate: ``gap`` is ``sigma^2 - 2 kappa theta``
    (``HestonParams.feller_gap``; the largest over segments for a piecewise fit), < 0 passes."""
    return threshold_gate(gap, 0.0, FELLER + scope)


def price_error_gate(worst, threshold: float) -> Gate:
    """The largest relative price error of the fitted options below ``threshold``."""
    return threshold_gate(worst, threshold, f"largest relative price error below {threshold:.3g}")


def not_applicable(shape: tuple[int, ...], description: str) -> Gate:
    no = np.zeros(shape, bool)
    return Gate(np.full(shape, np.nan), np.nan, no, no, description)


def gate_verdict(passed: bool, applicable: bool) -> str:
    """``"pass"``, ``"fail"`` or ``"n/a"`` for one smile's gate."""
    if not applicable:
        return "n/a"
    return "pass" if passed else "fail"
