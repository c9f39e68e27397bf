"""Market data of one Heston surface as packed arrays, by expiry.

A surface is packed by expiry: strikes ``(M, K)`` against expiries ``(M, 1)``, so each pricing
evaluates the characteristic function once per expiry (see :mod:`engine.heston.pricer`).

Targets. A price in ``target_prices`` is read as a **call unless ``call`` says otherwise** (the
documented convention; never a guess from the strike), refused with its index when it lies
outside its no-arbitrage bounds, and turned into the out-of-the-money option by put-call
parity, exactly, so deep in-the-money quotes do not drown the smile in intrinsic value.
``target_vols`` are priced as the out-of-the-money option. The residual of each option is one of
:data:`RESIDUALS` (``residual``), whatever the target:

* ``"relative"`` (default for prices): the out-of-the-money price's relative error, QuantLib's
  default calibration error;
* ``"vega"``: its price error divided by the market vega, the implied-vol error to first order
  at the cost of a price fit (no inversion in the loop);
* ``"vol"`` (default for vols): the implied-vol error, exact through
  :func:`engine.blackscholes.implied_vol`, whose derivative is the price's divided by vega.

Market vols of price targets (for ``"vega"`` and ``"vol"``) are inverted once, when packing.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from jax import Array

from engine.blackscholes import (
    black_price,
    black_vega,
    discount_factor,
    implied_vols_of_prices,
)
from engine.buckets import on_host
from engine.market import Surface, refuse

__all__ = [
    "RESIDUALS",
    "HestonSurface",
    "check_residual",
    "market_vols",
    "pack_every",
    "pack_surface",
    "pad_surface",
    "per_option",
    "surface_shape",
]


class HestonSurface(NamedTuple):
    """One surface packed by expiry; padded options have ``weights == 0``."""

    spot: Array  # ()
    expiries: Array  # (M, 1)
    strikes: Array  # (M, K)
    rates: Array  # (M, K)
    dividends: Array  # (M, K)
    prices: Array  # (M, K) market prices of the out-of-the-money option (of the given one, vols)
    calls: Array  # (M, K) 1.0 for calls, 0.0 for puts
    scale: Array  # (M, K) residual divisor: the price (relative errors) or its vega
    vols: Array  # (M, K) market implied vols of a vol fit (residuals in vol), NaN otherwise
    weights: Array  # (M, K)


def surface_shape(maturities, expiry_step: int = 2) -> tuple[int, int]:
    """The packed shape ``(M, K)`` of a surface with these option maturities: expiries rounded
    up to a multiple of ``expiry_step`` (each padded one costs a characteristic function), the
    most strikes of one expiry to a multiple of 4. Surfaces of one shape calibrate in one
    program, whatever else shares their batch; a stream whose surfaces grow expiry by expiry
    compiles fewer programs with a larger step."""
    _, counts = np.unique(np.asarray(maturities, np.float64), return_counts=True)
    return _round_up(counts.size, expiry_step), _round_up(int(counts.max()), 4)


RESIDUALS = ("relative", "vega", "vol")


def check_residual(residual: str | None) -> None:
    if residual is not None and residual not in RESIDUALS:
        raise ValueError(f"residual must be one of {RESIDUALS} or None, not {residual!r}")


def pack_surface(
    market_data: Surface | dict,
    min_open_interest: float = 100.0,
    expiry_step: int = 2,
    residual: str | None = None,
) -> HestonSurface:
    """Pack one surface (a :class:`engine.market.Surface`, or a ``market_data`` dict read
    through :meth:`~engine.market.Surface.of`, which checks it) by expiry for the ``residual``
    of :data:`RESIDUALS` (``None``: ``"relative"`` for prices, ``"vol"`` for vols; module
    doc). Options with no time value (``Surface.no_time_value``) and, where reported, an open
    interest at or below ``min_open_interest`` (the playbook's liquidity filter) weigh zero."""
    check_residual(residual)
    surface = Surface.of(market_data)
    if residual is None:
        residual = "vol" if surface.target == "vols" else "relative"
    strikes, expiries = surface.strikes, surface.maturities
    rates, dividends, n = surface.rates, surface.dividends, len(surface)
    weights = surface.fitted * surface.weights * ~(surface.open_interest <= min_open_interest)
    spot = surface.spot
    forward = surface.forwards
    discount = discount_factor(rates, expiries)
    otm_call = strikes >= forward
    if surface.target == "vols":  # the vol is the same either side: price the OTM one
        vols = surface.values
        prices = discount * on_host(black_price, forward, strikes, expiries, vols, surface.calls)
        calls = surface.calls
    else:
        given, calls = surface.values, surface.calls
        intrinsic = discount * (forward - strikes)  # S e^{-qT} - K e^{-rT}
        # put-call parity to the out-of-the-money option: C - P = S e^{-qT} - K e^{-rT}
        prices = given + np.where(calls == otm_call, 0.0, np.where(calls, -intrinsic, intrinsic))
        prices = np.where(weights > 0, prices, 1.0)  # a dropped option's price may be 0 or less
        calls = otm_call
        vols = np.full(n, np.nan)
        if residual != "relative":
            vols = implied_vols_of_prices(prices, spot, rates, dividends, expiries, strikes, calls)
            refuse(
                (weights > 0) & ~(vols > 0),
                "market_data['target_prices']",
                given,
                "has no Black implied vol",
            )
            vols = np.where(weights > 0, vols, 0.2)
    scale = prices
    if residual != "relative":
        scale = discount * on_host(black_vega, forward, strikes, expiries, vols)
    target_vols = vols if residual == "vol" else np.full(n, np.nan)
    if not np.any(weights > 0):
        raise ValueError(
            "no option left to fit (all weights zero, filtered as illiquid or with no time value)"
        )
    unique = np.unique(expiries)
    rows = [np.flatnonzero(expiries == t) for t in unique]
    m, k = len(unique), max(len(r) for r in rows)
    columns = {
        "strikes": strikes,
        "rates": rates,
        "dividends": dividends,
        "prices": prices,
        "calls": calls.astype(np.float64),
        "vols": target_vols,
        "scale": scale,
        "weights": weights,
    }
    out = {name: np.full((m, k), 1.0) for name in columns}
    out["strikes"][:], out["weights"][:] = spot, 0.0
    out["rates"][:], out["dividends"][:] = rates.mean(), dividends.mean()
    for i, idx in enumerate(rows):
        for name, values in columns.items():
            out[name][i, : len(idx)] = values[idx]
    packed = HestonSurface(spot=np.float64(spot), expiries=unique[:, None], **out)
    return pad_surface(packed, *surface_shape(expiries, expiry_step))


def market_vols(market_data: Surface | dict) -> np.ndarray:
    """Black implied vols of every option (input order): the target vols, or the prices
    inverted as the out-of-the-money option (NaN for an option with no time value)."""
    surface = Surface.of(market_data)
    if surface.target == "vols":
        return surface.values.copy()
    return per_option(pack_every(surface, "vol").vols, surface)


def pack_every(market_data: Surface | dict, residual: str | None) -> HestonSurface:
    """Every option packed with unit weight (no liquidity filter; options with no time
    value still weigh zero)."""
    return pack_surface(Surface.of(market_data).with_weights(1.0), residual=residual)


def per_option(grid: np.ndarray, market_data: Surface | dict) -> np.ndarray:
    """A packed (M, K) grid back to one value per option, in the input's order; NaN for an
    option with no time value (never fitted: the grid holds a placeholder there)."""
    surface = Surface.of(market_data)
    expiries = surface.maturities
    out = np.empty(expiries.size)
    for i, t in enumerate(np.unique(expiries)):  # pack_surface's order
        idx = np.flatnonzero(expiries == t)
        out[idx] = grid[i, : idx.size]
    out[list(surface.no_time_value)] = np.nan
    return out


def _round_up(n: int, step: int) -> int:
    """Shapes in steps of ``step``: few programs to compile, little padding."""
    return -(-n // step) * step


def pad_surface(s: HestonSurface, m: int, k: int) -> HestonSurface:
    """Pad to ``m`` expiries of ``k`` strikes (repeating the last expiry, zero weight)."""

    def grid(a, columns=k):
        a = np.asarray(a)
        out = np.concatenate([a, np.repeat(a[-1:], m - a.shape[0], 0)])
        return np.concatenate([out, np.repeat(out[:, -1:], columns - out.shape[1], 1)], 1)

    weights = np.zeros((m, k))
    weights[: s.weights.shape[0], : s.weights.shape[1]] = s.weights
    return s._replace(
        expiries=grid(s.expiries, 1),  # (M, 1): one characteristic function per expiry
        strikes=grid(s.strikes),
        rates=grid(s.rates),
        dividends=grid(s.dividends),
        prices=grid(s.prices),
        calls=grid(s.calls),
        vols=grid(s.vols),
        scale=grid(s.scale),
        weights=weights,
    )
