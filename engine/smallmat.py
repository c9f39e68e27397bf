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


def _rotate(m: Array, v: Array, p: int, q: int) -> tuple[Array, Array]:
    """One Jacobi rotation zeroing ``m[p, q]``."""
    apq = m[p, q]
    nonzero = apq != 0
    theta = (m[q, q] - m[p, p]) / (2.0 * jnp.where(nonzero, apq, 1.0))
    t = jnp.sign(theta) / (jnp.abs(theta) + jnp.sqrt(theta * theta + 1.0))
    t = jnp.where(nonzero, jnp.where(theta == 0, 1.0, t), 0.0)
    c = 1.0 / jnp.sqrt(t * t + 1.0)
    s = t * c
    col_p, col_q = m[:, p], m[:, q]
    m = m.at[:, p].set(c * col_p - s * col_q).at[:, q].set(s * col_p + c * col_q)
    row_p, row_q = m[p, :], m[q, :]
    m = m.at[p, :].set(c * row_p - s * row_q).at[q, :].set(s * row_p + c * row_q)
    vp, vq = v[:, p], v[:, q]
    v = v.at[:, p].set(c * vp - s * vq).at[:, q].set(s * vp + c * vq)
    return m, v


def sym_eigh(a: Array) -> tuple[Array, Array]:
    """Eigenvalues (ascending) and eigenvectors (columns) of a symmetric ``a``, cyclic Jacobi.

    A sweep (every off-diagonal pair once) is unrolled; sweeps run in a ``fori_loop`` so the
    compiled program stays small for P up to ~6.
    """
    n = a.shape[-1]

    def sweep(_, state):
        m, v = state
        for p in range(n - 1):
            for q in range(p + 1, n):
                m, v = _rotate(m, v, p, q)
        return m, v

    m, v = lax.fori_loop(0, _JACOBI_SWEEPS, sweep, (a, jnp.eye(n, dtype=a.dtype)))
    values = jnp.diagonal(m)
    order = jnp.argsort(values)
    return values[order], v[:, order]
