"""Least-squares solvers sharing one signature: ``solver(residual_fn, x0, args, *, max_steps,
tol, record_history) -> SolverOutput``. Problems never see solvers and vice versa."""

from engine.optimize.first_order import adam, lbfgs
from engine.optimize.lm import levenberg_marquardt
from engine.optimize.optimistix_lm import optimistix_lm
from engine.optimize.status import SolverOutput, Status

SOLVERS = {
    "lm": levenberg_marquardt,
    "optimistix": optimistix_lm,
    "lbfgs": lbfgs,
    "adam": adam,
}

__all__ = [
    "SOLVERS",
    "SolverOutput",
    "Status",
    "adam",
    "lbfgs",
    "levenberg_marquardt",
    "optimistix_lm",
]
