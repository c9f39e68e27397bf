r"""Sensitivities of calibrated parameters to market inputs, by the implicit function theorem.

At an interior optimum of :math:`L(\theta, y) = \tfrac12\sum_i w_i (m_i(\theta) - y_i)^2`,
:math:`\nabla_\theta L = 0` holds for every nearby market ``y``, so
:math:`\frac{d\theta^*}{dy} = -H_{\theta\theta}^{-1} H_{\theta y}` with the full Hessian
(including the residual-curvature term, which a Gauss–Newton shortcut would drop). No
re-calibration: one Hessian and one mixed derivative.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["implicit_sensitivities"]


def implicit_sensitivities(
    model_fn: Callable[[Array], Array], theta: Array, targets: Array, weights: Array
) -> Array:
    """``d theta* / d targets`` of shape (P, N) for the weighted least-squares fit."""

    def loss(th, y):
        return 0.5 * jnp.sum(weights * (model_fn(th) - y) ** 2)

    hessian = jax.hessian(loss, argnums=0)(theta, targets)
    mixed = jax.jacfwd(jax.grad(loss, argnums=0), argnums=1)(theta, targets)
    return -jnp.linalg.solve(hessian, mixed)
