"""The quotes agent: greedy micro-batches of raw records into the pipeline. No numerics here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable

import faust
from aiokafka.partitioner import DefaultPartitioner
from faust.types import EventT

from streams.settings import Settings
from streams.worker.app import declare_topics
from streams.worker.approvals import follow_decisions
from streams.worker.checkpoint import Checkpoints
from streams.worker.jobs import JobClock
from streams.worker.pipeline import Messages, Pipeline, Record
from streams.worker.takeover import resume, take_over

__all__ = ["ProducerSink", "attach"]

log = logging.getLogger(__name__)

JOB_CHECK_SECONDS = 1.0  # how often the worker looks for due playbook jobs (a dict lookup)
HEALTH_CHECK_SECONDS = 1.0  # how often the stream's health rules look at lags and stale keys


class ProducerSink:
    """Send through the app's producer, a record batch per topic partition.

    ``Topic.send`` wraps every message in faust's FutureMessage and buffer machinery, and even
    aiokafka's ``send()`` costs ~15 us a message; ``create_batch``/``send_batch`` ~2 us (the
    issue measured 68k against 461k messages/s), so an epoch's parameters go out as batches.
    Keys are partitioned as ``send()`` would (Kafka's murmur2 default), so a smile's messages
    keep one partition and their order."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._partitioner = DefaultPartitioner()

    async def send_many(self, topic: str, messages: Messages) -> list[Awaitable]:
        if not messages:
            return []
        producer = self.app.producer._ensure_producer()  # faust's aiokafka producer
        partitions = sorted(await producer.partitions_for(topic))
        by_partition: dict[int, Messages] = {}
        for key, value in messages:
            p = self._partitioner(key, partitions, partitions)
            by_partition.setdefault(p, []).append((key, value))
        sent = []
        for partition, items in by_partition.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full
                    sent.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            sent.append(await producer.send_batch(batch, topic, partition=partition))
        return sent


async def _ack_when(done: asyncio.Future, stream, events: list[EventT]) -> None:
    """Ack ``events`` once their batch's results are delivered (batches finish in order)."""
    await done
    for e in events:
        await stream.ack(e)


def attach(app: faust.App, settings: Settings, pipeline: Pipeline | None = None) -> Pipeline:
    """Declare the topics on ``app`` and register the quotes agent, the takeover of assigned
    partitions and the handover of revoked ones, the idle flush, the scheduled playbook jobs,
    the stream's health rules, the approvers' decisions (with approvals on) and the counters'
    log line; returns the pipeline they feed."""
    topics = declare_topics(app, settings)
    checkpoints = Checkpoints(settings) if settings.checkpoint else None
    pipeline = pipeline or Pipeline(settings, ProducerSink(app), checkpoints=checkpoints)
    owned: set[int] = set()  # quote partitions this worker holds
    first = True  # no quote partitions given to this worker yet

    async def take_over_partitions(sender, assigned, **kwargs) -> None:
        """Resume from this worker's checkpoint at its first assignment, or rebuild the
        surfaces and warm starts of quote partitions new to this worker, before the agent
        resumes them (see :mod:`streams.worker.checkpoint`, :mod:`streams.worker.takeover`)."""
        nonlocal first
        mine = {tp.partition for tp in assigned if tp.topic == settings.topics["quotes"]}
        new = mine - owned
        owned.clear()
        owned.update(mine)
        if pipeline.checkpoints is not None:
            pipeline.checkpoints.partitions = frozenset(mine)
        if not new:
            pipeline.release()
            return
        pipeline.hold()
        try:
            await pipeline.settle()
            resumed = first and await resume(pipeline, settings, mine)
            first = False
            if not resumed:
                restored = await take_over(pipeline, settings, new)
                log.warning(
                    "took over quote partitions %s: rebuilt %s", sorted(new), sorted(restored)
                )
        finally:
            pipeline.release()

    app.on_partitions_assigned.connect(take_over_partitions, weak=False)

    async def hand_over_partitions(sender, revoked, **kwargs) -> None:
        """Finish the batch in flight and write the health histories before the partitions
        go (see :meth:`Pipeline.hand_over`)."""
        if any(tp.topic == settings.topics["quotes"] for tp in revoked):
            await pipeline.hand_over()

    app.on_partitions_revoked.connect(hand_over_partitions, weak=False)

    async def hand_over_all(sender, **kwargs) -> None:
        """A stop: faust has paused the partitions but not yet left the group (it does not
        signal their revocation then): hand them over before the next owner reads."""
        await pipeline.hand_over(last=True)

    app.on_before_shutdown.connect(hand_over_all, weak=False)

    # concurrency 1: with more, faust could commit offsets past batches still being calibrated
    @app.agent(topics["quotes"], concurrency=1, name="volstream.calibrate_quotes")
    async def calibrate_quotes(stream) -> None:
        """Greedy micro-batches: a batch is every message waiting when the pipeline is free.

        There is no fixed wait: a quiet stream is processed as soon as a message arrives, and
        a worker that fell behind catches up in larger batches, whose fixed costs are shared.
        (faust's ``take_events(max, within)`` waited ``within`` after every batch and took only
        what its per-event machinery moved in that time.) While one batch calibrates (on the
        executor thread) the next is taken into the book: two in flight at most. Messages are
        acked by hand, after everything their batch produced is delivered, so commits never
        run ahead.
        """
        manual = stream.noack()
        waiting = manual.channel.queue  # messages delivered to this agent, not yet taken
        events: list[EventT] = []
        in_flight: deque[asyncio.Future] = deque()  # batches still calibrating or delivering
        acking: set[asyncio.Task] = set()  # acks waiting for a checkpoint to hold their batch
        async for event in manual.events():
            events.append(event)
            if waiting.qsize() and len(events) < settings.batch_max:
                continue
            received = time.time()
            delivered, kept = await pipeline.submit(
                [
                    Record(
                        e.value, e.message.topic, e.message.partition, e.message.offset, received
                    )
                    for e in events
                ]
            )
            ack = asyncio.ensure_future(_ack_when(kept, manual, events))
            acking.add(ack)
            ack.add_done_callback(acking.discard)
            in_flight.append(delivered)
            events = []
            for done in [a for a in acking if a.done()]:
                done.result()  # a batch that failed stops the agent, as before
            while in_flight and in_flight[0].done():
                in_flight.popleft().result()
            if len(in_flight) >= 2:  # one batch calibrating, one taken in: wait for the first
                # its delivery (the ack may wait for a checkpoint); shielded: the agent's own
                # cancellation (a rebalance, a stop) never cancels the pipeline's batch
                await asyncio.shield(in_flight.popleft())

    @app.timer(interval=settings.linger / 2, name="volstream.flush_idle")
    async def flush_idle() -> None:
        """Calibrate the open epoch of partitions quiet for ``linger`` seconds."""
        await pipeline.flush_idle(settings.linger)

    clock = JobClock(settings.jobs, time.time())

    @app.timer(interval=JOB_CHECK_SECONDS, name="volstream.playbook_jobs")
    async def playbook_jobs() -> None:
        """Start the playbook jobs whose scheduled time has come (VOLSTREAM_JOBS)."""
        pipeline.jobs.start(clock.due(time.time()))

    checking: set[asyncio.Future] = set()

    @app.timer(interval=HEALTH_CHECK_SECONDS, name="volstream.stream_health")
    async def stream_health() -> None:
        """The stream's health rules: watermark lag, unread quotes, stale keys. One check at a
        time, beside the timer: a busy worker's check waits for the book's thread behind a long
        batch (18 s with 50,000 smiles), and the next second's is skipped, not queued."""
        if checking:
            return
        quotes, consumer = settings.topics["quotes"], app.consumer
        try:
            ends = {tp.partition: consumer.highwater(tp) for tp in consumer.assignment()
                    if tp.topic == quotes}  # fmt: skip
        except Exception as exc:  # a rebalance in progress: the lag is judged next time
            log.info("consumer lag not read: %s", exc)
            ends = {}
        check = asyncio.ensure_future(
            pipeline.check_stream({p: e for p, e in ends.items() if e is not None})
        )
        checking.add(check)
        check.add_done_callback(_checked)

    def _checked(check: asyncio.Future) -> None:
        checking.discard(check)
        if not check.cancelled() and check.exception() is not None:
            log.error("the stream's health check failed", exc_info=check.exception())

    if settings.approvals:

        @app.task
        async def follow_approvals() -> None:
            """Approvers' decisions, as they come: the key's owner applies them."""
            await follow_decisions(settings, pipeline.decide)

    @app.timer(interval=10.0, name="volstream.report_counters")
    async def report_counters() -> None:
        c = pipeline.counters
        log.info(
            "ticks %d (%d out of tolerance), rejected %s, calibrations %d (flagged %d), "
            "alerts %d, errors %d",
            c.ticks,
            c.out_of_tolerance,
            dict(c.rejected),
            c.calibrations,
            c.flagged,
            c.alerts,
            c.errors,
        )

    pipeline.agent = calibrate_quotes  # type: ignore[attr-defined]
    return pipeline
