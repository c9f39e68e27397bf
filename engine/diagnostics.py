"""Identifiability of a least-squares fit: conditioning, standard errors, correlations.

Given the weighted residuals ``r`` and their Jacobian ``J`` with respect to the free physical
parameters at the optimum, columns are scaled to the parameters' natural units (relative for
scale parameters, absolute for bounded ones) before taking the condition number
:math:`\\kappa = s_{max}/s_{min}` of the scaled Jacobian, so the figure does not depend on units.
Standard errors are :math:`\\sqrt{\\operatorname{diag}(\\hat\\sigma^2 (J^\\top J)^{-1})}`
with :math:`\\hat\\sigma^2 = \\lVert r\\rVert^2 / (n - p)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from engine.optimize import SolverOutput
from engine.smallmat import sym_eigh

__all__ = [
    "IdentifiabilityMetrics",
    "compute_identifiability_metrics",
    "identifiability_at",
    "identifiability_from_normal",
    "solution_normal",
]


class IdentifiabilityMetrics(NamedTuple):
    condition_number: Array
    std_errors: Array
    correlations: Array


def compute_identifiability_metrics(calibrator, params, market_data) -> IdentifiabilityMetrics:
    """The playbook's call: identifiability of ``calibrator``'s free parameters at ``params``
    (a result's ``params``, or any name -> value mapping) on ``market_data``. Each calibrator
    measures it on its own residuals (``calibrator.identifiability``)."""
    return calibrator.identifiability(params, market_data)


def identifiability_at(
    weighted: Callable[[Array], Array], q: Array, scales: Array, n_obs: Array
) -> IdentifiabilityMetrics:
    """Metrics of the weighted residuals ``weighted`` (N,) at physical parameters ``q`` (P,)
    with column ``scales`` (P,): the Jacobian and the residuals from one forward pass."""
    jac, residuals = jax.jacfwd(lambda x: (weighted(x),) * 2, has_aux=True)(q)
    return identifiability_from_normal(jac.T @ jac, jnp.sum(residuals**2), scales, n_obs)


def identifiability_from_normal(
    normal: Array, sum_squares: Array, scales: Array, n_obs: Array
) -> IdentifiabilityMetrics:
    r"""The same metrics from :math:`J^\top J` (P, P) and :math:`\lVert r\rVert^2`: what a
    Gauss-Newton solver already holds at its solution."""
    scaled_normal = normal * scales[:, None] * scales[None, :]
    eigenvalues, vectors = sym_eigh(scaled_normal)  # singular values squared
    lo, hi = eigenvalues[0], eigenvalues[-1]
    condition = jnp.where(lo > 0, jnp.sqrt(hi / jnp.where(lo > 0, lo, 1.0)), jnp.inf)
    p = normal.shape[-1]
    dof = jnp.maximum(n_obs - p, 1)
    sigma2 = sum_squares / dof
    inverse = jnp.where(eigenvalues > 1e-14 * hi, 1.0 / eigenvalues, 0.0)  # pseudo-inverse
    scaled_cov = (vectors * inverse[None, :]) @ vectors.T
    covariance = sigma2 * scaled_cov * scales[:, None] * scales[None, :]
    std = jnp.sqrt(jnp.maximum(jnp.diag(covariance), 0.0))
    correlations = covariance / jnp.where(
        std[:, None] * std[None, :] > 0, std[:, None] * std[None, :], 1.0
    )
    return IdentifiabilityMetrics(condition, std, correlations)


def solution_normal(
    out: SolverOutput,
    residual_fn: Callable[[Array, object], Array],
    args: object,
    to_physical: Callable[[Array], Array],
) -> Array:
    r""":math:`J^\top J` of the residuals in the free physical parameters at a solver's solution.

    Solvers work in unconstrained ``u``, mapped elementwise to the physical parameters by
    ``to_physical``, so :math:`J_p = J_u / (dp/du)` column by column. A Gauss-Newton solver
    hands over its own :math:`J_u^\top J_u` (``out.normal``); any other costs one Jacobian."""
    normal = out.normal
    if normal is None:
        jac = jax.jacfwd(residual_fn)(out.x, args)
        normal = jac.T @ jac
    slope = jnp.diag(jax.jacfwd(to_physical)(out.x))
    return normal / slope[:, None] / slope[None, :]
