"""Least-squares solvers sharing one signature: ``solver(residual_fn, x0, args, *, max_steps,
tol, record_history) -> SolverOutput``. Problems never see solvers and vice versa: a
calibrator takes any such callable (or one of the names of :data:`SOLVERS`) as ``optimizer``.
"""

from collections.abc import Callable

from engine.optimize.batch import solve_batch
from engine.optimize.first_order import adam, lbfgs
from engine.optimize.lm import levenberg_marquardt
from engine.optimize.optimistix_lm import optimistix_lm
from engine.optimize.status import SolverOutput, Status, final_status

Solver = Callable[..., SolverOutput]

SOLVERS: dict[str, Solver] = {
    "lm": levenberg_marquardt,
    "optimistix": optimistix_lm,
    "lbfgs": lbfgs,
    "adam": adam,
}


def resolve_solver(optimizer: str | Solver) -> Solver:
    """The solver named ``optimizer`` in :data:`SOLVERS`, or ``optimizer`` itself when it is a
    callable with the common signature (it must be jittable and hashable: a module-level
    function or a ``functools.partial`` of one keeps compiled programs cached)."""
    if callable(optimizer):
        return optimizer
    if optimizer not in SOLVERS:
        raise ValueError(
            f"optimizer must be a solver callable or one of {sorted(SOLVERS)}, not {optimizer!r}"
        )
    return SOLVERS[optimizer]


__all__ = [
    "SOLVERS",
    "Solver",
    "SolverOutput",
    "Status",
    "adam",
    "final_status",
    "lbfgs",
    "levenberg_marquardt",
    "optimistix_lm",
    "resolve_solver",
    "solve_batch",
]
