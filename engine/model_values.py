"""A fitted model's value at each new quote, fast: what the stream's tolerance trigger compares.

A smile or surface is recalibrated only when a quote leaves its fit (see
:mod:`streams.book.surfaces`), so every tick is checked against the current parameters. A
batch of checks runs on host arrays of any length as one compiled program (lengths padded to
:func:`engine.buckets.bucket` sizes of 64 to ``CHUNK``, longer arrays cut into chunks), never
one eager dispatch per jnp operation: :func:`quote_checks` gives every quote its model vol and
the price and vega at it in one call, whichever model it is of (a live stream checks a few
hundred ticks a batch, and each program call costs ~0.15 ms however short its arrays).

SABR is checked in closed form (Hagan's vol at the quote's own forward and time). A Heston
surface is priced once per fit on a grid of standardised log-moneyness ``x = ln(K/F)/s`` per
expiry, ``s`` the model's own total standard deviation to that expiry (:func:`heston_vol_grid`), and each quote reads its vol off the grid by linear
interpolation (:func:`grid_vols`): Heston's implied vol depends on strike and forward only
through ``ln(K/F)`` at a given expiry, so a spot move alone moves the quote along the grid and
needs no new pricing (the grid's interpolation error is a fraction of a vol bp within three
standard deviations; the benchmark measures how often it decides as a full repricing would).
Beyond the grid, or where a wing's price is too small to invert, the nearest vol is taken.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from engine.blackscholes import (
    black_price,
    black_vega,
    discount_factor,
    forward_price,
    implied_vol,
)
from engine.buckets import bucket, chunks, on_host
from engine.heston.pricer import heston_price, total_variance
from engine.programs import kept
from engine.sabr.hagan import hagan_vol

__all__ = [
    "CHUNK",
    "GRID_X",
    "VolGrid",
    "grid_vols",
    "heston_vol_grid",
    "quote_checks",
    "warmup",
]

CHUNK = 8192  # the longest array one compiled check takes (longer ones are cut)
ONE_PROGRAM = 1024  # quote_checks of up to this many quotes: one program, prices and all
GRID_X = np.linspace(-5.0, 4.0, 91)  # ln(K/F) in the model's standard deviations to expiry


def _chunked(fn, *args) -> np.ndarray:
    arrays = np.broadcast_arrays(*(np.asarray(a) for a in args))
    n = arrays[0].size
    if n <= CHUNK:
        return on_host(fn, *arrays)
    return np.concatenate([on_host(fn, *(a[s] for a in arrays)) for s in chunks(n, CHUNK)])


def _model_vols(strike, forward, expiry, alpha, beta, rho, nu, grid_vol):
    sabr = hagan_vol(strike, forward, expiry, alpha, beta, rho, nu)
    return jnp.where(jnp.isfinite(alpha), sabr, grid_vol)


def _cash(spot, rate, dividend, expiry, strike, vol, call):
    forward = forward_price(spot, rate, dividend, expiry)
    discount = discount_factor(rate, expiry)
    price = discount * black_price(forward, strike, expiry, vol, call)
    return jnp.stack([price, discount * black_vega(forward, strike, expiry, vol)], axis=-1)


def _checks(strike, forward, expiry, alpha, beta, rho, nu, grid_vol, spot, rate, dividend, call):
    vol = _model_vols(strike, forward, expiry, alpha, beta, rho, nu, grid_vol)
    cash = _cash(spot, rate, dividend, expiry, strike, vol, call)
    return jnp.concatenate([vol[..., None], cash], axis=-1)


def quote_checks(
    strike, forward, expiry, alpha, beta, rho, nu, grid_vol, spot, rate, dividend, call,
    priced=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """What each quote is compared with (host arrays, broadcast to one length): its model vol,
    Hagan's SABR vol at its own ``forward`` where ``alpha`` is finite, else ``grid_vol`` (a
    Heston surface's, read off its :class:`VolGrid`; NaN: no model); and, for the ``priced``
    quotes (a mask; None: all), the discounted Black price and vega at that vol against their
    ``spot``, ``rate`` and ``dividend`` (NaN elsewhere): a price quote's gap to the model, over
    its vega, is the gap in vol without inverting the quote. Up to :data:`ONE_PROGRAM` quotes
    are one compiled program whatever is priced (its call costs more than its work); past
    that, the vols and the priced quotes' prices are two."""
    args = np.broadcast_arrays(strike, forward, expiry, alpha, beta, rho, nu, grid_vol, spot,
                               rate, dividend, np.asarray(call, bool))  # fmt: skip
    n = args[0].size
    if n <= ONE_PROGRAM:
        out = _chunked(_checks, *args)
        price, vega = out[:, 1], out[:, 2]
        if priced is not None:
            price, vega = (np.where(priced, a, np.nan) for a in (price, vega))
        return out[:, 0], price, vega
    vol = _chunked(_model_vols, *args[:8])
    price, vega = np.full(n, np.nan), np.full(n, np.nan)
    priced = np.ones(n, bool) if priced is None else priced
    if priced.any():
        spot, rate, dividend, call = (a[priced] for a in args[8:])
        cash = _chunked(_cash, spot, rate, dividend, args[2][priced], args[0][priced],
                        vol[priced], call)  # fmt: skip
        price[priced], vega[priced] = cash[:, 0], cash[:, 1]
    return vol, price, vega


