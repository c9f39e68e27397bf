"""A machine's compiled programs: JAX's compilation cache, and beside it the traced programs
of :mod:`engine.programs` as files, so that a worker's start neither traces nor compiles."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from streams.provenance import engine_digest

__all__ = ["ProgramFiles", "use_compile_cache"]


class ProgramFiles:
    """:class:`engine.programs.ProgramStore` in a directory: one file per program, named by a
    hash of its key and of the engine's source, written whole or not at all."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        name = hashlib.sha256(f"{engine_digest()}|{key}".encode()).hexdigest()
        return self.directory / f"{name}.program"

    def load(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def save(self, key: str, blob: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, self._path(key))  # workers sharing the directory never read half


def use_compile_cache(directory: Path) -> None:
    """Keep compiled programs in ``directory`` (JAX's cache) and traced ones in its
    ``programs`` folder: a restart loads both (seconds) instead of tracing and compiling."""
    import jax

    from engine.programs import use_store

    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    use_store(ProgramFiles(directory / "programs"))
