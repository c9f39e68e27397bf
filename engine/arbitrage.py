r"""Static (strike) arbitrage of a smile, from exact derivatives of its total variance.

For undiscounted calls :math:`C(K)` on a forward, no call-spread or butterfly arbitrage means
:math:`-1 \le \partial_K C \le 0` and a non-negative risk-neutral density. In log-moneyness
:math:`k = \ln(K/F)` with total variance :math:`w(k) = \sigma^2(k) T` and
:math:`d_2 = -k/\sqrt w - \sqrt w / 2`:

.. math::
    \partial_K C = -N(d_2) + \varphi(d_2)\,\frac{w'}{2\sqrt w},\qquad
    p(k) = \frac{g(k)}{\sqrt{2\pi w}}\,e^{-d_2^2/2},\quad
    g(k) = \Big(1 - \frac{k w'}{2w}\Big)^2 - \frac{w'^2}{4}\Big(\frac1w + \frac14\Big)
    + \frac{w''}{2}

(Durrleman's condition; Gatheral and Jacquier 2014), with :math:`q(K) = p(k)/K`. The
derivatives of ``w`` come from forward-mode AD over the whole grid, so there is no
finite-difference noise to tolerate and no Black price to differentiate twice.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import ndtr

__all__ = ["strike_arbitrage"]


def strike_arbitrage(total_variance: Callable[[Array], Array], log_moneyness: Array):
    r"""Worst violation on a grid of ``k = ln(K/F)``, as a dimensionless figure (0 if none).

    ``total_variance(k)`` is :math:`\sigma^2(k) T` (elementwise over the grid). The figure is
    the largest of ``dC/dK`` (calls must not rise), ``-1 - dC/dK`` (nor fall faster than the
    forward) and ``-F q(K) = -p(k) e^{-k}`` (density must not be negative). Also returns the
    ``k`` where it occurs.
    """
    k = log_moneyness

    def with_slope(x):
        return jax.jvp(total_variance, (x,), (jnp.ones_like(x),))

    (w, w1), (_, w2) = jax.jvp(with_slope, (k,), (jnp.ones_like(k),))
    root_w = jnp.sqrt(w)
    d2 = -k / root_w - 0.5 * root_w
    phi = jnp.exp(-0.5 * d2 * d2) / jnp.sqrt(2.0 * jnp.pi)
    slope = -ndtr(d2) + phi * w1 / (2.0 * root_w)
    g = (1.0 - k * w1 / (2.0 * w)) ** 2 - 0.25 * w1 * w1 * (1.0 / w + 0.25) + 0.5 * w2
    density_times_forward = g * phi / root_w * jnp.exp(-k)
    violation = jnp.maximum(jnp.maximum(slope, -1.0 - slope), -density_times_forward)
    violation = jnp.where(jnp.isfinite(violation), violation, jnp.inf)
    worst = jnp.argmax(violation)
    return jnp.maximum(violation[worst], 0.0), k[worst]
