"""Checkpoints in process: a pipeline resumed from the checkpoint another kept, fed the messages
again from an earlier offset (the group's committed one), publishes what an uninterrupted
pipeline publishes after that point, bit for bit."""

import asyncio

import pytest

from schemas import Params, decode, encode
from streams.feed.replay import read_ticks
from streams.settings import Settings
from streams.worker.checkpoint import Checkpoints
from streams.worker.decode import Record
from streams.worker.pipeline import Pipeline
from tests.streams.memory import Memory
from tests.streams.test_stream_e2e import TICKS, strip

T0 = 1.795e9


def pipeline(tmp_path, every: float = 0.0) -> tuple[Pipeline, Memory]:
    settings = Settings(topic_prefix="t", state_dir=tmp_path, partitions=1, checkpoint_every=every)
    checkpoints = Checkpoints(settings)
    checkpoints.partitions = frozenset({0})
    sink = Memory()
    return Pipeline(settings, sink, clock=lambda: T0, checkpoints=checkpoints), sink


def feed(pipe: Pipeline, records, every: int) -> None:
    async def go():
        for i in range(0, len(records), every):
            await pipe.process(records[i : i + every])

    asyncio.run(go())


def fits(*sinks: Memory) -> dict[tuple[str, int], dict]:
    """Every fit published, by its id; a fit published again must be the same message."""
    out: dict[tuple[str, int], dict] = {}
    for sink in sinks:
        for _, v in sink.sent.get("t.params", []):
            p = decode(v, Params)
            assert out.setdefault((p.key, p.record_seq), strip(p)) == strip(p)
    return out


@pytest.mark.parametrize(
    ("cut", "again", "every"),
    [(1500, 0, 0.0), (1500, 700, 0.0), (4000, 1, 0.0), (6200, 3000, 60.0)],
)
def test_a_pipeline_resumed_from_a_checkpoint_goes_on_bit_for_bit(tmp_path, cut, again, every):
    """``cut``: messages the first pipeline took before it stopped; ``again``: how many
    before its checkpoint's offset the group had not committed (delivered again to the
    resumed one); ``every``: seconds between checkpoints (60: the first batch's only)."""
    quotes = list(read_ticks(TICKS))
    records = [Record(encode(q), "t.quotes", 0, i, T0) for i, q in enumerate(quotes)]
    whole, whole_sink = pipeline(tmp_path / "whole")
    feed(whole, records, 97)
    first, first_sink = pipeline(tmp_path / "resumed", every)
    feed(first, records[:cut], 97)
    checkpoint = first.checkpoints.read()
    kept = checkpoint.offsets[0]
    assert kept == (cut if every == 0 else 97)  # the checkpoint's, not the last batch's
    committed = max(kept - again, 0)
    resumed, resumed_sink = pipeline(tmp_path / "resumed", every)
    end = {0: len(records)}
    assert checkpoint.resumable("t.quotes", {0}, {0: committed}, end) is None
    assert "committed past it" in checkpoint.resumable("t.quotes", {0}, {0: kept + 1}, end)
    both = {0: 0, 1: 0}
    assert "covers partitions [0]" in checkpoint.resumable("t.quotes", {0, 1}, both, both)
    made_again = checkpoint.resumable("t.quotes", {0}, {0: None}, {0: kept - 1})
    assert "the topic ends before it" in made_again  # same name, another topic
    resumed.restore(checkpoint)
    feed(resumed, records[committed:], 89)  # cut in other batches: epochs decide, not batches
    assert fits(first_sink, resumed_sink) == fits(whole_sink)
    assert first_sink.sent["t.params"] and resumed_sink.sent["t.params"]
