"""Bucketed batch shapes: pad to a few sizes so a steady stream never triggers a recompile."""

from __future__ import annotations

__all__ = ["bucket", "chunks"]


def bucket(n: int, minimum: int = 1) -> int:
    """The smallest power of two that is at least ``max(n, minimum)``."""
    size = max(n, minimum, 1)
    return 1 << (size - 1).bit_length()


def chunks(n: int, largest: int) -> list[slice]:
    """Split ``range(n)`` into slices of at most ``largest`` (a power of two)."""
    return [slice(start, min(start + largest, n)) for start in range(0, n, largest)]
