"""Model parameters: their bounds, default starts, and the smooth maps that keep solvers inside.

Solvers work on unconstrained ``u``; a bounded parameter is ``lower + exp(u)`` (one finite
bound) or ``lower + (upper - lower) * sigmoid(u)`` (two), so every iterate is admissible and
the Jacobian stays exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = [
    "ParameterSpec",
    "Slots",
    "fill_free",
    "fill_slots",
    "free_values",
    "on_bound",
    "slot_values",
    "to_constrained",
    "to_unconstrained",
]


@dataclass
class ParameterSpec:
    """One parameter of a model: ``init`` (``None``: derived from the data), bounds, fixed?

    ``scale`` is ``"relative"`` for scale parameters (changes and sensitivities are read
    relative to the value) and ``"absolute"`` for bounded shape parameters such as ``rho``.
    """

    init: float | None
    lower: float = -math.inf
    upper: float = math.inf
    fixed: bool = False
    scale: str = "relative"

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ValueError(f"empty bounds [{self.lower}, {self.upper}]")
        if self.scale not in ("relative", "absolute"):
            raise ValueError(f"scale must be 'relative' or 'absolute', not {self.scale!r}")

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.lower, self.upper)


def to_constrained(u: Array, lower: float, upper: float) -> Array:
    """Map unconstrained ``u`` into ``(lower, upper)``."""
    if math.isinf(lower) and math.isinf(upper):
        return u
    if math.isinf(upper):
        return lower + jnp.exp(u)
    if math.isinf(lower):
        return upper - jnp.exp(-u)
    return lower + (upper - lower) * (0.5 * (jnp.tanh(0.5 * u) + 1.0))


def to_unconstrained(x: Array, lower: float, upper: float) -> Array:
    """Inverse of :func:`to_constrained`; ``x`` is first pulled just inside the bounds."""
    if math.isinf(lower) and math.isinf(upper):
        return x
    if math.isinf(upper):
        return jnp.log(jnp.maximum(x - lower, 1e-12))
    if math.isinf(lower):
        return -jnp.log(jnp.maximum(upper - x, 1e-12))
    p = jnp.clip((x - lower) / (upper - lower), 1e-9, 1.0 - 1e-9)
    return jnp.log(p) - jnp.log1p(-p)


def on_bound(values: Array, bounds, rel: float = 1e-6) -> Array:
    """Whether any of ``values`` (..., P) lies within ``rel`` of its range from a finite bound
    of a two-sided interval (``bounds``: P pairs). There the sigmoid map saturates, so a
    solver's gradient vanishes while the fit's need not: such a stop is no solution. One
    compiled program per shape (eager, its five ops compiled each their own)."""
    lo, hi = (np.asarray(side, np.float64) for side in zip(*bounds))
    return _on_bound(values, lo, hi, rel)


@jax.jit
def _on_bound(values: Array, lo: Array, hi: Array, rel: float) -> Array:
    edge = rel * (hi - lo)
    near = (values - lo < edge) | (hi - values < edge)
    return jnp.any(jnp.isfinite(edge) & near, axis=-1)


class Slots(NamedTuple):
    """How a fit's free coordinates fill a parameter matrix (rows: segments of time, assets of
    a joint fit; columns: a model's parameters): coordinate ``j`` sets the cells ``rows[j]``
    of column ``cols[j]``, within ``bounds[j]``. A parameter shared by rows is one coordinate
    over all of them; the cells no coordinate sets keep their held values. Static (hashable),
    so it is part of a compiled fit."""

    rows: tuple[tuple[int, ...], ...]
    cols: tuple[int, ...]
    bounds: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, specs: dict[str, ParameterSpec], names, groups) -> Slots:
        """The slots of parameters ``names`` (the matrix's columns, in order) whose
        ``specs`` are not ``fixed``: one per group of rows that ``groups(name)`` returns."""
        rows, cols, bounds = [], [], []
        for col, name in enumerate(names):
            if specs[name].fixed:
                continue
            for group in groups(name):
                rows.append(tuple(group))
                cols.append(col)
                bounds.append(specs[name].bounds)
        if not rows:
            raise ValueError("every parameter is fixed: nothing to calibrate")
        return cls(tuple(rows), tuple(cols), tuple(bounds))

    def cells(self, p: Array) -> Array:
        """Each slot's value in matrix ``p`` (its first cell), in its bounds' space."""
        return jnp.stack([p[rows[0], col] for rows, col in zip(self.rows, self.cols)])

    def at_bound(self, p: Array) -> bool:
        """Whether any slot of ``p`` ends on a bound (:func:`on_bound`): no solution there."""
        return bool(on_bound(self.cells(p), self.bounds))


def fill_free(x: Array, held: Array, free, bounds) -> Array:
    """A model's parameter vector: ``held`` with each free parameter (indices ``free``) set
    from unconstrained ``x`` mapped into its ``bounds`` (one pair per free parameter). The map
    every single-model fit solves through (:func:`fill_slots` is a matrix of them with shared
    cells, for joint and time-dependent fits)."""
    p = held
    for j, (i, (lo, hi)) in enumerate(zip(free, bounds)):
        p = p.at[i].set(to_constrained(x[j], lo, hi))
    return p


def free_values(p: Array, free, bounds) -> Array:
    """The unconstrained coordinates of the free parameters of ``p``: :func:`fill_free`'s
    inverse, a solver's start."""
    return jnp.stack([to_unconstrained(p[i], lo, hi) for i, (lo, hi) in zip(free, bounds)])


def fill_slots(x: Array, held: Array, slots: Slots) -> Array:
    """The parameter matrix: ``held`` with each free coordinate of unconstrained ``x`` mapped
    into its bounds and written to its cells."""
    values = [to_constrained(x[j], *bounds) for j, bounds in enumerate(slots.bounds)]
    return place_slots(values, held, slots)


def place_slots(values, held: Array, slots: Slots) -> Array:
    """``held`` with each slot's physical value (``values[j]``) written to its cells: what
    :func:`fill_slots` does after mapping into the bounds, and what a Jacobian in the
    physical parameters (identifiability) differentiates."""
    p = held
    for j, (rows, col) in enumerate(zip(slots.rows, slots.cols)):
        p = p.at[jnp.array(rows), col].set(values[j])
    return p


def slot_values(p: Array, slots: Slots) -> Array:
    """The unconstrained coordinates of matrix ``p`` (each slot's first cell): the inverse
    of :func:`fill_slots` where the matrix honours the sharing."""
    return jnp.stack([to_unconstrained(v, *b) for v, b in zip(slots.cells(p), slots.bounds)])
