"""Which code computed a result: the engine's source and the locked numerical dependencies, as
one version string (audit records carry it; compiled programs are filed under the engine's)."""

from __future__ import annotations

import hashlib
import platform
from functools import cache
from importlib import metadata
from pathlib import Path

__all__ = ["engine_digest", "model_version", "platform_name"]

# the packages whose code decides a fit's bits, besides the engine's own
NUMERICS = ("jax", "jaxlib", "numpy", "optax", "optimistix", "lineax", "equinox")


@cache
def engine_digest() -> str:
    """SHA-256 of the engine's source files (names and contents)."""
    import engine

    digest = hashlib.sha256()
    root = Path(engine.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@cache
def model_version() -> str:
    """``engine-<12 hex of its source>+deps-<12 hex of the NUMERICS' installed versions>``:
    the same string means the same code computed the fit."""
    versions = []
    for name in NUMERICS:
        try:
            versions.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name}==absent")
    deps = hashlib.sha256("\n".join(versions).encode()).hexdigest()
    return f"engine-{engine_digest()[:12]}+deps-{deps[:12]}"


@cache
def platform_name() -> str:
    """Where a fit ran, as far as its bits can depend on it: JAX's backend and the CPU."""
    import jax

    return f"{jax.default_backend()}-{platform.machine()}"
