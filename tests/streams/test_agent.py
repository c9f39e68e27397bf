"""The quotes agent under faust's own test harness: no broker, the real app and pipeline."""

import asyncio

from schemas import DeadLetter, Params, QuoteColumns, decode, encode
from streams.book.surfaces import SurfaceConfig
from streams.feed.simulate import TickSimulator
from streams.settings import Settings
from streams.worker.agent import attach
from streams.worker.app import build_app
from streams.worker.pipeline import Pipeline
from tests.streams.memory import Memory
from tests.streams.watermarks import assert_watermarks_reflect

T0 = 1.795e9


def test_the_agent_batches_messages_into_the_pipeline_and_dead_letters_bad_ones(tmp_path):
    # a fit with news every 50 ms of event time: many batches, each with its fits
    surface = SurfaceConfig(max_age=0.05, min_interval=0.0)
    settings = Settings(topic_prefix="t", state_dir=tmp_path, partitions=1, surface=surface)
    app = build_app(settings)
    sink = Memory()
    pipeline = attach(app, settings, Pipeline(settings, sink))
    quotes = list(TickSimulator(pairs=1, tenors=(91,), seed=3).ticks(T0, rate=100, count=60))
    messages = [encode(QuoteColumns.from_quotes(quotes[i : i + 15])) for i in range(0, 75, 15)]

    async def drive() -> None:
        async with pipeline.agent.test_context() as agent:
            for i, value in enumerate(messages):
                await agent.put(value, key=b"EURUSD", partition=0)
                if i == 2:
                    await agent.put(b"\xc1junk", key=b"EURUSD", partition=0)
        await pipeline.settle()  # the harness leaves with the last batch still calibrating
        await pipeline.flush_idle(0.0)

    asyncio.run(drive())
    assert pipeline.counters.ticks == 76 and pipeline.counters.rejected == {"not_msgpack": 1}
    (letter,) = [decode(v, DeadLetter) for _, v in sink.sent["t.dlq"]]
    assert letter.topic == "t.quotes" and letter.original == b"\xc1junk"
    params = [decode(v, Params) for _, v in sink.sent["t.params"]]
    assert len(params) >= 5 and all(p.good for p in params)
    assert sorted(p.window_end for p in params) == [p.window_end for p in params]
    assert assert_watermarks_reflect({0: quotes}, sink.log, surface) == len(quotes)
