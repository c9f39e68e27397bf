"""Gatheral's raw SVI smile: total implied variance in log-moneyness, fitted per expiry.

:math:`w(y) = a + b\\,(\\rho\\,(y - m) + \\sqrt{(y - m)^2 + s^2})`. Its wings are linear in
``y`` (Lee's moment bound keeps ``b (1 + |rho|) <= 4/T``... for a fitted smile, not forced),
it fits Heston smiles closely (SVI is Heston's long-maturity limit), and it is smooth: what
Dupire local volatility needs from an interpolated market smile. SABR cannot tie a short,
steep equity smile together (54 bp RMSE on a one-month Heston smile with vol-of-vol 0.6,
against SVI's few bp).

The fit is in implied-vol space, one LM per expiry, every expiry at once under ``vmap``,
through the calibration core's coordinates (:class:`engine.parameters.Free`): parameters are
mapped so that ``b > 0``, ``|rho| < 1``, ``s > 0``. Unlike a SABR or Heston fit, a stop with
``rho`` at -1 or 1 is a solution: raw SVI admits it (a wing linear in ``y`` on one side, none
on the other), and short equity smiles fit best there (a Heston market's one-month smile to
2 bp), so no bound is refused.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from engine.diagnostics import identifiability_at
from engine.optimize import final_status, levenberg_marquardt
from engine.parameters import Free, ParameterSpec

__all__ = ["SVIParams", "fit_svi", "svi_identifiability", "svi_total_variance"]


class SVIParams(NamedTuple):
    a: Array
    b: Array
    rho: Array
    m: Array
    s: Array


def svi_total_variance(y, a, b, rho, m, s) -> Array:
    """Raw SVI total variance at log-moneyness ``y``; broadcasts, jittable, differentiable."""
    d = y - m
    return a + b * (rho * d + jnp.sqrt(d * d + s * s))


_FREE = Free.of(
    {
        "a": ParameterSpec(0.0, scale="absolute"),
        "b": ParameterSpec(0.1, 0.0),
        "rho": ParameterSpec(0.0, -1.0, 1.0, scale="absolute"),
        "m": ParameterSpec(0.0, scale="absolute"),
        "s": ParameterSpec(0.1, 0.0),
    },
    SVIParams._fields,
)  # every parameter fitted (the inits are unused: each smile derives its start)
_NONE_HELD = jnp.zeros(5)


def _weighted_errors(q, y, vols, weights, expiry) -> Array:
    """Weighted implied-vol errors of the smile with parameters ``q`` (a, b, rho, m, s)."""
    w = svi_total_variance(y, *q)
    return jnp.sqrt(weights) * (jnp.sqrt(jnp.maximum(w, 1e-12) / expiry) - vols)


def _residuals(u, args):
    return _weighted_errors(_FREE.fill(u, _NONE_HELD), *args)


def _start(y, vols, weights, expiry) -> Array:
    """From a weighted quadratic in ``y`` of the total variance: SVI's expansion about
    ``m = 0`` with ``s = 0.1`` (``c0 = a + b s``, ``c1 = b rho``, ``c2 = b / 2s``)."""
    w = vols * vols * expiry
    basis = jnp.stack([jnp.ones_like(y), y, y * y], axis=1) * jnp.sqrt(weights)[:, None]
    c = jnp.linalg.lstsq(basis, w * jnp.sqrt(weights))[0]
    s = 0.1
    b = jnp.maximum(2.0 * s * c[2], 1e-3)
    rho = jnp.clip(c[1] / b, -0.9, 0.9)
    return _FREE.values(jnp.array([c[0] - b * s, b, rho, 0.0, s]))


@partial(jax.jit, static_argnames=("max_steps",))
def _fit(y, vols, weights, expiry, *, max_steps):
    def one(y, vols, weights, expiry):
        args = (y, vols, weights, expiry)
        out = levenberg_marquardt(
            _residuals, _start(y, vols, weights, expiry), args, max_steps=max_steps, tol=1e-10
        )
        rmse = jnp.sqrt(2.0 * out.cost / jnp.maximum(weights.sum(), 1.0))
        p = _FREE.fill(out.x, _NONE_HELD)
        return p, final_status(out.status, jnp.all(jnp.isfinite(p)), False), rmse

    return jax.vmap(one)(y, vols, weights, expiry)


def fit_svi(log_moneyness, vols, expiries, weights=None, *, max_steps: int = 200):
    """Fit one SVI smile per row: ``log_moneyness``, ``vols``, ``weights`` (E, N) (zero weight
    pads a short row), ``expiries`` (E,). Returns (:class:`SVIParams` of (E,) arrays, status
    (E,), RMSE of implied vol (E,))."""
    y = jnp.asarray(log_moneyness, jnp.float64)
    weights = jnp.ones_like(y) if weights is None else jnp.asarray(weights, jnp.float64)
    p, status, rmse = _fit(
        y, jnp.asarray(vols, jnp.float64), weights, jnp.asarray(expiries, jnp.float64),
        max_steps=max_steps,
    )  # fmt: skip
    return SVIParams(*p.T), np.asarray(status), np.asarray(rmse)


@jax.jit
def svi_identifiability(log_moneyness, vols, expiries, weights, params: SVIParams):
    """Identifiability of each smile's fit (rows as :func:`fit_svi` takes them) at
    ``params``: its :class:`~engine.diagnostics.IdentifiabilityMetrics` over (a, b, rho, m,
    s), batched (E,). Scaled to natural units: ``a`` by the smile's mean total variance,
    ``b`` and ``s`` relative, ``rho`` absolute, ``m`` in units of ``s`` (the smile's width)."""

    def one(y, vols, weights, expiry, q):
        level = jnp.sum(weights * vols * vols * expiry) / jnp.maximum(jnp.sum(weights), 1e-300)
        scales = jnp.stack([level, q[1], 1.0, q[4], q[4]])
        errors = partial(_weighted_errors, y=y, vols=vols, weights=weights, expiry=expiry)
        return identifiability_at(errors, q, scales, jnp.sum(weights > 0))

    q = jnp.stack([jnp.asarray(x, jnp.float64) for x in params], axis=-1)
    return jax.vmap(one)(
        *(jnp.asarray(x, jnp.float64) for x in (log_moneyness, vols, weights, expiries)), q
    )
