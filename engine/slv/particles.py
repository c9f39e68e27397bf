"""The particle method for the leverage function of a Heston stochastic-local-volatility model.

Under SLV the spot follows :math:`dS/S = (r - q)\\,dt + L(t, S)\\sqrt{v}\\,dW_1` with Heston
variance :math:`v`. Gyöngy's theorem makes the model reprice every vanilla of a local-vol
surface :math:`\\sigma_{LV}` when :math:`L(t, S)^2\\,E[v \\mid S_t = S] = \\sigma_{LV}(t, S)^2`;
the conditional expectation is the unknown, so it is read off particles simulated with the
leverage found so far, step by step (Guyon and Henry-Labordère). Here the expectation is a
binned kernel regression: each step's nodes span the particles' mean +- ``reach`` standard
deviations, each particle's ``v`` is shared between its two neighbouring nodes (linear
binning), and sums and counts are smoothed across nodes by a Gaussian kernel that widens
where particles are few: O(paths) a step, no sort. Nodes beyond the populated ones hold the
nearest populated node's value (the tails matter little to prices and most to noise).

Spot steps are log-Euler with the exact martingale drift (the forward is kept exactly in
expectation); variance steps are full-truncation Euler; draws are antithetic. Calibration and
pricing run the same scheme, so a leverage repriced by :func:`simulate_log_spots` sees the
dynamics it was fitted on, beside each particle's Heston twin (a control variate). Pure JAX,
float64, one compiled ``lax.scan`` over the time steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["LeverageGrid", "calibrate_leverage", "simulate_log_spots"]


class LeverageGrid(NamedTuple):
    """:math:`L(t, x)` on ``times`` (the start of each step, in years) x ``log_spots``
    (log-spot nodes); piecewise constant in time, linear in log-spot between nodes, flat
    beyond them."""

    times: Array  # (steps,)
    log_spots: Array  # (steps, nodes): equally spaced at each step
    values: Array  # (steps, nodes)


def _binned(x: Array, lo: Array, dx: Array, nodes: int) -> tuple[Array, Array]:
    """Each particle's left node and its weight on the right one (linear binning)."""
    pos = jnp.clip((x - lo) / dx, 0.0, nodes - 1.0)
    left = jnp.minimum(jnp.floor(pos), nodes - 2.0)
    return left.astype(jnp.int32), pos - left


def _leverage_at(x: Array, grid: Array, row: Array) -> Array:
    """A step's leverage ``row`` (on its equally spaced ``grid``) at log-spots ``x``."""
    left, w = _binned(x, grid[0], grid[1] - grid[0], grid.shape[0])
    return (1.0 - w) * row[left] + w * row[left + 1]


def _conditional_variance(x, v, lo, dx, nodes: int, narrow, wide, min_mass: float) -> Array:
    """E[v | x] on the nodes: linear binning, then a Gaussian kernel across nodes whose width
    adapts to the particles there: the ``narrow`` kernel's mean where it holds many more than
    ``min_mass`` particles, shading into the ``wide`` one's where it holds few (the tails),
    weighed as ``mass : min_mass``; beyond the last nodes the wide kernel reaches with
    ``min_mass`` particles, the nearest such node's value."""
    left, w = _binned(x, lo, dx, nodes)
    mass = jnp.zeros(nodes).at[left].add(1.0 - w).at[left + 1].add(w)
    total = jnp.zeros(nodes).at[left].add((1.0 - w) * v).at[left + 1].add(w * v)
    near_mass, near_total = narrow @ mass, narrow @ total
    far_mass, far_total = wide @ mass, wide @ total
    far = far_total / jnp.maximum(far_mass, 1e-300)
    mean = (near_total + min_mass * far) / (near_mass + min_mass)
    populated = far_mass >= min_mass
    first = jnp.argmax(populated)
    last = nodes - 1 - jnp.argmax(populated[::-1])
    return jnp.maximum(mean[jnp.clip(jnp.arange(nodes), first, last)], 1e-12)


def _smoothing(nodes: int, width: float) -> Array:
    """Row-normalised Gaussian weights across nodes (``width`` in nodes); identity at 0."""
    if width <= 0:
        return jnp.eye(nodes)
    d = jnp.arange(nodes)[:, None] - jnp.arange(nodes)[None, :]
    k = jnp.exp(-0.5 * (d / width) ** 2)
    return k / k.sum(axis=1, keepdims=True)


