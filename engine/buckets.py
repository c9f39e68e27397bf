"""Bucketed batch shapes: pad to a few sizes so a steady stream never triggers a recompile."""

from __future__ import annotations

__all__ = ["bucket", "chunks"]


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
