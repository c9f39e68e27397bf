"""Compiled programs a process keeps *traced*: ``jax.jit`` whose traced and lowered form
(:mod:`jax.export`) a :class:`ProgramStore` keeps between processes.

JAX's persistent compilation cache keeps what XLA compiled, but a fresh process must still
trace and lower every program to find it there: 8 s of a 2-core machine for the Heston fit's
four programs, 20 s for all that a worker warms. A program loaded from a store is not traced
at all (0.1 s), then found in the compilation cache by its lowered text. Without a store (the
default), :func:`kept` is ``jax.jit``.

The store is process configuration, as JAX's cache directory is: the engine does no I/O, the
caller's store does (``streams.settings.Settings.use_compile_cache`` installs one on disk).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import pickle
import threading
from collections.abc import Callable
from typing import Any, Protocol

import jax
import numpy as np
from jax import export

__all__ = ["ProgramStore", "kept", "use_store"]


class ProgramStore(Protocol):
    """Where traced programs live between processes, by a text key that names the function,
    its static arguments, argument shapes and the JAX build (the store adds its own version)."""

    def load(self, key: str) -> bytes | None: ...

    def save(self, key: str, blob: bytes) -> None: ...


_STORE: list[ProgramStore | None] = [None]


def use_store(store: ProgramStore | None) -> None:
    """Keep the traced programs of every :func:`kept` function in ``store`` (None: trace in
    each process, as ``jax.jit`` does)."""
    _STORE[0] = store


def _stable(x: Any) -> str | None:
    """Text that names ``x`` the same in every process (functions by module and name), or
    None where none does (an object whose text is its address)."""
    if isinstance(x, functools.partial):
        parts = [_stable(x.func), _stable(x.args), _stable(sorted(x.keywords.items()))]
        return None if None in parts else f"partial({', '.join(parts)})"
    if inspect.isfunction(x):  # a closure's or a lambda's name does not say what it computes
        if x.__closure__ or "<" in x.__qualname__:
            return None
        defaults = _stable((x.__defaults__, sorted((x.__kwdefaults__ or {}).items())))
        return None if defaults is None else f"{x.__module__}.{x.__qualname__}{defaults}"
    if inspect.isbuiltin(x) or isinstance(x, type):
        return f"{x.__module__}.{x.__qualname__}"
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        x = (type(x), *(getattr(x, f.name) for f in dataclasses.fields(x)))
    if isinstance(x, tuple | list):
        parts = [_stable(v) for v in x]
        return None if None in parts else f"{type(x).__name__}({', '.join(parts)})"
    text = repr(x)
    return None if " at 0x" in text or "object at" in text else text


class _Program:
    """One traced program: the exported call (jitted, so each call is one dispatch) and how
    to rebuild its outputs."""

    def __init__(self, blob: bytes) -> None:
        out_tree, serialized = pickle.loads(blob)
        self.out_tree = out_tree
        self.call = jax.jit(export.deserialize(bytearray(serialized)).call)


class kept:  # noqa: N801 (used as a decorator, as jax.jit is)
    """``jax.jit(fun, static_argnames=...)`` whose traced programs live in the process's
    :class:`ProgramStore`, one per static arguments and argument shapes. Under an outer
    transformation (a tracer among the arguments) it is ``jax.jit``."""

    def __init__(self, fun: Callable, static_argnames: tuple[str, ...] = ()) -> None:
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.static = tuple(static_argnames)
        self.jitted = jax.jit(fun, static_argnames=static_argnames)
        self.signature = inspect.signature(fun)
        self.programs: dict[tuple, _Program | None] = {}
        self.lock = threading.Lock()  # a warm-up thread and the stream ask for one program

    def __call__(self, *args, **kwargs):
        store = _STORE[0]
        if store is None:
            return self.jitted(*args, **kwargs)
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        named = bound.arguments
        statics = tuple(named[n] for n in self.static)
        leaves, tree = jax.tree.flatten([v for n, v in named.items() if n not in self.static])
        if any(isinstance(x, jax.core.Tracer) for x in leaves):
            return self.jitted(*args, **kwargs)
        leaves = [np.asarray(x) if not hasattr(x, "dtype") else x for x in leaves]
        shapes = tuple((np.shape(x), np.dtype(x.dtype).str) for x in leaves)
        program = self.programs.get((statics, tree, shapes), False)
        if program is False:
            with self.lock:
                program = self.programs.get((statics, tree, shapes), False)
                if program is False:
                    program = self._load(store, statics, tree, leaves, shapes)
                    self.programs[statics, tree, shapes] = program
        if program is None:  # not storable (a static argument without a stable name)
            return self.jitted(*args, **kwargs)
        return jax.tree.unflatten(program.out_tree, program.call(*leaves))

    def _cache_size(self) -> int:
        """Programs held: traced here or loaded (as ``jax.jit``'s own count, for tests that
        a steady stream adds none)."""
        return len(self.programs) + self.jitted._cache_size()

    def _load(self, store: ProgramStore, statics, tree, leaves, shapes) -> _Program | None:
        static_text = _stable(statics)
        if static_text is None:
            return None
        key = "|".join([
            f"{self.fun.__module__}.{self.fun.__qualname__}", static_text, str(tree),
            str(shapes), jax.__version__, jax.default_backend(),
            str(jax.config.read("jax_enable_x64")),
        ])  # fmt: skip
        blob = store.load(key)
        if blob is not None:
            try:
                return _Program(blob)
            except Exception:  # written by another build, or cut short: trace it again
                pass
        blob = self._export(statics, tree, leaves)
        store.save(key, blob)
        return _Program(blob)

    def _export(self, statics, tree, leaves) -> bytes:
        """Trace and lower once, on flat arguments and outputs (the store keeps no types)."""
        out_tree: list = []

        def flat(*xs):
            dynamic = iter(jax.tree.unflatten(tree, xs))
            given = {
                n: statics[self.static.index(n)] if n in self.static else next(dynamic)
                for n in self.signature.parameters
            }
            out, treedef = jax.tree.flatten(self.fun(**given))
            out_tree.append(treedef)
            return out

        avals = [jax.ShapeDtypeStruct(np.shape(x), x.dtype) for x in leaves]
        # a program is loaded only by the JAX build and backend that traced it (its key says
        # so): custom calls without a cross-version guarantee (LAPACK's) are safe here
        anything = [export.DisabledSafetyCheck.custom_call("ALL")]
        exported = export.export(jax.jit(flat), disabled_checks=anything)(*avals)
        return pickle.dumps((out_tree[0], exported.serialize()))
