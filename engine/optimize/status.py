"""Solver outcomes as data: a status code per problem, never an exception in a batch."""

from __future__ import annotations

import enum
from typing import NamedTuple

from jax import Array

from engine.buckets import array_module

__all__ = ["SolverOutput", "Status", "final_status"]


class Status(enum.IntEnum):
    """Why a solver stopped. Only ``CONVERGED`` parameters may be used as good."""

    CONVERGED = 0
    MAX_STEPS = 1
    STALLED = 2
    NONFINITE = 3
    AT_BOUND = 4

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Status.CONVERGED: "converged",
    Status.MAX_STEPS: "reached max_steps before meeting the tolerance",
    Status.STALLED: "stalled: no step reduces the loss (damping exhausted)",
    Status.NONFINITE: "non-finite residuals at the starting point",
    Status.AT_BOUND: "ended at a parameter bound: the solver's gradient vanished there, not "
    "the fit's (a degenerate corner such as rho = +-0.999 or theta = 0)",
}


class SolverOutput(NamedTuple):
    """One problem's solution (leading batch axes when vmapped).

    ``cost`` is ``0.5 * sum(residuals**2)``; ``loss_history[i]`` is the cost after step ``i``
    (NaN past the last step), empty when not recorded. ``normal`` is :math:`J^\top J` at ``x``
    where the solver has it (Levenberg-Marquardt), for diagnostics without another Jacobian.
    """

    x: Array
    status: Array
    iterations: Array
    cost: Array
    loss_history: Array
    normal: Array | None = None


def final_status(status, finite, at_bound):
    """A fit's status from its solver's: ``CONVERGED`` becomes ``NONFINITE`` where the
    parameters are not finite and ``AT_BOUND`` where a fitted one ends on its bound (the
    solver's gradient vanished there, not the fit's). Every calibrator decides it here, in
    ``jit`` or on the host (NumPy in, NumPy out: no device dispatch)."""
    xp = array_module(status, finite, at_bound)
    solved = status == Status.CONVERGED
    status = xp.where(solved & ~finite, Status.NONFINITE, status)
    return xp.where(solved & finite & at_bound, Status.AT_BOUND, status)
