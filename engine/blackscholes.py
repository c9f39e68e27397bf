"""Black (1976) prices on the forward and their inversion: the one home of the lognormal formula.

Prices are undiscounted (forward measure); multiply by the discount factor for cash prices.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import ndtr

from engine.buckets import array_module, on_host

__all__ = [
    "black_d1",
    "black_price",
    "black_vega",
    "discount_factor",
    "forward_price",
    "implied_vol",
    "implied_vols_of_prices",
]

_MAX_STD = 10.0  # total standard deviation sigma * sqrt(T) searched: vols up to 1000%/sqrt(yr)


def forward_price(spot, rate, dividend, expiry):
    """The forward :math:`F = S e^{(r - q) T}` of continuously compounded rate and dividend
    yield: its one home. Broadcasts; NumPy in, NumPy out (no device dispatch on a host
    path), JAX arrays and tracers in, JAX out."""
    xp = array_module(spot, rate, dividend, expiry)
    return spot * xp.exp((xp.asarray(rate) - dividend) * expiry)


def discount_factor(rate, expiry):
    """The discount factor :math:`e^{-r T}` of a continuously compounded rate: its one home.
    NumPy in, NumPy out; JAX in, JAX out (as :func:`forward_price`)."""
    xp = array_module(rate, expiry)
    return xp.exp(-xp.asarray(rate) * expiry)


def black_d1(forward, strike, std):
    r""":math:`d_1 = \ln(F/K) / s + s / 2` of total standard deviation :math:`s = \sigma
    \sqrt{T}`: its one home (:math:`d_2 = d_1 - s`). NumPy in, NumPy out; JAX in, JAX out."""
    return _d1_of_log(array_module(forward, strike, std).log(forward / strike), std)


def _d1_of_log(log_moneyness, std):
    """:func:`black_d1` of ``ln(F/K)`` already taken."""
    return log_moneyness / std + 0.5 * std


def black_vega(forward, strike, expiry, vol):
    r"""Undiscounted Black vega :math:`\partial C / \partial \sigma = F \sqrt{T}\,\varphi(d_1)`,
    the same for calls and puts. Broadcasts; jittable."""
    forward, strike, expiry, vol = (
        jnp.asarray(x, dtype=jnp.float64) for x in (forward, strike, expiry, vol)
    )
    d1 = black_d1(forward, strike, vol * jnp.sqrt(expiry))
    return forward * jnp.sqrt(expiry) * jnp.exp(-0.5 * d1 * d1) / jnp.sqrt(2.0 * jnp.pi)


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
    d1 = black_d1(forward, strike, std)
    d2 = d1 - std
    price = forward * ndtr(d1) - strike * ndtr(d2)
    return jnp.where(call, price, price - (forward - strike))


def _otm(k, std):
    """Out-of-the-money Black price over the forward, and its derivative in ``std``.

    ``k = ln(K/F)``: a call when ``k >= 0``, a put otherwise (both as a fraction of F)."""
    sign = jnp.where(k >= 0, 1.0, -1.0)
    d1 = _d1_of_log(-k, std)
    d2 = d1 - std
    price = sign * (ndtr(sign * d1) - jnp.exp(k) * ndtr(sign * d2))
    vega = jnp.exp(-0.5 * d1 * d1) / jnp.sqrt(2.0 * jnp.pi)
    return price, vega


def implied_vol(price, forward, strike, expiry, call=True, *, iterations: int = 40):
    """Black implied vol of an undiscounted option price; NaN where no vol gives that price.

    Works on the out-of-the-money side (parity converts the rest), solving
    ``ln(otm(std)) = ln(target)`` by Newton's method on ``std = vol * sqrt(T)``, kept inside a
    bracket that bisection shrinks: exact to rounding wherever the price has vega, robust in the
    wings where plain Newton on the price overshoots. Broadcasts; jittable; differentiable by
    the implicit function theorem (``d vol = (d price - d Black|vol) / vega``), never through
    the iterations, so fits can use implied-vol residuals directly.
    """
    price, forward, strike, expiry = jnp.broadcast_arrays(
        *(jnp.asarray(x, dtype=jnp.float64) for x in (price, forward, strike, expiry))
    )
    sign = jnp.broadcast_to(jnp.where(call, 1.0, -1.0), price.shape)
    return _implied_vol(iterations, price, forward, strike, expiry, sign)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _implied_vol(iterations, price, forward, strike, expiry, sign):
    call = sign > 0
    k = jnp.log(strike / forward)
    intrinsic = forward - strike
    otm_price = jnp.where(call, price, price + intrinsic)  # the call ...
    otm_price = jnp.where(k >= 0, otm_price, otm_price - intrinsic)  # ... or the put
    target = otm_price / forward
    upper = jnp.where(k >= 0, 1.0, jnp.exp(k))  # an OTM call is below F, a put below K
    valid = (target > 0) & (target < upper) & (expiry > 0)
    log_target = jnp.log(jnp.where(valid, target, 0.5 * upper))

    def step(_, state):
        std, lo, hi = state
        value, vega = _otm(k, std)
        gap = jnp.log(value) - log_target
        lo = jnp.where(gap < 0, std, lo)
        hi = jnp.where(gap > 0, std, hi)
        newton = std - gap * value / vega
        inside = (newton >= lo) & (newton <= hi) & jnp.isfinite(newton)
        return jnp.where(inside, newton, 0.5 * (lo + hi)), lo, hi

    start = jnp.clip(jnp.sqrt(2.0 * jnp.abs(k)), 0.05, 1.0)  # where vega peaks, at most 1
    zero = jnp.zeros_like(start)
    std, _, _ = lax.fori_loop(0, iterations, step, (start, zero, zero + _MAX_STD))
    return jnp.where(valid, std / jnp.sqrt(jnp.where(expiry > 0, expiry, 1.0)), jnp.nan)


@_implied_vol.defjvp
def _implied_vol_jvp(iterations, primals, tangents):
    price, forward, strike, expiry, sign = primals
    d_price, d_forward, d_strike, d_expiry, _ = tangents
    vol = _implied_vol(iterations, price, forward, strike, expiry, sign)
    safe = jnp.where(jnp.isfinite(vol), vol, 0.2)
    black = lambda f, k, t: black_price(f, k, t, safe, sign > 0)  # noqa: E731
    _, d_black = jax.jvp(black, (forward, strike, expiry), (d_forward, d_strike, d_expiry))
    return vol, (d_price - d_black) / black_vega(forward, strike, expiry, safe)


def _implied_vols_of_cash(price, spot, rate, dividend, expiry, strike, call):
    """:func:`implied_vol` of discounted prices, each against its own spot, rate and dividend
    (the forward inside one program, so no eager op compiles per array length)."""
    forward = forward_price(spot, rate, dividend, expiry)
    return implied_vol(price * jnp.exp(rate * expiry), forward, strike, expiry, call)


def implied_vols_of_prices(price, spot, rate, dividend, expiry, strike, call) -> np.ndarray:
    """Black implied vols of discounted (cash) option prices, each against its own spot, rate
    and dividend yield: NaN where no vol gives the price. Host arrays in and out, padded to
    a few bucketed lengths (:func:`engine.buckets.on_host`), so a stream of varying counts
    compiles a handful of programs once."""
    numbers = (np.atleast_1d(np.asarray(x, np.float64)) for x in (price, spot, rate, dividend))
    rest = (np.asarray(x, np.float64) for x in (expiry, strike))
    return on_host(_implied_vols_of_cash, *numbers, *rest, np.asarray(call, bool))
