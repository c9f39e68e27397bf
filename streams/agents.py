"""The quotes agent: micro-batches raw records into the pipeline. No numerics here."""

from __future__ import annotations

import logging
import time

from streams import topics
from streams.app import app, settings
from streams.pipeline import Pipeline, Record

__all__ = ["calibrate_quotes", "pipeline"]

log = logging.getLogger(__name__)


class _FaustSink:
    """Send through the app's producer; the returned future resolves on delivery."""

    def __init__(self) -> None:
        outputs = (topics.params, topics.alerts, topics.dlq, topics.state)
        self.by_name = {t.get_topic_name(): t for t in outputs}

    async def send(self, topic: str, key: bytes, value: bytes):
        return await self.by_name[topic].send(key=key, value=value)


pipeline = Pipeline(settings, _FaustSink())


# concurrency 1: with more, faust could commit offsets past batches still being calibrated
@app.agent(topics.quotes, concurrency=1)
async def calibrate_quotes(stream) -> None:
    async for events in stream.take_events(settings.batch_max, within=settings.batch_within):
        received = time.time()
        await pipeline.process(
            [
                Record(e.value, e.message.topic, e.message.partition, e.message.offset, received)
                for e in events
            ]
        )


@app.timer(interval=10.0)
async def report_counters() -> None:
    c = pipeline.counters
    log.info(
        "ticks %d, rejected %s, calibrations %d (flagged %d), alerts %d, errors %d",
        c.ticks,
        dict(c.rejected),
        c.calibrations,
        c.flagged,
        c.alerts,
        c.errors,
    )
