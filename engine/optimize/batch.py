"""Many small least-squares problems in one program, without the slowest holding back the rest.

A ``vmap``-ed solve runs in lockstep: every lane computes until the slowest lane stops, so a
batch whose problems mostly take 3 steps and a few take 12 costs 12 steps per problem (cold
SABR smiles: mean 3.6 steps, max 12). :func:`solve_batch` runs every problem for
``first_steps``, then restarts the unfinished ones from where each stopped, for the steps
left, gathered in chunks of ``len(batch) // tail`` lanes (a multiple of 8, at least 8), one
chunk after another. Every unfinished problem runs its second round in a chunk of that one
width, its trajectory depending on its own data only, so results never depend on how many
others shared its batch or its chunk; and the solver's loop is compiled twice, not once per
width.
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
        """The second round on ``rows`` (rows past the end are dropped when merged)."""
        take = lambda a: a[jnp.minimum(rows, b - 1)]  # noqa: E731
        return jax.vmap(lambda x, a: solve(x, a, rest_steps))(
            take(first.x), jax.tree.map(take, args)
        )

    def merge(merged: SolverOutput, rows: Array, second: SolverOutput) -> SolverOutput:
        def put(a, new):
            return a.at[rows].set(new, mode="drop")  # rows == b (padding) are dropped

        history = merged.loss_history
        if record_history:
            history = history.at[rows, first_steps + 1 :].set(
                second.loss_history[:, 1:], mode="drop"
            )
        return SolverOutput(
            x=put(merged.x, second.x),
            status=put(merged.status, second.status),
            iterations=put(merged.iterations, first_steps + second.iterations),
            cost=put(merged.cost, second.cost),
            loss_history=history,
            normal=None if merged.normal is None else put(merged.normal, second.normal),
        )

    # the unfinished rows, in order, then padding: chunk k holds order[k*size : (k+1)*size]
    order = jnp.nonzero(pending, size=b + size, fill_value=b)[0]

    def chunk(k, merged: SolverOutput) -> SolverOutput:
        rows = lax.dynamic_slice(order, (k * size,), (size,))
        return merge(merged, rows, restart(rows))

    chunks = (count + size - 1) // size  # none when every row finished in the first round
    return lax.fori_loop(0, chunks, chunk, first._replace(loss_history=padded_history))
