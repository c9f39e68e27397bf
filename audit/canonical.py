"""One canonical byte encoding of plain data, so that a hash means the same in any language.

msgpack (the wire's encoding) with every map's keys sorted by their UTF-8 bytes, tuples as
lists, every float as float64 (never float32), integers in their shortest form, text as UTF-8
``str``: a Java or C++ implementation of the msgpack spec reproduces it by sorting map keys.
NaN and infinities are refused: archived inputs carry None where a value is missing.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import msgpack

__all__ = ["canonical", "digest"]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("canonical maps have text keys")
        return {k: _plain(value[k]) for k in sorted(value, key=lambda k: k.encode())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} has no canonical encoding: archive None instead")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"{type(value).__name__} is not plain data")


def canonical(value: Any) -> bytes:
    """``value`` (maps with text keys, lists, text, numbers, booleans, None) as canonical
    msgpack."""
    return msgpack.packb(_plain(value), use_bin_type=True, use_single_float=False)


def digest(value: Any) -> str:
    """SHA-256 of ``value``'s canonical encoding, as 64 hex digits."""
    return hashlib.sha256(canonical(value)).hexdigest()
