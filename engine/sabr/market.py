"""Smiles as padded arrays: validation of raw quotes and packing into bucketable batches.

Host-side NumPy (runs before ``jit``), so bad input fails here with a message naming the smile
and the offending quotes, instead of surfacing later as NaN parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["ATM_WIDTH", "SmileBatch", "atm_weights", "pack_smiles"]

ATM_WIDTH = 0.05  # the playbook's Gaussian ATM weight: exp(-ln(K/F)^2 / 0.05)


class SmileBatch(NamedTuple):
    """B smiles padded to N quotes; padding has ``mask`` False and weight 0."""

    forward: np.ndarray  # (B,)
    expiry: np.ndarray  # (B,)
    strikes: np.ndarray  # (B, N)
    vols: np.ndarray  # (B, N)
    weights: np.ndarray  # (B, N)
    mask: np.ndarray  # (B, N) bool

    def pad(self, batch: int, width: int) -> SmileBatch:
        """Pad to ``(batch, width)``: extra quotes sit at the forward, extra smiles are flat."""
        b, n = self.strikes.shape
        if (b, n) == (batch, width):
            return self

        def grow(a, fill_quote, fill_row):
            out = np.full((batch, width), fill_row, a.dtype)
            out[:b, :n] = a
            out[:b, n:] = fill_quote
            return out

        ones = np.ones(batch - b)
        return SmileBatch(
            np.concatenate([self.forward, ones]),
            np.concatenate([self.expiry, ones]),
            grow(self.strikes, self.forward[:, None], 1.0),
            grow(self.vols, 0.2, 0.2),
            grow(self.weights, 0.0, 0.0),
            grow(self.mask, False, False),
        )

    def rows(self, index: slice) -> SmileBatch:
        return SmileBatch(*(a[index] for a in self))


def atm_weights(strikes: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """The playbook's ATM weighting ``exp(-ln(K/F)^2 / 0.05)``."""
    return np.exp(-(np.log(strikes / forward) ** 2) / ATM_WIDTH)


def _ragged(values) -> bool:
    return (
        isinstance(values, Sequence)
        and not isinstance(values, np.ndarray)
        and any(np.ndim(r) != 1 or np.size(r) != np.size(values[0]) for r in values)
    )


def _to_padded(name: str, values, mask: np.ndarray | None, fill: float) -> np.ndarray:
    """(B, N) float array from a 2-D array or a list of 1-D rows (ragged rows padded)."""
    if mask is None:
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(
                f"{name} must be a (B, N) array or a list of B 1-D arrays, got shape {arr.shape}"
            )
        return arr
    out = np.full(mask.shape, fill)
    for i, row in enumerate(values):
        row = np.asarray(row, dtype=np.float64)
        if row.ndim != 1 or row.size != mask[i].sum():
            raise ValueError(
                f"{name}[{i}] must be 1-D with {mask[i].sum()} entries (as strikes[{i}]), got shape {row.shape}"
            )
        out[i, : row.size] = row
    return out


def _first_bad(bad: np.ndarray, what: str, values: np.ndarray) -> None:
    """Raise naming the first smile with a bad entry and its positions."""
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        cols = np.flatnonzero(bad[i]).tolist()[:5]
        raise ValueError(
            f"smile {i}: {what} at positions {cols} (values {values[i, cols].tolist()})"
        )


def pack_smiles(forward, expiry, strikes, vols, weights=None, *, min_quotes: int = 1) -> SmileBatch:
    """Validate B smiles and pack them into a :class:`SmileBatch` of width ``max(N_i)``.

    ``strikes``/``vols`` are (B, N) arrays or lists of B 1-D arrays of per-smile lengths;
    ``weights`` likewise, or ``"atm"`` for the playbook's ATM weighting, or ``None`` (equal).
    Raises ``ValueError`` on mismatched shapes, non-finite or non-positive forwards, expiries,
    strikes or vols, negative weights, or a smile with fewer than ``min_quotes`` quotes.
    Validation is vectorised: packing thousands of smiles costs milliseconds.
    """
    forward = np.atleast_1d(np.asarray(forward, dtype=np.float64))
    expiry = np.atleast_1d(np.asarray(expiry, dtype=np.float64))
    row_mask = None  # for ragged lists: which padded slots hold quotes
    if _ragged(strikes):
        lengths = np.array([np.size(r) for r in strikes])
        row_mask = np.arange(max(lengths.max(), 1))[None, :] < lengths[:, None]
    k = _to_padded("strikes", strikes, row_mask, np.nan)
    mask = np.ones(k.shape, bool) if row_mask is None else row_mask
    b = k.shape[0]
    if b == 0:
        raise ValueError("no smiles given")
    v = _to_padded("vols", vols, row_mask, np.nan)
    if v.shape != k.shape:
        raise ValueError(f"strikes and vols must have the same shape, got {k.shape} and {v.shape}")
    if forward.shape != (b,) or expiry.shape != (b,):
        raise ValueError(
            f"forward and expiry must have shape (B,) = ({b},), got {forward.shape} and {expiry.shape}"
        )
    scalars = np.concatenate([forward, expiry])
    if not (np.isfinite(scalars) & (scalars > 0)).all():
        for name, a in (("forward", forward), ("expiry", expiry)):
            bad = ~(np.isfinite(a) & (a > 0))
            if bad.any():
                raise ValueError(
                    f"{name} must be finite and positive; got {a[bad][:5].tolist()} for smiles {np.flatnonzero(bad)[:5].tolist()}"
                )
    if isinstance(weights, str):
        if weights != "atm":
            raise ValueError(f"weights must be an array, None or 'atm', not {weights!r}")
        w = None
    elif weights is None:
        w = np.ones(k.shape)
    else:
        w = _to_padded("weights", weights, row_mask, 0.0)
        if w.shape != k.shape:
            raise ValueError(f"weights must match strikes' shape {k.shape}, got {w.shape}")
    quotes = np.stack([k, v])
    if not (~mask | (np.isfinite(quotes) & (quotes > 0))).all():  # name the first bad one
        for name, a in (("strikes", k), ("vols", v)):
            _first_bad(mask & ~np.isfinite(a), f"{name} not finite", a)
            _first_bad(mask & (a <= 0), f"{name} must be positive", a)
    strikes_2d = k if row_mask is None else np.where(mask, k, forward[:, None])
    if w is None:
        w = atm_weights(strikes_2d, forward[:, None])
    if not (np.isfinite(w) & (w >= 0)).all():
        _first_bad(
            mask & ~(np.isfinite(w) & (w >= 0)), "weights must be finite and non-negative", w
        )
    if row_mask is not None:
        w = np.where(mask, w, 0.0)
    counts = np.count_nonzero(w > 0, axis=1)
    short = counts < max(min_quotes, 1)
    if short.any():
        i = int(np.flatnonzero(short)[0])
        raise ValueError(
            f"smile {i} is empty"
            if counts[i] == 0 and mask[i].sum() == 0
            else f"smile {i} has {counts[i]} quotes of non-zero weight; at least {min_quotes} are needed to fit it"
        )
    if row_mask is None:
        return SmileBatch(forward, expiry, k, v, w, mask)
    return SmileBatch(forward, expiry, strikes_2d, np.where(mask, v, 0.2), w, mask)