def _normals(key: Array, paths: int) -> Array:
    """Two antithetic sets of ``paths`` standard normals, (2, paths): the second half of each
    is the first negated (half the draws, and a symmetric sample of each step)."""
    z = jax.random.normal(key, (2, paths // 2))
    return jnp.concatenate([z, -z], axis=1)


def _heston_step(x, v, lev, z1, z2, dt, drift, kappa, theta, sigma, rho):
    """One log-Euler spot step with leverage ``lev`` and one full-truncation variance step."""
    vp = jnp.maximum(v, 0.0)
    sd = jnp.sqrt(vp * dt)
    x = x + drift * dt - 0.5 * lev * lev * vp * dt + lev * sd * z1
    v = v + kappa * (theta - vp) * dt + sigma * sd * (rho * z1 + jnp.sqrt(1.0 - rho * rho) * z2)
    return x, v


def calibrate_leverage(
    key: Array,
    local_variance: Callable[[Array, Array], Array],
    times: Array,
    log_spot0,
    drift,
    v0,
    kappa,
    theta,
    sigma,
    rho,
    *,
    paths: int,
    nodes: int = 201,
    reach: float = 5.0,
    smoothing: float = 1.5,
    min_mass: float = 20.0,
) -> LeverageGrid:
    """The leverage grid that makes the SLV model reprice ``local_variance``.

    ``local_variance(t, x)``: :math:`\\sigma_{LV}^2` at time ``t`` on log-spots ``x`` (a
    jittable function, read at each step's middle); ``times`` (steps + 1,): the step boundaries from 0; ``drift``: r - q.
    Each step's ``nodes`` span the particles' mean +- ``reach`` standard deviations, so the
    regression resolves the narrow early distribution as well as the wide late one.
    ``paths``, ``nodes`` (static) particles and nodes; ``smoothing`` the kernel's width in
    nodes."""
    narrow, wide = _smoothing(nodes, smoothing), _smoothing(nodes, 4.0 * smoothing)
    unit = jnp.linspace(-reach, reach, nodes)
    dts = jnp.diff(times)
    keys = jax.random.split(key, dts.shape[0])

    def step(carry, inputs):
        x, v = carry
        t, dt, k = inputs
        grid = jnp.mean(x) + jnp.maximum(jnp.std(x), 1e-6) * unit
        lo, dx = grid[0], grid[1] - grid[0]
        expected = _conditional_variance(x, v, lo, dx, nodes, narrow, wide, min_mass)
        row = jnp.sqrt(local_variance(t + 0.5 * dt, grid) / expected)
        lev = _leverage_at(x, grid, row)
        z = _normals(k, paths)
        moved = _heston_step(x, v, lev, z[0], z[1], dt, drift, kappa, theta, sigma, rho)
        return moved, (grid, row)

    start = (jnp.full(paths, log_spot0, jnp.float64), jnp.full(paths, v0, jnp.float64))
    _, (grids, rows) = jax.lax.scan(step, start, (times[:-1], dts, keys))
    return LeverageGrid(times[:-1], grids, rows)


def simulate_log_spots(
    key: Array,
    leverage: LeverageGrid,
    dts: Array,
    record: Array,
    slots: int,
    log_spot0,
    drift,
    v0,
    kappa,
    theta,
    sigma,
    rho,
    *,
    paths: int,
) -> Array:
    """Log-spots of ``paths`` fresh particles under a fixed ``leverage`` (on its own steps,
    of lengths ``dts``), kept after the steps where ``record`` (steps,) names a slot (-1:
    none): (2, ``slots``, paths): the SLV particles, then their Heston twins (leverage 1,
    the same variance paths and draws): a control variate whose prices are known exactly."""
    keys = jax.random.split(key, dts.shape[0])

    def step(carry, inputs):
        x, h, v, kept = carry
        grid, row, dt, slot, k = inputs
        lev = _leverage_at(x, grid, row)
        z = _normals(k, paths)
        h, _ = _heston_step(h, v, 1.0, z[0], z[1], dt, drift, kappa, theta, sigma, rho)
        x, v = _heston_step(x, v, lev, z[0], z[1], dt, drift, kappa, theta, sigma, rho)
        both = jnp.stack([x, h])
        kept = jax.lax.cond(slot >= 0, lambda b: b.at[:, slot].set(both), lambda b: b, kept)
        return (x, h, v, kept), None

    x = jnp.full(paths, log_spot0, jnp.float64)
    start = (x, x, jnp.full(paths, v0, jnp.float64), jnp.zeros((2, slots, paths)))
    inputs = (leverage.log_spots, leverage.values, dts, record, keys)
    (_, _, _, kept), _ = jax.lax.scan(step, start, inputs)
    return kept
