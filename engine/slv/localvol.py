"""Dupire local volatility from an implied-volatility surface, for the SLV leverage.

The surface is held as total implied variance :math:`w(y, T) = \\sigma_{imp}^2 T` at
log-moneyness :math:`y = \\ln(K/F_T)`: each quoted expiry's smile is an SVI fit
(:mod:`engine.svi`: smooth, and close to equity smiles that SABR cannot tie together), and
between expiries ``w`` is
linear in ``T`` at fixed ``y`` (before the first expiry and after the last, the nearest
smile's implied vols are held). Dupire's formula in these coordinates (Gatheral, *The
Volatility Surface*, 1.10) is

.. math:: \\sigma_{LV}^2 = \\frac{\\partial_T w}{1 - \\frac{y}{w}\\partial_y w
   + \\frac14\\left(-\\frac14 - \\frac1w + \\frac{y^2}{w^2}\\right)(\\partial_y w)^2
   + \\frac12 \\partial_y^2 w},

evaluated with automatic derivatives of the smile formula; a surface with calendar or
butterfly arbitrage has no local vol there, and gets a floor (said by ``arbitrage_free``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from engine.blackscholes import forward_price
from engine.svi import SVIParams, fit_svi, svi_total_variance

__all__ = [
    "ImpliedSurface",
    "SmileRows",
    "implied_surface",
    "local_variance",
    "one_value",
    "smile_rows",
]

FLOOR = 1e-6  # local variance where the surface has arbitrage (no Dupire vol exists)


class ImpliedSurface(NamedTuple):
    """Per-expiry SVI smiles on flat rates: what the local vol is read from."""

    spot: Array
    rate: Array
    dividend: Array
    expiries: Array  # (E,) ascending
    smiles: SVIParams  # of (E,) arrays

    def smile_variance(self, i, y) -> Array:
        """Total implied variance of expiry ``i``'s smile at log-moneyness ``y``."""
        return svi_total_variance(y, *(p[i] for p in self.smiles))

    def total_variance(self, y, t) -> Array:
        """``w(y, t)``: linear in ``t`` between expiries, the nearest smile's vols outside."""
        e = self.expiries
        i = jnp.clip(jnp.searchsorted(e, t, side="right") - 1, 0, e.shape[0] - 1)
        j = jnp.minimum(i + 1, e.shape[0] - 1)
        wi, wj = self.smile_variance(i, y), self.smile_variance(j, y)
        inside = (t >= e[0]) & (t < e[-1])
        frac = jnp.where(inside, (t - e[i]) / jnp.maximum(e[j] - e[i], 1e-12), 0.0)
        between = wi + frac * (wj - wi)
        edge = jnp.where(t < e[0], self.smile_variance(0, y) * t / e[0], wi * t / e[i])
        return jnp.where(inside, between, edge)

    def implied_vol(self, strike, t) -> Array:
        """Black implied vol at ``strike`` and ``t`` (the surface's own interpolation)."""
        y = jnp.log(strike / self.forward(t))
        return jnp.sqrt(self.total_variance(y, t) / t)

    def forward(self, t) -> Array:
        return forward_price(self.spot, self.rate, self.dividend, t)


def local_variance(surface: ImpliedSurface, t, log_spot) -> Array:
    """Dupire local variance at time ``t`` (scalar) on log-spots ``log_spot`` (any shape),
    floored at ``FLOOR`` where the surface has arbitrage."""
    y = log_spot - jnp.log(surface.forward(t))

    def one(y):
        w = surface.total_variance(y, t)
        dw = jax.grad(surface.total_variance, argnums=0)(y, t)
        d2w = jax.grad(jax.grad(surface.total_variance, argnums=0), argnums=0)(y, t)
        dt = jax.grad(surface.total_variance, argnums=1)(y, t)
        denominator = (
            1.0 - y / w * dw + 0.25 * (-0.25 - 1.0 / w + y * y / (w * w)) * dw * dw + 0.5 * d2w
        )
        value = dt / denominator
        return jnp.where((dt > 0) & (denominator > 0) & jnp.isfinite(value), value, FLOOR)

    flat = jnp.ravel(jnp.asarray(y, jnp.float64))
    return jnp.maximum(jax.vmap(one)(flat), FLOOR).reshape(jnp.shape(y))


class SmileRows(NamedTuple):
    """An index ``market_data`` as SVI smiles take it: one row per expiry (ascending) of
    forward log-moneyness, implied vols and weights, zero-weight padded."""

    spot: float
    rate: float
    dividend: float
    expiries: np.ndarray  # (E,)
    log_moneyness: np.ndarray  # (E, N)
    vols: np.ndarray
    weights: np.ndarray


def smile_rows(market_data: dict) -> SmileRows:
    """``market_data`` (``spot``, ``strikes``, ``maturities``, ``target_vols``, scalar or
    per-option ``rate`` and ``dividend``; ``weights`` optional) cut into smiles. Rates must
    be one number each (the particles drift at ``r - q``): per-option rates that differ are
    refused rather than averaged; so is an expiry with fewer than 5 weighted quotes."""
    t = np.asarray(market_data["maturities"], np.float64)
    k = np.asarray(market_data["strikes"], np.float64)
    vols = np.asarray(market_data["target_vols"], np.float64)
    weights = np.asarray(market_data.get("weights", np.ones_like(t)), np.float64) * np.ones_like(t)
    rate, dividend = (one_value(market_data.get(n, 0.0), n) for n in ("rate", "dividend"))
    spot = float(market_data["spot"])
    expiries = np.unique(t)
    rows = [np.flatnonzero(t == e) for e in expiries]
    width = max(r.size for r in rows)
    y, v, w = (np.zeros((expiries.size, width)) for _ in range(3))
    for i, (e, r) in enumerate(zip(expiries, rows)):
        if np.count_nonzero(weights[r] > 0) < 5:
            raise ValueError(f"expiry {e:.4f}y: an SVI smile needs 5 weighted quotes or more")
        y[i, : r.size] = np.log(k[r]) - np.log(spot) - (rate - dividend) * e
        v[i, : r.size], w[i, : r.size] = vols[r], weights[r]
    return SmileRows(spot, rate, dividend, expiries, y, np.where(w > 0, v, 0.2), w)


def implied_surface(market_data: dict) -> ImpliedSurface:
    """Fit an SVI smile to each expiry of an index ``market_data`` (:func:`smile_rows`): the
    surface :func:`local_variance` reads. An expiry whose smile does not converge is refused
    by name (how closely the smiles fit is the SLV's ``surface_fit`` gate)."""
    r = smile_rows(market_data)
    smiles, status, _ = fit_svi(r.log_moneyness, r.vols, r.expiries, r.weights)
    for e, st in zip(r.expiries, status):
        if st != 0:
            raise ValueError(
                f"the SVI smile of expiry {e:.4f}y did not converge (solver status {int(st)}): "
                "no local vol can be read from it"
            )
    scalar = lambda x: jnp.asarray(x, jnp.float64)  # noqa: E731
    return ImpliedSurface(
        scalar(r.spot), scalar(r.rate), scalar(r.dividend), jnp.asarray(r.expiries), smiles
    )


def one_value(value, name: str) -> float:
    """The one number ``value`` holds (a scalar, or an array of equal values)."""
    values = np.unique(np.asarray(value, np.float64))
    if values.size != 1:
        raise ValueError(
            f"{name}: the SLV model drifts at one rate and one dividend yield; got "
            f"{values.size} different values: give one number"
        )
    return float(values[0])
