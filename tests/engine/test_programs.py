"""Programs kept traced (engine.programs) give jax.jit's results, and a second process (here a
second ``kept`` of the same function) loads them from the store without tracing."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from engine import programs
from engine.programs import kept
from streams.compile_cache import ProgramFiles

TRACES: list[str] = []


class Smile(NamedTuple):
    strikes: jax.Array
    vols: jax.Array


def _fit(scale: float, smile: Smile, power=2):
    """A formula with a static argument, a NamedTuple in and a dict of a NamedTuple out."""
    TRACES.append("traced")
    level = scale * jnp.sum(smile.vols**power * jnp.log(smile.strikes))
    return {"level": level, "smile": Smile(smile.strikes * 2.0, jnp.cumsum(smile.vols))}


class DictStore:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def load(self, key: str) -> bytes | None:
        return self.blobs.get(key)

    def save(self, key: str, blob: bytes) -> None:
        self.blobs[key] = blob


@pytest.fixture
def store():
    before = programs._STORE[0]
    store = DictStore()
    programs.use_store(store)
    yield store
    programs.use_store(before)


SMILE = Smile(np.exp(np.linspace(-0.2, 0.2, 7)), np.linspace(0.1, 0.2, 7))


def test_a_kept_program_gives_jits_bits_and_a_second_process_does_not_trace_it(store):
    reference = jax.jit(_fit, static_argnames=("scale",))(1.5, SMILE)
    TRACES.clear()
    first = kept(_fit, static_argnames=("scale",))
    out = first(1.5, SMILE)
    assert TRACES == ["traced"] and len(store.blobs) == 1
    assert jax.tree.structure(out) == jax.tree.structure(reference)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(reference), strict=True):
        np.testing.assert_array_equal(a, b)
    again = kept(_fit, static_argnames=("scale",))  # as a restarted worker would hold it
    np.testing.assert_array_equal(again(1.5, SMILE)["level"], reference["level"])
    assert TRACES == ["traced"]  # loaded, not traced
    # another static value or shape is another program; another value is not
    again(2.0, SMILE)
    again(1.5, Smile(SMILE.strikes[:5], SMILE.vols[:5]))
    cubed = again(1.5, SMILE, power=3)["level"]
    assert float(cubed) == pytest.approx(1.5 * np.sum(SMILE.vols**3 * np.log(SMILE.strikes)))
    assert len(TRACES) == 3 and len(store.blobs) == 3 and len(again.programs) == 3


def _apply(fn, x):
    return fn(x)


def test_unnamed_statics_tracers_and_a_damaged_blob_fall_back_to_tracing(store):
    apply = kept(_apply, static_argnames=("fn",))
    triple = lambda x: 3.0 * x  # noqa: E731 (a lambda names nothing another process knows)
    np.testing.assert_array_equal(apply(triple, SMILE.vols), 3.0 * SMILE.vols)
    assert store.blobs == {} and programs._stable(triple) is None
    assert programs._stable((1.0, partial(_apply, np.sin))) is not None
    fit = kept(_fit, static_argnames=("scale",))
    grad = jax.grad(lambda v: fit(1.5, Smile(SMILE.strikes, v))["level"])(SMILE.vols)
    np.testing.assert_allclose(grad, 2.0 * 1.5 * SMILE.vols * np.log(SMILE.strikes), rtol=1e-12)
    assert store.blobs == {}  # nothing kept under a transformation
    fit(3.0, SMILE)
    (key,) = store.blobs
    store.blobs[key] = b"not a program"
    TRACES.clear()
    out = kept(_fit, static_argnames=("scale",))(3.0, SMILE)
    assert TRACES == ["traced"] and store.blobs[key] != b"not a program"
    assert float(out["level"]) == pytest.approx(float(fit(3.0, SMILE)["level"]), rel=1e-15)


def test_program_files_keep_whole_programs_named_by_key_and_engine(tmp_path):
    files = ProgramFiles(tmp_path / "programs")
    assert files.load("a") is None
    files.save("a", b"one")
    files.save("b", b"two")
    files.save("a", b"three")  # replaced whole
    assert (files.load("a"), files.load("b")) == (b"three", b"two")
    names = sorted(p.name for p in (tmp_path / "programs").iterdir())
    assert len(names) == 2 and all(n.endswith(".program") for n in names)  # no parts left
