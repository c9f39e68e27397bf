"""Bucketed batch shapes: pad to a few sizes so a steady stream never triggers a recompile;
and host arrays kept on the host (an eager JAX op compiles for each new shape)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import jax
import jax.numpy as jnp
import numpy as np

from engine.programs import kept

__all__ = ["array_module", "bucket", "chunks", "on_host"]


def bucket(n: int, minimum: int = 1, growth: int = 2) -> int:
    """The smallest size of the ladder ``m, m*growth, m*growth**2, ...`` that holds ``n``, where
    ``m`` is ``minimum`` rounded up to a power of two. A larger ``growth`` pads more but leaves
    fewer shapes to compile."""
    if growth < 2:
        raise ValueError(f"growth must be at least 2, got {growth}")
    size = 1 << (max(minimum, 1) - 1).bit_length()
    while size < n:
        size *= growth
    return size


def chunks(n: int, largest: int) -> list[slice]:
    """Split ``range(n)`` into slices of at most ``largest`` (a power of two)."""
    return [slice(start, min(start + largest, n)) for start in range(0, n, largest)]


@cache
def _compiled(fn: Callable) -> Callable:
    return kept(fn)


def on_host(fn: Callable, *args) -> np.ndarray:
    """``fn`` (an elementwise jnp formula, each element's result a scalar or a few stacked on a
    last axis) over host arrays as NumPy: the arguments broadcast to one length, padded to a
    bucketed length (64 and up, doubling) with their first element and run as one compiled
    program. Called eagerly, each jnp op of ``fn`` compiled a program per array length: a
    stream whose surfaces hold 42, 43, 44 options compiled anew each time (140 compilations,
    5 s, in a 200,000-tick replay)."""
    arrays = np.broadcast_arrays(*(np.asarray(a) for a in args))
    shape = arrays[0].shape
    flat = [a.ravel() for a in arrays]
    n = flat[0].size
    if n == 0:
        return np.asarray(fn(*arrays))
    size = bucket(n, 64)
    padded = [np.concatenate([a, np.full(size - n, a[0], a.dtype)]) for a in flat]
    out = np.asarray(_compiled(fn)(*padded))
    return out[:n].reshape(shape + out.shape[1:])


def array_module(*args):
    """NumPy for NumPy (or plain numbers) in, JAX for JAX arrays or tracers: a formula written
    once serves compiled programs and host paths, and a host path never dispatches to the
    device."""
    return jnp if any(isinstance(a, jax.Array) for a in args) else np
