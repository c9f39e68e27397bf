"""The SABR fit's problem on a smile: model vols (Hagan's formula) and the cold start read
from the smile itself. What the calibrator's residuals, checks and identifiability share.

A smile here is the tuple ``(forward, expiry, strikes, vols, sqrt_weights)`` of padded arrays
(:class:`engine.sabr.market.SmileBatch`'s row); ``theta`` is ``(alpha, beta, rho, nu)``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from engine.sabr.hagan import StrikeTerms, hagan_vol_from_terms, strike_terms
from engine.smallmat import spd_solve

__all__ = ["initial_guess", "model_vols"]


def model_vols(theta: Array, smile, terms: StrikeTerms | None = None) -> Array:
    """Model vols of a smile; ``terms`` (precomputed for a fixed beta) skip strike-only work."""
    forward, expiry, strikes = smile[:3]
    if terms is None:
        terms = strike_terms(strikes, forward, theta[1])
    return hagan_vol_from_terms(terms, expiry, theta[0], theta[1], theta[2], theta[3])


def initial_guess(theta0: Array, smile, mask: Array) -> Array:
    r"""Fill NaN starts from the smile itself (Hagan's small-strike expansion).

    A quadratic fitted to the quotes near the money gives the ATM vol :math:`\sigma_0`, skew
    :math:`s` and curvature :math:`c = \sigma''` in :math:`k = \ln(K/F)`. Hagan's expansion
    :math:`\sigma(k) \approx \sigma_0[1 - \tfrac12(1-\beta-\rho\lambda)k
    + \tfrac1{12}((1-\beta)^2 + (2-3\rho^2)\lambda^2)k^2]`, :math:`\lambda = \nu/\sigma_0`,
    then gives :math:`\rho\lambda = 1 - \beta + 2s/\sigma_0` and
    :math:`(2-3\rho^2)\lambda^2 = 6c/\sigma_0 - (1-\beta)^2`, so
    :math:`\alpha \approx \sigma_0 F^{1-\beta}` and :math:`\rho`, :math:`\nu` start in the
    basin of the optimum even for steep, strongly skewed smiles, where a fixed start (rho 0,
    nu 0.5) stalls in a far local minimum."""
    forward, expiry, strikes, vols, _ = smile
    k = jnp.log(strikes / forward)
    distance = jnp.where(mask, jnp.abs(k), jnp.inf)
    atm_vol = vols[jnp.argmin(distance)]
    g = jnp.where(mask, jnp.exp(-0.5 * (k / (atm_vol * jnp.sqrt(expiry))) ** 2), 0.0)
    basis = jnp.stack([jnp.ones_like(k), k, k * k])  # (3, N)
    normal = (basis * g) @ basis.T
    ridge = 1e-12 * jnp.trace(normal) * jnp.eye(3)
    a, b, c = spd_solve(normal + ridge, (basis * g) @ vols)
    beta = theta0[1]
    sigma0 = jnp.where(a > 0, a, atm_vol)
    rho_lambda = 1.0 - beta + 2.0 * b / sigma0
    curvature = 12.0 * c / sigma0 - (1.0 - beta) ** 2  # (2 - 3 rho^2) lambda^2
    lam = jnp.sqrt(jnp.clip(0.5 * (curvature + 3.0 * rho_lambda**2), 0.01, 400.0))
    lam = jnp.maximum(lam, jnp.abs(rho_lambda) / 0.95)
    guess = jnp.stack([sigma0 * forward ** (1.0 - beta), beta, rho_lambda / lam, lam * sigma0])
    fallback = jnp.array([atm_vol * forward ** (1.0 - beta), beta, 0.0, 0.5])
    guess = jnp.where(jnp.all(jnp.isfinite(guess)), guess, fallback)
    return jnp.where(jnp.isnan(theta0), guess, theta0)
