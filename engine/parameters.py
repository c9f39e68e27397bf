"""Model parameters: their bounds, default starts, and the smooth maps that keep solvers inside.

Solvers work on unconstrained ``u``; a bounded parameter is ``lower + exp(u)`` (one finite
bound) or ``lower + (upper - lower) * sigmoid(u)`` (two), so every iterate is admissible and
the Jacobian stays exact. A fit's coordinates are a :class:`Free` (some parameters of one
model's vector: SABR, Heston, SVI) or :class:`Slots` (cells of a parameter matrix, shared across
rows: the joint and time-dependent fits); both offer the same methods, which the calibration
core (:mod:`engine.core`) solves through.
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
    "Free",
    "ParameterSpec",
    "Slots",
    "on_bound",
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


class Free(NamedTuple):
    """The coordinates of a fit of one model's parameter vector: the parameters at ``index``
    are solved for within their ``bounds``, each read relative to its value or absolutely
    (``relative``: how identifiability scales it); the rest keep their held values. Static
    (hashable), so it is part of a compiled fit."""

    index: tuple[int, ...]
    bounds: tuple[tuple[float, float], ...]
    relative: tuple[bool, ...]

    @classmethod
    def of(cls, specs: dict[str, ParameterSpec], names) -> Free:
        """The coordinates of parameters ``names`` (the vector's order) whose ``specs`` are
        not ``fixed``."""
        index = tuple(i for i, name in enumerate(names) if not specs[name].fixed)
        if not index:
            raise ValueError("every parameter is fixed: nothing to calibrate")
        chosen = [specs[names[i]] for i in index]
        return cls(
            index, tuple(s.bounds for s in chosen), tuple(s.scale == "relative" for s in chosen)
        )

    def fill(self, x: Array, held: Array) -> Array:
        """The parameter vector: ``held`` with each free parameter set from unconstrained
        ``x`` mapped into its bounds."""
        p = held
        for j, (i, (lo, hi)) in enumerate(zip(self.index, self.bounds)):
            p = p.at[i].set(to_constrained(x[j], lo, hi))
        return p

    def values(self, p: Array) -> Array:
        """The unconstrained coordinates of ``p``: :meth:`fill`'s inverse, a solver's start."""
        return jnp.stack([to_unconstrained(p[i], *b) for i, b in zip(self.index, self.bounds)])

    def cells(self, p: Array) -> Array:
        """The free parameters' physical values in ``p`` (..., P)."""
        return p[..., jnp.array(self.index)]

    def place(self, values: Array, held: Array) -> Array:
        """``held`` with the free parameters set to physical ``values``: what a Jacobian in
        the physical parameters (identifiability) differentiates."""
        return held.at[jnp.array(self.index)].set(values)

    def scales(self, p: Array) -> Array:
        """Each free parameter's unit for identifiability: its value, or 1 where absolute."""
        return jnp.where(jnp.array(self.relative), jnp.abs(self.cells(p)), 1.0)

    def at_bound(self, p: Array) -> Array:
        """Whether any free parameter of ``p`` (..., P) ends on a bound (:func:`on_bound`):
        no solution there."""
        return on_bound(self.cells(p), self.bounds)


class Slots(NamedTuple):
    """The coordinates of a fit of a parameter matrix (rows: segments of time, assets of a
    joint fit; columns: a model's parameters): coordinate ``j`` sets the cells ``rows[j]`` of
    column ``cols[j]``, within ``bounds[j]``, read relative to its value or absolutely
    (``relative[j]``). A parameter shared by rows is one coordinate over all of them; the
    cells no coordinate sets keep their held values. The methods of :class:`Free`; static
    (hashable), so it is part of a compiled fit."""

    rows: tuple[tuple[int, ...], ...]
    cols: tuple[int, ...]
    bounds: tuple[tuple[float, float], ...]
    relative: tuple[bool, ...]

    @classmethod
    def of(cls, specs: dict[str, ParameterSpec], names, groups) -> Slots:
        """The slots of parameters ``names`` (the matrix's columns, in order) whose
        ``specs`` are not ``fixed``: one per group of rows that ``groups(name)`` returns."""
        rows, cols = [], []
        for col, name in enumerate(names):
            if not specs[name].fixed:
                for group in groups(name):
                    rows.append(tuple(group))
                    cols.append(col)
        if not rows:
            raise ValueError("every parameter is fixed: nothing to calibrate")
        chosen = [specs[names[c]] for c in cols]
        return cls(
            tuple(rows),
            tuple(cols),
            tuple(s.bounds for s in chosen),
            tuple(s.scale == "relative" for s in chosen),
        )

    def cells(self, p: Array) -> Array:
        """Each slot's value in matrix ``p`` (its first cell), in its bounds' space."""
        return jnp.stack([p[rows[0], col] for rows, col in zip(self.rows, self.cols)])

    def fill(self, x: Array, held: Array) -> Array:
        """The parameter matrix: ``held`` with each free coordinate of unconstrained ``x``
        mapped into its bounds and written to its cells."""
        return self.place([to_constrained(x[j], *b) for j, b in enumerate(self.bounds)], held)

    def values(self, p: Array) -> Array:
        """The unconstrained coordinates of matrix ``p`` (each slot's first cell): the
        inverse of :meth:`fill` where the matrix honours the sharing."""
        return jnp.stack([to_unconstrained(v, *b) for v, b in zip(self.cells(p), self.bounds)])

    def place(self, values, held: Array) -> Array:
        """``held`` with each slot's physical value (``values[j]``) written to its cells."""
        p = held
        for j, (rows, col) in enumerate(zip(self.rows, self.cols)):
            p = p.at[jnp.array(rows), col].set(values[j])
        return p

    def scales(self, p: Array) -> Array:
        """Each slot's unit for identifiability: its value, or 1 where absolute."""
        return jnp.where(jnp.array(self.relative), jnp.abs(self.cells(p)), 1.0)

    def at_bound(self, p: Array) -> Array:
        """Whether any slot of ``p`` ends on a bound (:func:`on_bound`): no solution there."""
        return on_bound(self.cells(p), self.bounds)
