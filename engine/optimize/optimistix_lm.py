"""``optimistix.LevenbergMarquardt`` behind the common solver signature.

Kept as the independent cross-check of :mod:`engine.optimize.lm` (tests) and as its peer in
``bench/sabr.py``, which measured the specialised solver faster on batched smiles.
"""

from __future__ import annotations

import jax.numpy as jnp
import optimistix as optx

from engine.optimize.status import SolverOutput, Status

__all__ = ["optimistix_lm"]


def optimistix_lm(
    residual_fn, x0, args, *, max_steps=500, tol=1e-8, record_history=False
) -> SolverOutput:
    """Solve with optimistix (``rtol = atol = tol``); no per-step history is available."""
    solver = optx.LevenbergMarquardt(rtol=tol, atol=tol)
    sol = optx.least_squares(
        residual_fn, solver, jnp.asarray(x0, jnp.float64), args, max_steps=max_steps, throw=False
    )
    r = residual_fn(sol.value, args)
    cost = 0.5 * jnp.sum(r * r)
    ok = sol.result == optx.RESULTS.successful
    status = jnp.where(
        ~jnp.isfinite(cost), Status.NONFINITE, jnp.where(ok, Status.CONVERGED, Status.MAX_STEPS)
    ).astype(jnp.int32)
    history = jnp.full((max_steps + 1 if record_history else 0,), jnp.nan)
    return SolverOutput(sol.value, status, sol.stats["num_steps"], cost, history)
