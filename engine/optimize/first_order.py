"""optax L-BFGS and Adam on the same least-squares problems, for the runbook's fallbacks.

The playbook's failure runbook says "try an alternative optimizer": these minimise the same
``0.5 * ||r(x)||^2`` as :func:`engine.optimize.lm.levenberg_marquardt` and return the same
:class:`SolverOutput`, so a calibrator swaps solvers without knowing which it runs.

Converged means the gradient's largest component fell below ``tol * max(1, sqrt(2 * cost))``
(the loss's natural scale is the residual norm); Adam rarely gets there within ``max_steps``
and then honestly reports ``MAX_STEPS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array, lax

from engine.optimize.status import SolverOutput, Status

__all__ = ["adam", "lbfgs"]


class _State(NamedTuple):
    x: Array
    opt_state: optax.OptState
    cost: Array
    step: Array
    done: Array
    history: Array


def _minimise(
    optimizer: optax.GradientTransformationExtraArgs,
    residual_fn: Callable[[Array, object], Array],
    x0: Array,
    args: object,
    max_steps: int,
    tol: float,
    record_history: bool,
    line_search: bool,
) -> SolverOutput:
    def loss(x):
        r = residual_fn(x, args)
        return 0.5 * jnp.sum(r * r)

    # a line search leaves the value and gradient at the accepted point in its state
    value_and_grad = (
        optax.value_and_grad_from_state(loss) if line_search else jax.value_and_grad(loss)
    )
    x0 = jnp.asarray(x0, jnp.float64)
    cost0 = loss(x0)
    history = jnp.full((max_steps + 1 if record_history else 0,), jnp.nan)
    if record_history:
        history = history.at[0].set(cost0)
    init = _State(
        x0,
        optimizer.init(x0),
        cost0,
        jnp.int32(0),
        ~jnp.isfinite(cost0) | (cost0 <= 1e-30),
        history,
    )

    def cond(s: _State) -> Array:
        return ~s.done & (s.step < max_steps)

    def body(s: _State) -> _State:
        value, grad = value_and_grad(s.x, state=s.opt_state) if line_search else value_and_grad(s.x)
        updates, opt_state = optimizer.update(
            grad, s.opt_state, s.x, value=value, grad=grad, value_fn=loss
        )
        x = optax.apply_updates(s.x, updates)
        cost = loss(x)
        gtol = tol * jnp.maximum(1.0, jnp.sqrt(2.0 * value))
        done = (jnp.max(jnp.abs(grad)) <= gtol) | (cost <= 1e-30) | ~jnp.isfinite(cost)
        step = s.step + 1
        history = s.history.at[step].set(cost) if record_history else s.history
        return _State(x, opt_state, cost, step, done, history)

    final = lax.while_loop(cond, body, init)
    finite = jnp.isfinite(final.cost)
    status = jnp.where(
        ~finite,
        Status.NONFINITE,
        jnp.where(final.done, Status.CONVERGED, Status.MAX_STEPS),
    ).astype(jnp.int32)
    return SolverOutput(final.x, status, final.step, final.cost, final.history)


def lbfgs(residual_fn, x0, args, *, max_steps=500, tol=1e-8, record_history=False) -> SolverOutput:
    """optax L-BFGS with its zoom line search."""
    return _minimise(
        optax.lbfgs(), residual_fn, x0, args, max_steps, tol, record_history, line_search=True
    )


def adam(
    residual_fn, x0, args, *, max_steps=500, tol=1e-8, record_history=False, learning_rate=0.02
) -> SolverOutput:
    """optax Adam at a fixed learning rate (in unconstrained coordinates)."""
    optimizer = optax.with_extra_args_support(optax.adam(learning_rate))
    return _minimise(
        optimizer, residual_fn, x0, args, max_steps, tol, record_history, line_search=False
    )
