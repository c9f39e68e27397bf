r"""Static (strike) arbitrage of a smile, from exact derivatives of Black call prices.

For undiscounted calls :math:`C(K)` on a forward, no butterfly or call-spread arbitrage means
:math:`-1 \le \partial_K C \le 0` and a non-negative risk-neutral density
:math:`q(K) = \partial_K^2 C \ge 0` (Breeden–Litzenberger). Both derivatives come from AD
through the smile, so there is no finite-difference noise to tolerate.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array

from engine.blackscholes import black_price

__all__ = ["strike_arbitrage"]


def strike_arbitrage(vol_fn: Callable[[Array], Array], forward: Array, expiry: Array, strikes):
    """Worst violation on a strike grid, as a dimensionless figure (0 when arbitrage-free).

    The figure is the largest of ``dC/dK`` (calls must not rise), ``-1 - dC/dK`` (nor fall
    faster than the forward) and ``-F q(K)`` (density must not be negative). Also returns the
    strike where it occurs.
    """

    def price(k):
        return black_price(forward, k, expiry, vol_fn(k))

    slope = jax.vmap(jax.grad(price))(strikes)
    density = jax.vmap(jax.grad(jax.grad(price)))(strikes)
    violation = jnp.maximum(jnp.maximum(slope, -1.0 - slope), -forward * density)
    violation = jnp.where(jnp.isfinite(violation), violation, jnp.inf)
    worst = jnp.argmax(violation)
    return jnp.maximum(violation[worst], 0.0), strikes[worst]
