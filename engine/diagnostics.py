"""Identifiability of a least-squares fit: conditioning, standard errors, correlations.

Given the weighted residuals ``r`` and their Jacobian ``J`` with respect to the free physical
parameters at the optimum, columns are scaled to the parameters' natural units (relative for
scale parameters, absolute for bounded ones) before taking the condition number
:math:`\\kappa = s_{max}/s_{min}` of the scaled Jacobian, so the figure does not depend on units.
Standard errors are :math:`\\sqrt{\\operatorname{diag}(\\hat\\sigma^2 (J^\\top J)^{-1})}`
with :math:`\\hat\\sigma^2 = \\lVert r\\rVert^2 / (n - p)`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

__all__ = ["IdentifiabilityMetrics", "identifiability"]


class IdentifiabilityMetrics(NamedTuple):
    condition_number: Array
    std_errors: Array
    correlations: Array


def identifiability(
    jac: Array, residuals: Array, scales: Array, n_obs: Array
) -> IdentifiabilityMetrics:
    """Metrics from ``jac`` (N, P), weighted ``residuals`` (N,), column ``scales`` (P,)."""
    singular = jnp.linalg.svd(jac * scales[None, :], compute_uv=False)
    condition = jnp.where(singular[-1] > 0, singular[0] / singular[-1], jnp.inf)
    p = jac.shape[1]
    dof = jnp.maximum(n_obs - p, 1)
    sigma2 = jnp.sum(residuals**2) / dof
    covariance = sigma2 * jnp.linalg.pinv(jac.T @ jac)
    std = jnp.sqrt(jnp.maximum(jnp.diag(covariance), 0.0))
    correlations = covariance / jnp.where(
        std[:, None] * std[None, :] > 0, std[:, None] * std[None, :], 1.0
    )
    return IdentifiabilityMetrics(condition, std, correlations)
