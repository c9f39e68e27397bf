r"""Levenberg-Marquardt for small dense least-squares problems, written to be vmapped.

Solves :math:`\min_x \tfrac12\lVert r(x)\rVert^2` with Marquardt's scaled damping
:math:`(J^\top J + \lambda D)\,\delta = -J^\top r`, :math:`D = \max_k \operatorname{diag}(J_k^\top
J_k)` (MINPACK's running scale), and Nielsen's (1999) damping update. The Jacobian comes from
forward-mode AD together with the residuals in one pass at every trial point, and is reduced at
once to :math:`J^\top J` and :math:`J^\top r`: an accepted step costs one evaluation and the loop
carries only P x P state, solved by :func:`engine.smallmat.spd_solve`.

Each iteration ends by computing the step it would take next. Stopping (per problem; under
``vmap`` finished problems are frozen while others continue): ``CONVERGED`` when that next step
is small, :math:`\lVert\delta\rVert \le tol\,(\lVert x\rVert + tol)`, or its predicted gain is
below ``tol`` relative to the cost, or the cost is below ``1e-30`` - so a warm start already at
the optimum stops after zero steps, and no step is spent only to confirm convergence. The
small-step test also applies after a rejected step (as MINPACK's ``xtol``): at the rounding
floor of exact data no gain can be verified, and the damping shrinks the step until it holds;
``STALLED`` when damping exceeds ``1e16``; ``MAX_STEPS`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array, lax

from engine.optimize.status import SolverOutput, Status
from engine.smallmat import spd_solve

__all__ = ["levenberg_marquardt"]

_TINY_COST = 1e-30
_MAX_DAMPING = 1e16


class _State(NamedTuple):
    x: Array
    normal: Array  # J^T J at x
    grad: Array  # J^T r at x
    cost: Array
    scale: Array
    damping: Array
    growth: Array
    delta: Array  # the step to try next
    predicted: Array  # its predicted gain
    step: Array
    done: Array
    status: Array
    history: Array


def _linearise(fn, x, args):
    """Cost, ``J^T J`` and ``J^T r`` at ``x``: all a step needs."""
    jac, r = jax.jacfwd(lambda p: (fn(p, args),) * 2, has_aux=True)(x)
    return 0.5 * jnp.sum(r * r), jac.T @ jac, jac.T @ r


def _step(normal, grad, damping, scale):
    """The damped step and its predicted gain ``0.5 * delta . (lambda D delta - g)``."""
    delta = -spd_solve(normal + jnp.diag(damping * scale), grad)
    return delta, 0.5 * jnp.dot(delta, damping * scale * delta - grad)


def _settled(delta, predicted, x, cost, tol):
    """Converged: the next step is negligible in size or in predicted gain."""
    small = jnp.linalg.norm(delta) <= tol * (jnp.linalg.norm(x) + tol)
    return small | (predicted <= tol * cost) | (cost <= _TINY_COST)


def levenberg_marquardt(
    residual_fn: Callable[[Array, object], Array],
    x0: Array,
    args: object,
    *,
    max_steps: int = 500,
    tol: float = 1e-8,
    record_history: bool = False,
    linearise: Callable | None = None,
) -> SolverOutput:
    """Minimise ``0.5 * ||residual_fn(x, args)||**2`` from ``x0`` (shape ``(P,)``).

    ``residual_fn`` must be jittable. Returns a :class:`SolverOutput`; never raises on a
    failed fit. ``iterations`` counts trial steps (accepted or not). ``linearise(residual_fn,
    x, args) -> (cost, J^T J, J^T r)`` replaces the dense forward-mode Jacobian where a problem
    knows its structure (block-sparse joint fits build ``J^T J`` from per-block Jacobians).
    """
    if linearise is None:
        linearise = _linearise
    x0 = jnp.asarray(x0, jnp.float64)
    cost0, normal0, grad0 = linearise(residual_fn, x0, args)
    finite0 = jnp.isfinite(cost0) & jnp.all(jnp.isfinite(normal0))
    scale0 = jnp.maximum(jnp.diag(normal0), 1e-12)
    damping0 = jnp.asarray(1e-3, jnp.float64)
    delta0, predicted0 = _step(normal0, grad0, damping0, scale0)
    history = jnp.full((max_steps + 1 if record_history else 0,), jnp.nan)
    if record_history:
        history = history.at[0].set(cost0)
    state = _State(
        x=x0,
        normal=normal0,
        grad=grad0,
        cost=cost0,
        scale=scale0,
        damping=damping0,
        growth=jnp.asarray(2.0, jnp.float64),
        delta=delta0,
        predicted=predicted0,
        step=jnp.asarray(0, jnp.int32),
        done=~finite0 | _settled(delta0, predicted0, x0, cost0, tol),
        status=jnp.where(finite0, Status.CONVERGED, Status.NONFINITE).astype(jnp.int32),
        history=history,
    )

    def cond(s: _State) -> Array:
        return ~s.done & (s.step < max_steps)

    def body(s: _State) -> _State:
        x_new = s.x + s.delta
        cost_new, normal_new, grad_new = linearise(residual_fn, x_new, args)
        finite = jnp.isfinite(cost_new) & jnp.all(jnp.isfinite(normal_new))
        actual = s.cost - cost_new
        ratio = actual / jnp.where(s.predicted > 0, s.predicted, 1.0)
        accept = finite & (actual > 0) & (ratio > 1e-4)

        pick = lambda new, old: jnp.where(accept, new, old)  # noqa: E731
        x, cost = pick(x_new, s.x), pick(cost_new, s.cost)
        normal, grad = pick(normal_new, s.normal), pick(grad_new, s.grad)
        scale = pick(jnp.maximum(s.scale, jnp.diag(normal_new)), s.scale)
        shrink = jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * ratio - 1.0) ** 3)
        damping = pick(s.damping * shrink, s.damping * s.growth)
        delta, predicted = _step(normal, grad, damping, scale)

        # a rejected step still converges once the damping has shrunk the next step below
        # tol (MINPACK's xtol test): at the noise floor of exact data no step can be verified
        small = jnp.linalg.norm(delta) <= tol * (jnp.linalg.norm(x) + tol)
        converged = (accept & _settled(delta, predicted, x, cost, tol)) | (~accept & small)
        stalled = ~accept & (damping > _MAX_DAMPING)
        step = s.step + 1
        return _State(
            x=x,
            normal=normal,
            grad=grad,
            cost=cost,
            scale=scale,
            damping=damping,
            growth=pick(2.0, s.growth * 2.0),
            delta=delta,
            predicted=predicted,
            step=step,
            done=converged | stalled,
            status=jnp.where(stalled, Status.STALLED, s.status).astype(jnp.int32),
            history=s.history.at[step].set(cost) if record_history else s.history,
        )

    final = lax.while_loop(cond, body, state)
    status = jnp.where(final.done, final.status, jnp.int32(Status.MAX_STEPS)).astype(jnp.int32)
    return SolverOutput(final.x, status, final.step, final.cost, final.history, final.normal)
