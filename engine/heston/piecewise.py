r"""Piecewise-constant time-dependent Heston: segments, parameters and exact prices.

On segments :math:`[t_j, t_{j+1})` of calendar time the parameters
:math:`(\kappa_j, \theta_j, \sigma_j, \rho_j)` are constants; the last segment runs on past its
end. :math:`v_0` is the variance *at time 0*: one number for the whole model, never per
segment (a "segmented v0" would be a jump of the variance process at each segment start, a
different model from QuantLib's ``PiecewiseTimeDependentHestonModel``; :class:`TimeSegment`
refuses it and says to segment ``theta`` instead).

The log-price characteristic function stays affine, :math:`\varphi(u) = \exp(C + D v_0)`,
with :math:`C, D` solved backward through the segments (Mikhailov and Nögel 2003; Elices
2008): on a segment of length :math:`\tau`, from the next segment's :math:`D'` and with
:math:`\xi = \kappa - \sigma\rho i u`, :math:`d = \sqrt{\xi^2 + \sigma^2(u^2 + iu)}`,

.. math:: g = \frac{\xi - d - \sigma^2 D'}{\xi + d - \sigma^2 D'},\quad
   D = \frac{(\xi - d) - (\xi + d) g e^{-d\tau}}{\sigma^2 (1 - g e^{-d\tau})},\quad
   C = C' + \frac{\kappa\theta}{\sigma^2}\Big[(\xi - d)\tau
       - 2\ln\frac{1 - g e^{-d\tau}}{1 - g}\Big],

which is the plain model's "little trap" form when :math:`D' = 0`. Segments past an option's
expiry have :math:`\tau = 0` and leave :math:`C, D` unchanged, so one program prices every
expiry. Prices go through :func:`engine.heston.pricer.lewis_price` with a Black control
variate of the model's expected total variance.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from engine.blackscholes import forward_price
from engine.heston.model import PARAM_NAMES
from engine.heston.pricer import NODES, lewis_kernel, lewis_price, scaled_rule

__all__ = [
    "SEGMENTABLE",
    "TimeSegment",
    "ptd_characteristic_function",
    "ptd_heston_price",
    "ptd_total_variance",
    "segment_starts",
]

SEGMENTABLE = ("kappa", "theta", "sigma", "rho")  # v0 is the variance at time 0: one value


@dataclass(frozen=True)
class TimeSegment:
    """Calendar time ``[start, end)`` in years on which the parameters ``params`` take values
    of their own (the playbook's ``TimeSegment(start=0.0, end=0.5, params=["theta"])``);
    ``values`` optionally holds them (a calibrated result's segments carry every parameter's
    value there)."""

    start: float
    end: float
    params: tuple[str, ...] = ("theta",)
    values: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        if not 0.0 <= self.start < self.end:
            raise ValueError(f"TimeSegment needs 0 <= start < end, got [{self.start}, {self.end})")
        if "v0" in self.params:
            raise ValueError(
                "TimeSegment params: 'v0' is the variance at time 0, one value for the whole "
                "term structure (it cannot change by segment); fit it once by leaving it out "
                "of params, and segment 'theta' (the level the variance reverts to) for a "
                "term structure of variance"
            )
        unknown = set(self.params) - set(SEGMENTABLE)
        if unknown or not self.params:
            raise ValueError(
                f"TimeSegment params must be a non-empty subset of {SEGMENTABLE}, got "
                f"{list(self.params)}"
            )

    def value(self, name: str) -> float:
        """This segment's value of ``name`` (from ``values``)."""
        return dict(self.values)[name]


def segment_starts(segments: Sequence[TimeSegment]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The segments' start times (S,) and the parameters that vary by segment, after checking
    that they tile ``[0, last end)`` in order and all list the same parameters (a parameter
    either varies on every segment or is one constant; anything else is ambiguous)."""
    if not segments:
        raise ValueError("at least one TimeSegment is needed")
    if segments[0].start != 0.0:
        raise ValueError(f"the first segment must start at 0, not {segments[0].start}")
    for i, (a, b) in enumerate(itertools.pairwise(segments)):
        if not math.isclose(a.end, b.start, rel_tol=0.0, abs_tol=1e-12):
            raise ValueError(
                f"segments {i} and {i + 1} must meet: [{a.start}, {a.end}) then "
                f"[{b.start}, {b.end})"
            )
    varying = set(segments[0].params)
    for i, seg in enumerate(segments):
        if set(seg.params) != varying:
            raise ValueError(
                f"segment {i} varies {sorted(seg.params)} but segment 0 varies "
                f"{sorted(varying)}: every segment must list the same parameters"
            )
    names = tuple(n for n in PARAM_NAMES if n in varying)
    return np.array([s.start for s in segments], np.float64), names


def _durations(expiry, starts) -> Array:
    """Time each segment spends before ``expiry``: (..., S), the last segment open-ended."""
    starts = jnp.asarray(starts)
    ends = jnp.concatenate([starts[1:], jnp.array([jnp.inf])])
    t = jnp.asarray(expiry)[..., None]
    return jnp.clip(jnp.minimum(t, ends) - starts, 0.0, None)


def ptd_total_variance(expiry, v0, starts, kappa, theta) -> Array:
    """:math:`\\int_0^T E[v_t]\\,dt` with piecewise mean reversion (segment arrays (S,))."""
    tau = jnp.moveaxis(_durations(expiry, starts), -1, 0)  # (S, ...)

    def segment(carry, xs):
        mean, total = carry
        k, th, t = xs
        total = total + th * t + (mean - th) * -jnp.expm1(-k * t) / k
        return (th + (mean - th) * jnp.exp(-k * t), total), None

    start = jnp.broadcast_to(jnp.asarray(v0, jnp.float64), tau.shape[1:])
    (_, total), _ = lax.scan(segment, (start, jnp.zeros_like(start)), (kappa, theta, tau))
    return jnp.maximum(total, 1e-12)


def ptd_characteristic_function(u, expiry, v0, starts, kappa, theta, sigma, rho) -> Array:
    """:math:`E[\\exp(iu\\ln(S_T/F))]` for complex ``u`` (..., N) and ``expiry`` (..., 1)
    broadcasting against it; segment parameters are arrays (S,) on ``starts``."""
    tau = jnp.moveaxis(_durations(expiry, starts), -1, 0)  # (S, ..., 1)
    shape = jnp.broadcast_shapes(u.shape, tau.shape[1:])

    def segment(carry, xs):  # one segment, from the next one's (C, D): a scan, not unrolled,
        c, d_v = carry  # so the program's size (and compile time) does not grow with S
        k, th, s, r, t = xs
        s2 = s * s
        xi = k - s * r * 1j * u
        d = jnp.sqrt(xi * xi + s2 * (u * u + 1j * u))
        g = (xi - d - s2 * d_v) / (xi + d - s2 * d_v)
        e = jnp.exp(-d * t)
        c = c + k * th / s2 * ((xi - d) * t - 2.0 * jnp.log((1.0 - g * e) / (1.0 - g)))
        return (c, ((xi - d) - (xi + d) * g * e) / (s2 * (1.0 - g * e))), None

    zero = jnp.zeros(shape, jnp.result_type(u, jnp.complex128))
    (c, d_v), _ = lax.scan(segment, (zero, zero), (kappa, theta, sigma, rho, tau), reverse=True)
    return jnp.exp(c + d_v * v0)


def ptd_rule(expiry, v0, starts, kappa, theta, sigma, rho, nodes: int) -> tuple[Array, Array]:
    """Quadrature nodes for an expiry (trailing axis): the plain model's scaling with the tail
    constant summed over the segments the expiry spans."""
    tau = _durations(expiry, starts)
    slope = jnp.sqrt(1.0 - rho * rho) / sigma
    tail = slope[0] * v0 + jnp.sum(slope * kappa * theta * tau, axis=-1)
    return scaled_rule(tail, ptd_total_variance(expiry, v0, starts, kappa, theta), nodes)


def ptd_price_on(
    u, kernel, spot, strike, expiry, rate, dividend, v0, starts, kappa, theta, sigma, rho, call
) -> Array:
    """:func:`ptd_heston_price` on given nodes and their :func:`lewis_kernel` (what a fit
    holds fixed while it varies the parameters)."""
    expiry = jnp.asarray(expiry)
    cf = ptd_characteristic_function(
        u - 0.5j, expiry[..., None], v0, starts, kappa, theta, sigma, rho
    )
    variance = ptd_total_variance(expiry, v0, starts, kappa, theta)
    return lewis_price(u, kernel, spot, strike, expiry, rate, dividend, cf, variance, call)


def ptd_heston_price(
    spot,
    strike,
    expiry,
    rate,
    dividend,
    v0,
    starts,
    kappa,
    theta,
    sigma,
    rho,
    call=True,
    *,
    nodes: int = NODES,
) -> Array:
    """Discounted price of a European option under piecewise-constant Heston.

    ``starts`` (S,) are the segments' start times (the first 0); ``kappa``, ``theta``,
    ``sigma``, ``rho`` are (S,) arrays (a constant parameter repeated). Strikes ``(M, K)``
    against expiries ``(M, 1)`` evaluate the characteristic function once per expiry; any
    shapes that broadcast work. Jittable and differentiable."""
    f64 = lambda x: jnp.asarray(x, jnp.float64)  # noqa: E731
    spot, strike, expiry, rate, dividend, v0 = map(f64, (spot, strike, expiry, rate, dividend, v0))
    seg = tuple(f64(x) for x in (starts, kappa, theta, sigma, rho))
    u, weights = ptd_rule(expiry, v0, *seg, nodes=nodes)
    kernel = lewis_kernel(strike, forward_price(spot, rate, dividend, expiry), u, weights)
    return ptd_price_on(u, kernel, spot, strike, expiry, rate, dividend, v0, *seg, call)
