r"""Levenberg–Marquardt for small dense least-squares problems, written to be vmapped.

Solves :math:`\min_x \tfrac12\lVert r(x)\rVert^2` with Marquardt's scaled damping
:math:`(J^\top J + \lambda D)\,\delta = -J^\top r`, :math:`D = \max_{k}\operatorname{diag}(J_k^\top
J_k)` (MINPACK's running scale), and Nielsen's (1999) damping update. The Jacobian comes from
forward-mode AD together with the residuals in one pass, at every trial point, so an accepted
step costs one evaluation. The normal equations are solved by an unrolled Cholesky
factorisation: the parameter count is tiny and static, and elementwise code vectorises across a
vmapped batch where a LAPACK call per problem would not.

Stopping (per problem; under ``vmap`` finished problems are frozen while others continue):
``CONVERGED`` when an accepted step is small (:math:`\lVert\delta\rVert \le tol(\lVert x\rVert + tol)`),
or both actual and predicted reductions are below ``tol`` relative to the cost, or the cost is
below ``1e-30``; ``STALLED`` when damping exceeds ``1e16``; ``MAX_STEPS`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax

from engine.optimize.status import SolverOutput, Status

__all__ = ["levenberg_marquardt", "spd_solve"]

_TINY_COST = 1e-30
_MAX_DAMPING = 1e16


def spd_solve(a: Array, b: Array) -> Array:
    """Solve ``a x = b`` for a small symmetric positive definite ``a`` (static size).

    Unrolled Cholesky: pure elementwise arithmetic, so a vmapped batch of 3x3 systems is a
    handful of vector operations rather than a loop of LAPACK calls.
    """
    n = a.shape[-1]
    chol = [[None] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            s = a[i, j] - sum(chol[i][k] * chol[j][k] for k in range(j))
            chol[i][j] = jnp.sqrt(jnp.maximum(s, 1e-300)) if i == j else s / chol[j][j]
    y = []
    for i in range(n):
        y.append((b[i] - sum(chol[i][k] * y[k] for k in range(i))) / chol[i][i])
    x = [None] * n
    for i in reversed(range(n)):
        x[i] = (y[i] - sum(chol[k][i] * x[k] for k in range(i + 1, n))) / chol[i][i]
    return jnp.stack(x)


class _State(NamedTuple):
    x: Array
    r: Array
    jac: Array
    cost: Array
    scale: Array
    damping: Array
    growth: Array
    step: Array
    done: Array
    status: Array
    history: Array


def _residuals_and_jacobian(fn, x, args):
    jac, r = jax.jacfwd(lambda p: (fn(p, args),) * 2, has_aux=True)(x)
    return r, jac


def levenberg_marquardt(
    residual_fn: Callable[[Array, object], Array],
    x0: Array,
    args: object,
    *,
    max_steps: int = 500,
    tol: float = 1e-8,
    record_history: bool = False,
) -> SolverOutput:
    """Minimise ``0.5 * ||residual_fn(x, args)||**2`` from ``x0`` (shape ``(P,)``).

    ``residual_fn`` must be jittable. Returns a :class:`SolverOutput`; never raises on a
    failed fit. ``iterations`` counts trial steps (accepted or not).
    """
    x0 = jnp.asarray(x0, jnp.float64)
    r0, j0 = _residuals_and_jacobian(residual_fn, x0, args)
    cost0 = 0.5 * jnp.sum(r0 * r0)
    finite0 = jnp.isfinite(cost0) & jnp.all(jnp.isfinite(j0))
    history = jnp.full((max_steps + 1 if record_history else 0,), jnp.nan)
    if record_history:
        history = history.at[0].set(cost0)
    state = _State(
        x=x0,
        r=r0,
        jac=j0,
        cost=cost0,
        scale=jnp.maximum(jnp.sum(j0 * j0, axis=0), 1e-12),
        damping=jnp.asarray(1e-3, jnp.float64),
        growth=jnp.asarray(2.0, jnp.float64),
        step=jnp.asarray(0, jnp.int32),
        done=~finite0 | (cost0 <= _TINY_COST),
        status=jnp.where(finite0, Status.CONVERGED, Status.NONFINITE).astype(jnp.int32),
        history=history,
    )

    def cond(s: _State) -> Array:
        return ~s.done & (s.step < max_steps)

    def body(s: _State) -> _State:
        grad = s.jac.T @ s.r
        normal = s.jac.T @ s.jac
        damped = normal + jnp.diag(s.damping * s.scale)
        delta = -spd_solve(damped, grad)
        x_new = s.x + delta
        r_new, j_new = _residuals_and_jacobian(residual_fn, x_new, args)
        cost_new = 0.5 * jnp.sum(r_new * r_new)
        finite = jnp.isfinite(cost_new) & jnp.all(jnp.isfinite(j_new))
        actual = s.cost - cost_new
        predicted = 0.5 * jnp.dot(delta, s.damping * s.scale * delta - grad)
        ratio = actual / jnp.where(predicted > 0, predicted, 1.0)
        accept = finite & (actual > 0) & (ratio > 1e-4)

        small_step = jnp.linalg.norm(delta) <= tol * (jnp.linalg.norm(x_new) + tol)
        flat = (jnp.abs(actual) <= tol * s.cost) & (predicted <= tol * s.cost)
        converged = accept & (small_step | flat | (cost_new <= _TINY_COST))
        stalled = ~accept & (s.damping * s.growth > _MAX_DAMPING)

        shrink = jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * ratio - 1.0) ** 3)
        step = s.step + 1
        pick = lambda new, old: jnp.where(accept, new, old)  # noqa: E731
        cost = pick(cost_new, s.cost)
        history = s.history.at[step].set(cost) if record_history else s.history
        return _State(
            x=pick(x_new, s.x),
            r=pick(r_new, s.r),
            jac=pick(j_new, s.jac),
            cost=cost,
            scale=pick(jnp.maximum(s.scale, jnp.sum(j_new * j_new, axis=0)), s.scale),
            damping=pick(s.damping * shrink, s.damping * s.growth),
            growth=pick(2.0, s.growth * 2.0),
            step=step,
            done=converged | stalled,
            status=jnp.where(stalled, Status.STALLED, s.status).astype(jnp.int32),
            history=history,
        )

    final = lax.while_loop(cond, body, state)
    status = jnp.where(final.done, final.status, jnp.int32(Status.MAX_STEPS)).astype(jnp.int32)
    return SolverOutput(final.x, status, final.step, final.cost, final.history)
