"""Unrolled small-matrix routines against NumPy's LAPACK."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from engine.smallmat import spd_solve, sym_eigh


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_spd_solve_and_eigh_match_lapack(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n + 3, n)) * np.logspace(0, 3, n)  # condition ~1e6
    a = x.T @ x
    b = rng.standard_normal(n)
    np.testing.assert_allclose(
        jax.jit(spd_solve)(jnp.asarray(a), jnp.asarray(b)), np.linalg.solve(a, b), rtol=1e-8
    )
    values, vectors = jax.jit(sym_eigh)(jnp.asarray(a))
    np.testing.assert_allclose(
        values, np.linalg.eigvalsh(a), rtol=1e-10, atol=1e-12 * np.abs(a).max()
    )
    np.testing.assert_allclose(
        np.asarray(vectors) @ np.diag(values) @ np.asarray(vectors).T,
        a,
        atol=1e-10 * np.abs(a).max(),
    )


def test_vmapped_over_a_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6, 3))
    a = np.einsum("bij,bik->bjk", x, x)
    values, _ = jax.vmap(sym_eigh)(jnp.asarray(a))
    np.testing.assert_allclose(values, np.linalg.eigvalsh(a), rtol=1e-10)
