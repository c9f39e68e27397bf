"""From a micro-batch of raw quote messages to published parameters, alerts and dead letters.

The agent hands each batch of raw records here. A record holds a quote, a
:class:`schemas.QuoteBatch` of them, or :class:`schemas.QuoteColumns`; every quote (every row)
is validated on its own, and a bad one becomes a :class:`schemas.DeadLetter` with its reason
(and a row's index and field) and is counted, never raised. Good
quotes update the rolling surfaces; the snapshots they trigger are calibrated together
(:class:`streams.scheduler.Calibrations` batches them by warm epoch) on a single executor
thread, off the event loop. Each result is published as :class:`schemas.Params` (flagged, never
as good, when it failed) with its alerts, then each calibrated smile's warm-start state. ``process`` returns only once every message it
sent is delivered, so the offsets the agent then commits never run ahead of published work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Protocol

import msgpack

from alerts import History, evaluate
from schemas import (
    DEAD_LETTER_KEEP,
    Alert,
    DeadLetter,
    Params,
    Quote,
    QuoteBatch,
    QuoteColumns,
    SchemaError,
    decode,
    encode,
)
from streams.metrics import WorkerMetrics
from streams.scheduler import Calibrations, Snapshot
from streams.settings import Settings
from streams.surface import SurfaceBook

__all__ = ["Counters", "Pipeline", "Record", "Sink"]

log = logging.getLogger(__name__)


class Record(NamedTuple):
    """One consumed message, with where it came from and when the worker got it."""

    value: bytes
    topic: str
    partition: int
    offset: int
    received_at: float


class Sink(Protocol):
    async def send(self, topic: str, key: bytes, value: bytes) -> Awaitable: ...


@dataclass
class Counters:
    ticks: int = 0
    rejected: Counter = field(default_factory=Counter)
    calibrations: int = 0
    flagged: int = 0
    alerts: int = 0
    errors: int = 0


def _quotes(value: bytes) -> Iterator[tuple[bytes, Quote | None, SchemaError | None]]:
    """The quotes of one record (a quote, each item of a batch, or each row of columns), or
    why each is refused: a bad row of columns as a one-row message of its own, with its row
    index and field."""
    try:
        message = decode(value)
        if not isinstance(message, (Quote, QuoteBatch, QuoteColumns)):
            raise SchemaError(
                "unknown_type",
                f"expected a quote, quote_batch or quote_columns, got {message.TYPE}",
            )
    except SchemaError as exc:
        yield value, None, exc
        return
    if isinstance(message, Quote):
        yield value, message, None
        return
    if isinstance(message, QuoteColumns):
        valid, problems = message.problems()
        good = iter(message.quotes(valid))
        bad = {p.row: p for p in problems}
        for row in range(message.n):
            if row in bad:
                yield encode(message.take([row])), None, bad[row].error()
            else:
                yield b"", next(good), None
        return
    for i, item in enumerate(message.items):
        try:
            yield item, decode(item, Quote), None
        except SchemaError as exc:
            yield item, None, SchemaError(exc.reason, f"item {i} of a quote batch: {exc.detail}")


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        *,
        calibrations: Calibrations | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.clock = clock
        self.book = SurfaceBook(settings.surface)
        self.calibrations = calibrations or Calibrations(
            betas=settings.betas,
            default_beta=settings.default_beta,
            warm_epoch=settings.warm_epoch,
        )
        self.history = History()
        self.counters = Counters()
        self.metrics = WorkerMetrics(lambda: (self.counters, len(self.book)))
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="calibrate")

    def rebuild(self, values: Iterable[bytes]) -> set[str]:
        """Take in quote messages another worker already processed (a takeover's read-back):
        the surfaces update as they did there, but nothing is calibrated, published or
        counted, and bad messages, already dead-lettered, are skipped. Returns the
        underlyings seen."""
        seen: set[str] = set()
        for value in values:
            for _, quote, _ in _quotes(value):
                if quote is not None:
                    self.book.on_quote(quote, 0.0)
                    seen.add(quote.underlying)
        return seen

    async def process(self, records: Sequence[Record]) -> None:
        start = time.perf_counter()
        deliveries: list[Awaitable] = []
        snapshots: list[Snapshot] = []
        for record in records:
            for value, quote, problem in _quotes(record.value):
                self.counters.ticks += 1
                if problem is not None:
                    deliveries.append(await self._dead_letter(record, value, problem))
                    continue
                snap = self.book.on_quote(quote, record.received_at)
                if snap is not None:
                    snapshots.append(snap)
        if snapshots:
            deliveries.extend(await self._calibrate(snapshots))
        await asyncio.gather(*deliveries)
        self.metrics.batch_seconds.observe(time.perf_counter() - start)
        self.metrics.batch_messages.observe(len(records))

    async def _calibrate(self, snapshots: list[Snapshot]) -> list[Awaitable]:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.calibrations.run, snapshots)
        except Exception as exc:  # a bug must not stop the stream: say so loudly instead
            log.exception("calibration of %d smiles failed", len(snapshots))
            self.counters.errors += 1
            return await self._error_alerts(snapshots, exc)
        sent = []
        for params in results:
            sent.extend(await self._publish(params))
        # the state topic is compacted: the latest state of each smile in this batch suffices
        for key in dict.fromkeys(p.key for p in results):
            value = msgpack.packb(self.calibrations.record(key))
            sent.append(await self.sink.send(self.settings.topics["state"], key.encode(), value))
        return sent

    async def _publish(self, params: Params) -> list[Awaitable]:
        params = replace(params, published_at=self.clock())
        key = params.key.encode()
        self.counters.calibrations += 1
        self.counters.flagged += not params.good
        self.metrics.latency.labels(params.model).observe(params.published_at - params.received_at)
        sent = [await self.sink.send(self.settings.topics["params"], key, encode(params))]
        found, self.history = evaluate(self.history, params, params.published_at)
        for alert in found:
            sent.append(await self.sink.send(self.settings.topics["alerts"], key, encode(alert)))
        self.counters.alerts += len(found)
        return sent

    async def _dead_letter(self, record: Record, value: bytes, exc: SchemaError) -> Awaitable:
        self.counters.rejected[exc.reason] += 1
        letter = DeadLetter(
            ts=self.clock(),
            reason=exc.reason,
            detail=exc.detail,
            original=bytes(value[:DEAD_LETTER_KEEP]),
            original_size=len(value),
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        return await self.sink.send(
            self.settings.topics["dlq"], exc.reason.encode(), encode(letter)
        )

    async def _error_alerts(self, snapshots: list[Snapshot], exc: Exception) -> list[Awaitable]:
        now = self.clock()
        return [
            await self.sink.send(
                self.settings.topics["alerts"],
                s.key.encode(),
                encode(
                    Alert(
                        now,
                        "critical",
                        "calibration_error",
                        s.key.replace("|", " "),
                        f"calibration raised {type(exc).__name__}: {exc}"[:2000],
                        {},
                    )
                ),
            )
            for s in {s.key: s for s in snapshots}.values()
        ]
