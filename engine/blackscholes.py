"""Black (1976) prices on the forward: the one home of the lognormal option formula.

Prices are undiscounted (forward measure); multiply by the discount factor for cash prices.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import ndtr

__all__ = ["black_price"]


def black_price(forward, strike, expiry, vol, call=True):
    r"""Undiscounted Black price of a European option.

    .. math:: C = F N(d_1) - K N(d_2),\quad d_{1,2} = \frac{\ln(F/K)}{\sigma\sqrt{T}} \pm
       \tfrac12 \sigma\sqrt{T}

    Puts follow from parity, :math:`P = C - (F - K)`. Broadcasts; jittable; differentiable.

    >>> float(black_price(1.0, 1.0, 1.0, 0.2))  # doctest: +ELLIPSIS
    0.0796...
    """
    forward, strike, expiry, vol = (
        jnp.asarray(x, dtype=jnp.float64) for x in (forward, strike, expiry, vol)
    )
    std = vol * jnp.sqrt(expiry)
    d1 = jnp.log(forward / strike) / std + 0.5 * std
    d2 = d1 - std
    price = forward * ndtr(d1) - strike * ndtr(d2)
    return jnp.where(call, price, price - (forward - strike))
