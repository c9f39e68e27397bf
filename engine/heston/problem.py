"""The Heston fit's problem on a packed surface: model prices on a quadrature rule, and the
errors the solver minimises. What the plain, joint and time-dependent calibrators share."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from engine.blackscholes import forward_price, implied_vol
from engine.heston.pricer import heston_price_on, lewis_kernel, quadrature
from engine.heston.surface import HestonSurface

__all__ = ["fit_errors", "model_prices", "quadrature_rule"]


def model_prices(p: Array, s: HestonSurface, u: Array, kernel: Array) -> Array:
    return heston_price_on(
        u, kernel, s.spot, s.strikes, s.expiries, s.rates, s.dividends, *p, s.calls > 0
    )


def fit_errors(model: Array, s: HestonSurface, vol_fit: bool) -> Array:
    """Implied-vol errors for a vol fit (relative price errors where the model price has no
    implied vol), relative or vega-scaled price errors otherwise; zero on padding."""
    price_error = (model - s.prices) / s.scale
    if not vol_fit:  # static: price fits never pay for the inversion
        return jnp.where(s.weights > 0, price_error, 0.0)
    forward = forward_price(s.spot, s.rates, s.dividends, s.expiries)
    vol = implied_vol(
        model * jnp.exp(s.rates * s.expiries), forward, s.strikes, s.expiries, s.calls > 0
    )
    error = jnp.where(jnp.isfinite(s.vols) & jnp.isfinite(vol), vol - s.vols, price_error)
    return jnp.where(s.weights > 0, error, 0.0)


def quadrature_rule(s: HestonSurface, p: Array, nodes: int) -> tuple[Array, Array]:
    """Quadrature nodes fitted to parameters ``p`` and the surface's strike kernel on them."""
    u, weights = quadrature(s.expiries, *p, nodes=nodes)
    forward = forward_price(s.spot, s.rates, s.dividends, s.expiries)
    return u, lewis_kernel(s.strikes, forward, u, weights)