@kept
def _grid(spot, expiry, rate, dividend, v0, kappa, theta, sigma, rho):
    t, r, q = expiry[:, None], rate[:, None], dividend[:, None]
    scale = jnp.sqrt(total_variance(expiry, v0, kappa, theta))
    forward = forward_price(spot, r, q, t)
    x = jnp.asarray(GRID_X)[None, :]
    strike = forward * jnp.exp(x * scale[:, None])
    call = x >= 0  # out of the money: the accurate side of both pricer and inversion
    price = heston_price(spot, strike, t, r, q, v0, kappa, theta, sigma, rho, call)
    return implied_vol(price * jnp.exp(r * t), forward, strike, t, call), scale


class VolGrid(NamedTuple):
    """A fit's vols per expiry (rows) on :data:`GRID_X` standard deviations ``scale``."""

    vols: np.ndarray  # (expiries, GRID_X.size)
    scale: np.ndarray  # (expiries,): the model's total standard deviation to each expiry


def heston_vol_grid(spot, expiry, rate, dividend, v0, kappa, theta, sigma, rho) -> VolGrid:
    """Heston implied vols on :data:`GRID_X` for each expiry. Expiries are padded to a
    multiple of four: few compiled shapes."""
    expiry, rate, dividend = (
        np.atleast_1d(np.asarray(a, np.float64)) for a in (expiry, rate, dividend)
    )
    n = expiry.size
    size = bucket(n, 4)
    pad = lambda a: np.r_[a, np.full(size - n, a[0])]  # noqa: E731
    vols, scale = _grid(spot, pad(expiry), pad(rate), pad(dividend), v0, kappa, theta, sigma, rho)
    vols = np.array(vols[:n])
    for row in vols:  # a wing too far to invert takes the nearest vol
        valid = np.flatnonzero(np.isfinite(row))
        if valid.size:
            row[: valid[0]], row[valid[-1] + 1 :] = row[valid[0]], row[valid[-1]]
    return VolGrid(vols, np.asarray(scale)[:n])


def grid_vols(grid: VolGrid, rows: np.ndarray, log_moneyness: np.ndarray) -> np.ndarray:
    """Vols read off ``grid`` at ``ln(K/F)`` for quote ``i`` on expiry row ``rows[i]``,
    linearly; flat beyond the grid's ends."""
    x = np.asarray(log_moneyness) / grid.scale[rows]
    step = GRID_X[1] - GRID_X[0]
    at = np.clip((x - GRID_X[0]) / step, 0.0, GRID_X.size - 1.0)
    lo = np.minimum(at.astype(np.int64), GRID_X.size - 2)
    w = at - lo
    return (1.0 - w) * grid.vols[rows, lo] + w * grid.vols[rows, lo + 1]


def warmup(expiry_counts=(4,)) -> None:
    """Compile every check's programs (each padded length they are run at: 64 to
    :data:`ONE_PROGRAM` rows for one program, to :data:`CHUNK` for two; a grid of each
    surface size in ``expiry_counts``) before a stream needs them: a worker's
    first large batch would otherwise compile in the middle of the stream."""
    size = 64
    while size <= CHUNK:
        x = np.ones(size)
        args = (x, x, x, 0.1 * x, 0.5 * x, 0 * x, 0.5 * x, 0.2 * x, x, 0 * x, 0 * x, x > 0)
        if size <= ONE_PROGRAM:
            _chunked(_checks, *args)
        _chunked(_model_vols, *args[:8])
        _chunked(_cash, *args[8:11], x, x, 0.2 * x, x > 0)
        size *= 2
    for m in expiry_counts:
        heston_vol_grid(100.0, 0.25 * np.arange(1, m + 1), np.zeros(m), np.zeros(m),
                        0.04, 1.5, 0.04, 0.5, -0.7)  # fmt: skip
