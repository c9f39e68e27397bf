"""Many small least-squares problems in one program, without the slowest holding back the rest.

A ``vmap``-ed solve runs in lockstep: every lane computes until the slowest lane stops, so a
batch whose problems mostly take 3 steps and a few take 12 costs 12 steps per problem (cold
SABR smiles: mean 3.6 steps, max 12). :func:`solve_batch` runs every problem for
``first_steps``, then gathers the unfinished ones into a batch of ``len(batch) // tail``
lanes (a multiple of 8, at least 8) and restarts the solver there from where each stopped, for the steps left. When more
than that many are unfinished, all lanes continue instead. Which branch runs never changes a
problem's result: each problem's trajectory depends on its own data only (restarted from its
own iterate either way), so results do not depend on batch composition.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array, lax

from engine.optimize.status import SolverOutput, Status

__all__ = ["solve_batch"]

# the second round runs on a multiple of 8 lanes: narrower batches compile to scalar code,
# whose rounding (fused multiply-adds) differs from the vector code of wider ones, and a
# problem's result would then depend on how many others its batch held
_LANES = 8


def solve_batch(
    solver: Callable[..., SolverOutput],
    residual_fn: Callable[[Array, object], Array],
    x0: Array,
    args: object,
    *,
    max_steps: int,
    tol: float,
    record_history: bool = False,
    first_steps: int = 6,
    tail: int = 8,
) -> SolverOutput:
    """``solver`` on each row of ``x0`` (B, P) and ``args`` (leading axis B), in two rounds.

    Iterations and loss histories add up across the rounds (the second round's first entry,
    the cost it restarts from, is the first round's last), so the output reads as one solve.
    """
    solve = lambda x, a, steps: solver(  # noqa: E731
        residual_fn, x, a, max_steps=steps, tol=tol, record_history=record_history
    )
    if max_steps <= first_steps:
        return jax.vmap(lambda x, a: solve(x, a, max_steps))(x0, args)
    first = jax.vmap(lambda x, a: solve(x, a, first_steps))(x0, args)
    rest_steps = max_steps - first_steps
    b = x0.shape[0]
    size = min(b, max(_LANES, b // tail // _LANES * _LANES))
    pending = first.status == Status.MAX_STEPS
    count = jnp.sum(pending)
    padded_history = first.loss_history  # (B, 0) without a history
    if record_history:
        fill = jnp.full((b, rest_steps), jnp.nan, padded_history.dtype)
        padded_history = jnp.concatenate([padded_history, fill], axis=1)

    def restart(rows: Array) -> SolverOutput:
        """The second round on ``rows`` (out-of-range rows are dropped when merged)."""
        take = lambda a: a[jnp.minimum(rows, b - 1)]  # noqa: E731
        return jax.vmap(lambda x, a: solve(x, a, rest_steps))(
            take(first.x), jax.tree.map(take, args)
        )

    def merge(rows: Array, second: SolverOutput) -> SolverOutput:
        keep = pending[jnp.minimum(rows, b - 1)] & (rows < b)
        rows = jnp.where(keep, rows, b)  # dropped by the scatters below

        def put(a, new):
            return a.at[rows].set(new, mode="drop")

        history = padded_history
        if record_history:
            history = history.at[rows, first_steps + 1 :].set(
                second.loss_history[:, 1:], mode="drop"
            )
        return SolverOutput(
            x=put(first.x, second.x),
            status=put(first.status, second.status),
            iterations=put(first.iterations, first_steps + second.iterations),
            cost=put(first.cost, second.cost),
            loss_history=history,
            normal=None if first.normal is None else put(first.normal, second.normal),
        )

    def compact(_) -> SolverOutput:
        rows = jnp.nonzero(pending, size=size, fill_value=b)[0]
        return merge(rows, restart(rows))

    def every(_) -> SolverOutput:
        rows = jnp.arange(b)
        return merge(rows, restart(rows))

    def done(_) -> SolverOutput:
        return first._replace(loss_history=padded_history)

    return lax.cond(count == 0, done, lambda _: lax.cond(count <= size, compact, every, None), None)
