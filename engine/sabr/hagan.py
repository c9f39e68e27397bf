r"""Hagan et al. (2002) lognormal implied volatility of the SABR model.

.. math::
    \sigma_B(K) = \frac{\alpha}{(FK)^{(1-\beta)/2}\,[1 + \tfrac{(1-\beta)^2}{24}\ell^2
    + \tfrac{(1-\beta)^4}{1920}\ell^4]}\;\frac{z}{x(z)}\;
    \Big[1 + T\Big(\frac{(1-\beta)^2\alpha^2}{24 (FK)^{1-\beta}}
    + \frac{\rho\beta\nu\alpha}{4 (FK)^{(1-\beta)/2}} + \frac{2-3\rho^2}{24}\nu^2\Big)\Big]

with :math:`\ell = \ln(F/K)`, :math:`z = \frac{\nu}{\alpha}(FK)^{(1-\beta)/2}\ell` and
:math:`x(z) = \ln\frac{\sqrt{1-2\rho z+z^2}+z-\rho}{1-\rho}`.

This is QuantLib's ``unsafeSabrLogNormalVolatility`` term for term, except for ``x(z)``:
QuantLib takes the log of a ratio that tends to one at the money (losing ``eps/|z|`` relative
accuracy near ``K = F``) and cancels as ``rho -> 1``. Here ``x(z)`` is written as ``log1p`` of
a rationalised increment, in one of two algebraically identical forms chosen by the sign of
``z - rho`` so neither cancels, and ``z/x(z)`` uses the series of ``log1p(u)/u`` for tiny ``u``.
The result is smooth and differentiable through ``K = F``, ``nu = 0`` and ``|rho| -> 1``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import Array

__all__ = ["StrikeTerms", "hagan_vol", "hagan_vol_from_terms", "moneyness_terms", "strike_terms"]

_SERIES_BELOW = 1e-4  # |u| under which log1p(u)/u is replaced by its 5-term series


def _log1p_ratio(u):
    """``log1p(u) / u``, exact at and differentiable through ``u = 0``."""
    small = jnp.abs(u) < _SERIES_BELOW
    safe_u = jnp.where(small, 1.0, u)
    series = 1.0 - u / 2.0 + u * u / 3.0 - u**3 / 4.0 + u**4 / 5.0
    return jnp.where(small, series, jnp.log1p(safe_u) / safe_u)


def _z_over_x(z, rho):
    r"""``z / x(z)`` without cancellation near ``z = 0``, for large ``|z|`` or ``|rho| -> 1``.

    With :math:`s = \sqrt{1-2\rho z + z^2}`, write :math:`x(z) = \log(1 + z g)`. For
    :math:`z > \rho`, :math:`n = s + z - \rho` adds like-signed terms and
    :math:`g = \frac{n + 1 - \rho}{(s+1)(1-\rho)}`; otherwise :math:`m = s - z + \rho` does and
    :math:`g = \frac{m + 1 + \rho}{(s+1)\,m}`. Then :math:`z/x = 1 / (g \cdot \log1p(zg)/(zg))`,
    with one division for ``g`` (the two forms share it through ``where``).
    """
    s = jnp.sqrt(1.0 - 2.0 * rho * z + z * z)
    above = z > rho
    n = s + z - rho
    m = s - z + rho
    numerator = jnp.where(above, n + 1.0 - rho, m + 1.0 + rho)
    denominator = (s + 1.0) * jnp.where(above, 1.0 - rho, m)
    g = numerator / denominator
    return denominator / (numerator * _log1p_ratio(z * g))


class StrikeTerms(NamedTuple):
    """The parts of Hagan's formula that depend only on strike, forward and beta.

    A calibration with beta fixed computes them once per smile instead of once per solver
    step; only ``z``, ``x(z)`` and the time term then depend on the fitted parameters.
    """

    log_m: Array  # ln(F/K)
    sqrt_a: Array  # (F K)^((1 - beta)/2)
    inv_sqrt_a: Array  # 1 / sqrt_a
    inv_denominator: Array  # 1 / (sqrt_a * (1 + (1-beta)^2 l^2/24 + (1-beta)^4 l^4/1920))


def strike_terms(strike, forward, beta) -> StrikeTerms:
    """:class:`StrikeTerms` for broadcastable ``strike``, ``forward``, ``beta``."""
    strike, forward = jnp.asarray(strike, jnp.float64), jnp.asarray(forward, jnp.float64)
    return moneyness_terms(jnp.log(strike / forward), forward, beta)


def moneyness_terms(log_moneyness, forward, beta) -> StrikeTerms:
    """:class:`StrikeTerms` at ``k = ln(K/F)``: :math:`(FK)^{(1-\beta)/2} = F^{1-\beta}e^{(1-\beta)k/2}`."""
    k, forward, beta = (jnp.asarray(x, dtype=jnp.float64) for x in (log_moneyness, forward, beta))
    one_minus_beta = 1.0 - beta
    log_sqrt_a = one_minus_beta * (jnp.log(forward) + 0.5 * k)
    sqrt_a, inv_sqrt_a = jnp.exp(log_sqrt_a), jnp.exp(-log_sqrt_a)
    c = one_minus_beta**2 * k**2
    return StrikeTerms(-k, sqrt_a, inv_sqrt_a, inv_sqrt_a / (1.0 + c / 24.0 + c * c / 1920.0))


def hagan_vol_from_terms(terms: StrikeTerms, expiry, alpha, beta, rho, nu):
    """Hagan's vol from precomputed :class:`StrikeTerms` (same ``beta``); see :func:`hagan_vol`."""
    z = (nu / alpha) * terms.sqrt_a * terms.log_m
    time_term = 1.0 + expiry * (
        (1.0 - beta) ** 2 * alpha**2 / 24.0 * terms.inv_sqrt_a**2
        + 0.25 * rho * beta * nu * alpha * terms.inv_sqrt_a
        + (2.0 - 3.0 * rho**2) * nu**2 / 24.0
    )
    return alpha * terms.inv_denominator * _z_over_x(z, rho) * time_term


def hagan_vol(strike, forward, expiry, alpha, beta, rho, nu):
    """Black implied volatility of SABR(alpha, beta, rho, nu) at ``strike`` (Hagan 2002).

    Equals QuantLib's ``sabrVolatility(strike, forward, expiry, alpha, beta, nu, rho)``
    (note its ``nu`` before ``rho``) to rounding wherever QuantLib's own ``x(z)`` is
    well-conditioned, and stays accurate where it is not (see the module docstring).
    Inputs broadcast against each other; jittable and differentiable in every argument.
    No validation here (this runs inside solvers): callers check ``alpha > 0``,
    ``0 <= beta <= 1``, ``|rho| < 1``, ``nu >= 0`` and positive strikes and forwards.

    >>> round(float(hagan_vol(1.1, 1.0, 1.0, 0.1, 0.5, -0.3, 0.4)), 10)
    0.0952748918
    """
    return hagan_vol_from_terms(strike_terms(strike, forward, beta), expiry, alpha, beta, rho, nu)
