"""The calibration core: what every model's fit does the same way, written once.

A model states its problem in its own modules: its parameters, bounds and starts
(``model``: :class:`~engine.parameters.ParameterSpec`), its weighted residuals on packed market
data and its pricing (``problem``). A calibrator solves it through the pieces here and beside
here, whatever the model:

* the coordinates a solver moves (:class:`~engine.parameters.Free` for one model's vector,
  :class:`~engine.parameters.Slots` for the cells of a joint or time-dependent matrix), built
  from the specs, and the starts given by name (:func:`given`);
* any solver of :mod:`engine.optimize`, batched (:func:`engine.optimize.solve_batch`, or
  ``vmap``);
* the honest status of its stop (:func:`settle`: a non-finite or bound-saturated stop is no
  solution) and the identifiability at the solution from the solver's own normal matrix
  (:func:`identifiability_at_solution`);
* the cold retry of a warm start that failed (:meth:`engine.result.CalibrationResult.with_better`),
  the gates (:mod:`engine.gates`) and the result (:class:`engine.result.CalibrationResult`).

How a model orchestrates them is its own: SABR explores a free beta from several starts,
Heston explores cold starts on coarse nodes and polishes on fine ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import jax.numpy as jnp
import numpy as np
from jax import Array

from engine.diagnostics import IdentifiabilityMetrics, identifiability_from_normal, solution_normal
from engine.optimize import SolverOutput, final_status
from engine.parameters import ParameterSpec

__all__ = ["Coordinates", "given", "identifiability_at_solution", "settle"]


class Coordinates(Protocol):
    """What the core needs of a fit's coordinates (:class:`~engine.parameters.Free`,
    :class:`~engine.parameters.Slots`)."""

    bounds: tuple[tuple[float, float], ...]

    def fill(self, x: Array, held: Array) -> Array: ...

    def values(self, p: Array) -> Array: ...

    def cells(self, p: Array) -> Array: ...

    def place(self, values: Array, held: Array) -> Array: ...

    def scales(self, p: Array) -> Array: ...

    def at_bound(self, p: Array) -> Array: ...


def given(
    values: dict | None, names: Sequence[str], specs: dict[str, ParameterSpec], rows: int
) -> np.ndarray:
    """(rows, P) physical values given by parameter name (a scalar or one per row; NaN: not
    given), checked against the specs' bounds; NaN where a parameter is not named. How every
    calibrator reads its warm starts and priors."""
    out = np.full((rows, len(names)), np.nan)
    unknown = set(values or {}) - set(names)
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)}; expected some of {tuple(names)}")
    for name, value in (values or {}).items():
        spec = specs[name]
        value = np.broadcast_to(np.asarray(value, np.float64), (rows,))
        ok = np.isnan(value) | ((value >= spec.lower) & (value <= spec.upper))
        if not ok.all():
            raise ValueError(
                f"{name} values {value[~ok][:5].tolist()} outside [{spec.lower}, {spec.upper}]"
            )
        out[:, names.index(name)] = value
    return out


def settle(coords: Coordinates, p: Array, status: Array, finite: Array = True) -> Array:
    """The honest status of a fit that stopped at parameters ``p`` (``coords.fill`` of the
    solver's ``x``) with the solver's ``status``: ``CONVERGED`` only where they are finite (and
    ``finite``, any other figure the model requires) and no fitted parameter sits on a
    two-sided bound, where the solver's gradient vanishes though the fit's need not
    (``AT_BOUND``). In ``jit`` or on the host."""
    return final_status(status, jnp.all(jnp.isfinite(p)) & finite, coords.at_bound(p))


def identifiability_at_solution(
    coords: Coordinates,
    out: SolverOutput,
    residual_fn: Callable[[Array, object], Array],
    args: object,
    held: Array,
    n_obs: Array,
) -> IdentifiabilityMetrics:
    """Condition number, standard errors and correlations of the fitted parameters at a
    solver's solution (``residual_fn(x, args)`` its weighted residuals), each scaled to its
    unit (:meth:`~engine.parameters.Free.scales`), from the solver's own normal matrix where it
    has one."""
    normal = solution_normal(out, residual_fn, args, lambda x: coords.cells(coords.fill(x, held)))
    scales = coords.scales(coords.fill(out.x, held))
    return identifiability_from_normal(normal, 2.0 * out.cost, scales, n_obs)
