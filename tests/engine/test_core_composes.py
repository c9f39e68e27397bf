"""The calibration core composes: a joint fit with a shared parameter, from public pieces only.

Two SABR smiles of one currency pair share rho (the joint playbook's shape): the residuals of
both stacked over one parameter vector with the shared entry, the core's bounds map
(:mod:`engine.parameters`), any solver of the common signature, and identifiability from the
solver's own J^T J (:func:`engine.diagnostics.solution_normal`). What the joint and
piecewise calibrators (issue 13) are built from.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from engine.diagnostics import identifiability_from_normal, solution_normal
from engine.optimize import SOLVERS, Status
from engine.parameters import to_constrained, to_unconstrained
from engine.sabr import hagan_vol

FORWARD, BETA = 1.1, 0.5
EXPIRIES = (0.25, 1.0)
STRIKES = FORWARD * np.exp(np.linspace(-0.25, 0.25, 9))
TRUE = {"alpha": (0.09, 0.11), "nu": (0.9, 0.5), "rho": -0.35}
BOUNDS = [(0.0, np.inf), (0.0, np.inf), (0.0, np.inf), (0.0, np.inf), (-1.0, 1.0)]


def _physical(u):  # (alpha_1, alpha_2, nu_1, nu_2, rho): rho shared by both smiles
    return jnp.stack([to_constrained(u[i], *b) for i, b in enumerate(BOUNDS)])


def _residuals(u, vols):
    p = _physical(u)
    return jnp.concatenate(
        [
            hagan_vol(STRIKES, FORWARD, t, p[i], BETA, p[4], p[2 + i]) - vols[i]
            for i, t in enumerate(EXPIRIES)
        ]
    )


@pytest.mark.parametrize("solver", ["lm", "optimistix"])
def test_a_joint_fit_recovers_the_shared_parameter(solver):
    vols = jnp.stack(
        [
            hagan_vol(STRIKES, FORWARD, t, TRUE["alpha"][i], BETA, TRUE["rho"], TRUE["nu"][i])
            for i, t in enumerate(EXPIRIES)
        ]
    )
    start = jnp.array([0.1, 0.1, 0.6, 0.6, 0.0])
    u0 = jnp.stack([to_unconstrained(start[i], *b) for i, b in enumerate(BOUNDS)])
    out = jax.jit(lambda u: SOLVERS[solver](_residuals, u, vols, max_steps=500, tol=1e-12))(u0)
    assert int(out.status) == Status.CONVERGED
    p = np.asarray(_physical(out.x))
    np.testing.assert_allclose(p, [*TRUE["alpha"], *TRUE["nu"], TRUE["rho"]], rtol=1e-7, atol=1e-9)
    normal = solution_normal(out, _residuals, vols, _physical)
    metrics = identifiability_from_normal(normal, 2 * out.cost, jnp.abs(jnp.asarray(p)), 18)
    assert float(metrics.condition_number) < 1e3  # one rho for both smiles is well identified
