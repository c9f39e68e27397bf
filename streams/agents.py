"""The quotes agent: greedy micro-batches of raw records into the pipeline. No numerics here."""

from __future__ import annotations

import logging
import time

from faust.types import EventT

from streams import topics
from streams.app import app, settings
from streams.pipeline import Pipeline, Record
from streams.recovery import take_over

__all__ = ["calibrate_quotes", "pipeline"]

log = logging.getLogger(__name__)


class _ProducerSink:
    """Send straight through the app's producer: the returned future resolves on delivery.

    ``Topic.send`` would wrap every message in faust's FutureMessage and buffer machinery,
    which cost more than the calibration per message in ``bench/stream.py``."""

    async def send(self, topic: str, key: bytes, value: bytes):
        return await app.producer.send(
            topic, key, value, partition=None, timestamp=None, headers=None
        )


pipeline = Pipeline(settings, _ProducerSink())
_owned: set[int] = set()  # quote partitions this worker holds


@app.on_partitions_assigned.connect
async def take_over_partitions(sender, assigned, **kwargs) -> None:
    """Rebuild the surfaces and warm starts of quote partitions new to this worker before the
    agent resumes them (see :mod:`streams.recovery`)."""
    mine = {tp.partition for tp in assigned if tp.topic == settings.topics["quotes"]}
    new = mine - _owned
    _owned.clear()
    _owned.update(mine)
    if new:
        restored = await take_over(pipeline, settings, new)
        log.warning("took over quote partitions %s: rebuilt %s", sorted(new), sorted(restored))


# concurrency 1: with more, faust could commit offsets past batches still being calibrated
@app.agent(topics.quotes, concurrency=1)
async def calibrate_quotes(stream) -> None:
    """Greedy micro-batches: a batch is every message waiting when the pipeline is free.

    There is no fixed wait: a quiet stream is processed as soon as a message arrives, and a
    worker that fell behind catches up in larger batches, whose fixed costs are shared. (faust's
    ``take_events(max, within)`` waited ``within`` after every batch and took only what its
    per-event machinery moved in that time: on a busy machine less than 5,000 ticks/s, so a
    worker once behind stayed behind, seconds late in ``bench/stream.py``.) Messages are acked
    by hand, after everything their batch produced is delivered, so commits never run ahead.
    """
    manual = stream.noack()
    waiting = manual.channel.queue  # messages delivered to this agent, not yet taken
    events: list[EventT] = []
    async for event in manual.events():
        events.append(event)
        if waiting.qsize() and len(events) < settings.batch_max:
            continue
        received = time.time()
        await pipeline.process(
            [
                Record(e.value, e.message.topic, e.message.partition, e.message.offset, received)
                for e in events
            ]
        )
        for e in events:
            await manual.ack(e)
        events.clear()


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
