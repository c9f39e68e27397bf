"""Fuzzing the worker's input: 10,000 hostile messages of every kind (tests.reliability.hostile)
mixed into a valid simulated stream of FX smiles and an index surface. The pipeline never
raises; every bad message or row is in the dead-letter topic once, with its reason, and
counted; and the parameters it publishes are bit for bit those of the same stream without the
hostile messages: nothing good was lost or changed. Nothing NaN or unconverged goes out good."""

import math
from collections import Counter

import numpy as np
import pytest

from schemas import DeadLetter, Params, Quote, decode, encode
from streams.feed.simulate import TickSimulator
from streams.settings import Settings
from streams.worker.pipeline import Pipeline
from tests.reliability.hostile import KINDS, hostile
from tests.streams.memory import Memory, feed

T0 = 1.795e9
HOSTILE = 10_000


def run(values: list[bytes]) -> tuple[Pipeline, Memory]:
    sink = Memory()
    pipe = Pipeline(Settings(topic_prefix="f", runbook_cooldown=0), sink, clock=lambda: T0 + 50)

    feed(pipe, values, 250, T0)
    return pipe, sink


@pytest.fixture(scope="module")
def fuzzed():
    sim = TickSimulator(pairs=2, tenors=(30, 91), indices=1, seed=21, jump_every=2.0)
    quotes = list(sim.ticks(T0, rate=400, count=6000))
    equity = [q for q in quotes if q.asset_class == "equity" and q.price is not None]
    rng = np.random.default_rng(7)
    mixed, clean, made = [], [], []
    at = sorted(rng.choice(np.arange(100, len(quotes)), HOSTILE))  # after the opening quotes
    k = 0
    for i, q in enumerate(quotes):
        mixed.append(encode(q))
        clean.append(encode(q))
        while k < len(at) and at[k] == i:
            sent = [x for x in quotes[max(0, i - 50) : i + 1] if x.asset_class == "fx"]
            h = hostile(rng, sent, equity)
            made.append(h)
            mixed.append(h.value)
            if h.clean is not None:
                clean.append(h.clean)
            k += 1
    dirty_pipe, dirty = run(mixed)
    _, reference = run(clean)
    return made, dirty_pipe, dirty, reference


def test_every_kind_is_mixed_in(fuzzed):
    made = fuzzed[0]
    assert len(made) == HOSTILE and set(Counter(h.kind for h in made)) == set(KINDS)


def test_every_bad_message_and_row_is_dead_lettered_once_with_its_reason(fuzzed):
    made, pipe, sink, _ = fuzzed
    letters = [decode(v, DeadLetter) for _, v in sink.sent["f.dlq"]]
    assert len(letters) == sum(h.letters for h in made)
    assert sum(pipe.counters.rejected.values()) == len(letters)
    # kind by kind: the letters of each kind's messages carry one of its reasons
    allowed = set().union(*(h.reasons for h in made))
    assert {d.reason for d in letters} <= allowed
    for kind in ("crossed", "unknown_version", "huge_string", "expired", "huge_batch",
                 "below_intrinsic", "stale"):  # fmt: skip
        (reason,) = next(h.reasons for h in made if h.kind == kind)
        expected = sum(h.letters for h in made if h.kind == kind)
        assert sum(d.reason == reason for d in letters) >= expected, kind
    assert all(d.detail for d in letters) and all(len(d.original) <= 16 * 1024 for d in letters)


def test_the_good_stream_is_published_as_if_nothing_hostile_came(fuzzed):
    _, _, dirty, reference = fuzzed
    strip = lambda m: {k: v for k, v in decode(m, Params).to_wire().items()  # noqa: E731
                       if k not in ("published_at", "received_at")}  # fmt: skip
    ours = [strip(v) for _, v in dirty.sent["f.params"]]
    theirs = [strip(v) for _, v in reference.sent["f.params"]]
    assert len(ours) > 20 and ours == theirs


def test_nothing_nan_or_unconverged_goes_out_good(fuzzed):
    params = [decode(v, Params) for _, v in fuzzed[2].sent["f.params"]]
    for p in params:
        if p.good:
            assert p.converged and all(
                v is not None and math.isfinite(v) for v in p.params.values()
            )
    assert {p.model for p in params} == {"sabr", "heston"}


def test_a_stale_quote_alone_is_dead_lettered_saying_how_late():
    quotes = list(TickSimulator(pairs=1, tenors=(91,), seed=3).ticks(T0, rate=100, count=30))
    late = Quote(**{**quotes[-1].__dict__, "ts": quotes[-1].ts - 1000.0})
    pipe, sink = run([encode(q) for q in quotes] + [encode(late)])
    (letter,) = [decode(v, DeadLetter) for _, v in sink.sent["f.dlq"]]
    assert letter.reason == "stale" and "1000 s behind its partition's event time" in letter.detail
    assert letter.offset == len(quotes) and pipe.counters.rejected == {"stale": 1}
