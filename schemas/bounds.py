"""No-arbitrage bounds of a European option's price: the range a price quote must lie in.

On the discounted spot ``S e^{-qT}`` and strike ``K e^{-rT}``, a call is worth more than its
intrinsic value ``max(S e^{-qT} - K e^{-rT}, 0)`` and less than ``S e^{-qT}``; a put more than
``max(K e^{-rT} - S e^{-qT}, 0)`` and less than ``K e^{-rT}``. A price at or beyond a bound has
no implied volatility: it is refused (``arbitrage``), never fitted with weight zero in silence.
Scalars or numpy arrays alike.
"""

from __future__ import annotations

import numpy as np

__all__ = ["price_bounds"]


def price_bounds(spot, strike, rate, dividend, t, call) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds of the option's price, ``t`` in ACT/365F years, ``call`` bool."""
    s = np.asarray(spot, float) * np.exp(-np.asarray(dividend, float) * t)
    k = np.asarray(strike, float) * np.exp(-np.asarray(rate, float) * t)
    lower = np.where(call, np.maximum(s - k, 0.0), np.maximum(k - s, 0.0))
    return lower, np.where(call, s, k)
