"""From a micro-batch of raw quote messages to published parameters, alerts and dead letters.

The agent hands each batch of raw records here. A record holds :class:`schemas.QuoteColumns`,
a :class:`schemas.QuoteBatch` or a single :class:`schemas.Quote`; every row is validated, and a
bad one becomes a :class:`schemas.DeadLetter` with its reason (and a row's index and field) and
is counted, never raised. Good rows go to the book (:mod:`streams.book.surfaces`) as columns,
partition by partition in their order (single quotes in a row are gathered into one set of
columns first); the epochs they close yield snapshots, calibrated together on one executor
thread, off the event loop (:class:`streams.book.calibrations.Calibrations`). Each result is
published as :class:`schemas.Params` (flagged, never as good, when it failed) with its alerts,
then each calibrated smile's warm state, every topic's messages in batches. ``process`` returns
only once every message it sent is delivered, so the offsets the agent then commits never run
ahead of published work.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np

from alerts import History, evaluate
from schemas import (
    DEAD_LETTER_KEEP,
    Alert,
    DeadLetter,
    JobResult,
    Quote,
    QuoteBatch,
    QuoteColumns,
    SchemaError,
    decode,
    encode,
)
from streams.book.calibrations import Calibrations
from streams.book.state import state_message
from streams.book.surfaces import Snapshot, SurfaceBook
from streams.settings import Settings
from streams.worker.jobs import run_on_book
from streams.worker.metrics import WorkerMetrics

__all__ = ["Counters", "Pipeline", "Record", "Sink"]

log = logging.getLogger(__name__)

Messages = list[tuple[bytes, bytes]]  # (key, value) pairs for one topic


class Record(NamedTuple):
    """One consumed message, with where it came from and when the worker got it."""

    value: bytes
    topic: str
    partition: int
    offset: int
    received_at: float


class Sink(Protocol):
    async def send_many(self, topic: str, messages: Messages) -> list[Awaitable]:
        """Queue ``messages`` on ``topic``; the awaitables resolve on delivery."""
        ...


@dataclass
class Counters:
    ticks: int = 0
    rejected: Counter = field(default_factory=Counter)
    calibrations: int = 0
    flagged: int = 0
    alerts: int = 0
    errors: int = 0
    runbooks: Counter = field(default_factory=Counter)  # the step that fixed a failed fit
    jobs: Counter = field(default_factory=Counter)  # (job, good, flagged or skipped) -> count


class _Read(NamedTuple):
    """What one record holds: its rows as columns (not checked yet) or its single quotes, its
    refused parts with why, and how many ticks it carried."""

    columns: QuoteColumns | None
    singles: list[Quote]
    refused: list[tuple[bytes, SchemaError]]
    ticks: int


def _read(value: bytes) -> _Read:
    try:
        message = decode(value)
        if not isinstance(message, (Quote, QuoteBatch, QuoteColumns)):
            raise SchemaError(
                "unknown_type",
                f"expected a quote, quote_batch or quote_columns, got {message.TYPE}",
            )
    except SchemaError as exc:
        return _Read(None, [], [(value, exc)], 1)
    if isinstance(message, Quote):
        return _Read(None, [message], [], 1)
    if isinstance(message, QuoteColumns):
        return _Read(message, [], [], message.n)
    singles, refused = [], []
    for i, item in enumerate(message.items):
        try:
            singles.append(decode(item, Quote))
        except SchemaError as exc:
            refused.append(
                (item, SchemaError(exc.reason, f"item {i} of a quote batch: {exc.detail}"))
            )
    return _Read(None, singles, refused, len(message.items))


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
            betas=settings.betas, default_beta=settings.default_beta, clock=clock
        )
        self.history = History()
        self.counters = Counters()
        self.metrics = WorkerMetrics(lambda: (self.counters, len(self.book)))
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="calibrate")
        # failed fits walk the runbook on a thread of their own, never holding the stream up
        self.runbooks = ThreadPoolExecutor(1, thread_name_prefix="runbook")
        # scheduled playbook jobs (minutes for model selection) on a thread of their own too
        self.jobs = ThreadPoolExecutor(1, thread_name_prefix="playbook-job")
        self._jobs: dict[str, asyncio.Task] = {}  # job -> its run in flight (kept alive here)
        self._runbooks: dict[str, asyncio.Future] = {}  # key -> its runbook in flight
        self._runbook_at: dict[str, float] = {}  # key -> when its last runbook started
        self._last_seen: dict[int, float] = {}  # partition -> wall time of its latest message
        self._tail: asyncio.Future | None = None  # the last batch's calibration and delivery

    def _ingest(
        self, records: Iterable[Record], counted: bool, seen: set[str] | None = None
    ) -> tuple[list[Snapshot], list]:
        """The snapshots ``records`` close, and their refused parts (with their record); the
        underlyings of their good quotes are added to ``seen``.

        Each partition's rows are checked and taken into the book together, in their order:
        a busy live stream sends small messages (a few rows of one underlying every few ms),
        and per message the checks and the book cost ~1 ms of numpy calls whatever the rows."""
        refused: list[tuple[Record, bytes, SchemaError]] = []
        parts: dict[int, list[tuple[Record, QuoteColumns]]] = {}  # per partition, in order
        singles: dict[int, tuple[Record, list[Quote]]] = {}  # the run of single quotes

        def gathered(partition: int) -> None:
            record, quotes = singles.pop(partition, (None, []))
            if quotes:
                parts.setdefault(partition, []).append((record, QuoteColumns.from_quotes(quotes)))

        for record in records:
            read = _read(record.value)
            if counted:
                self.counters.ticks += read.ticks
            refused += [(record, value, exc) for value, exc in read.refused]
            if read.singles:
                singles.setdefault(record.partition, (record, []))[1].extend(read.singles)
            if read.columns is not None and read.columns.n:
                gathered(record.partition)  # in order: the single quotes before these first
                parts.setdefault(record.partition, []).append((record, read.columns))
        for partition in list(singles):
            gathered(partition)
        snaps: list[Snapshot] = []
        for partition, mine in parts.items():
            rows = QuoteColumns.concat([columns for _, columns in mine])
            valid, problems = rows.problems()
            if problems:
                starts = np.cumsum([0] + [columns.n for _, columns in mine])
                for problem in problems:
                    k = int(np.searchsorted(starts, problem.row, side="right")) - 1
                    record, columns = mine[k]
                    alone = problem._replace(row=problem.row - int(starts[k]))
                    refused.append((record, encode(columns.take([alone.row])), alone.error()))
                rows = rows.take(valid)
            if not rows.n:
                continue
            snaps += self.book.ingest(rows, partition, mine[0][0].received_at)
            if seen is not None:
                names = rows.text["underlying"]
                seen.update(names.values[i] for i in np.unique(names.codes).tolist())
        return snaps, refused

    def rebuild(self, records: Iterable[Record]) -> set[str]:
        """Take in quote messages another worker already processed (a takeover's read-back):
        the book updates as it did there, but nothing is calibrated, published or counted,
        and bad messages, already dead-lettered, are skipped. Returns the underlyings
        seen."""
        seen: set[str] = set()
        self._ingest(records, counted=False, seen=seen)
        return seen

    async def process(self, records: Sequence[Record]) -> None:
        """:meth:`submit` ``records`` and wait until all they produced is delivered."""
        await (await self.submit(records))

    async def submit(self, records: Sequence[Record]) -> asyncio.Future:
        """Take ``records`` into the book now; calibrate the snapshots they close once the
        batches before them are calibrated (the warm-start chain), off the event loop.
        Returns a future done when everything this batch produced is delivered: the book
        takes the next batch in while this one calibrates."""
        start = time.perf_counter()
        for record in records:
            self._last_seen[record.partition] = record.received_at
        snaps, refused = self._ingest(records, counted=True)
        deliveries = await self._dead_letters(refused)
        self._tail = asyncio.ensure_future(
            self._finish(self._tail, snaps, deliveries, start, len(records))
        )
        return self._tail

    async def _finish(self, before, snaps, deliveries, start: float, messages: int) -> None:
        if before is not None:
            await before
        if snaps:
            deliveries = deliveries + await self._calibrate(snaps)
        await asyncio.gather(*deliveries)
        if messages:  # a batch of messages, not an idle flush
            self.metrics.batch_seconds.observe(time.perf_counter() - start)
            self.metrics.batch_messages.observe(messages)

    async def flush_idle(self, quiet: float) -> None:
        """Close the open epoch of every partition without a message for ``quiet`` seconds
        (wall clock): a stream gone quiet still gets its last quotes calibrated. A batch still
        in progress means the stream is not quiet: nothing to do then."""
        if self._tail is not None and not self._tail.done():
            return
        now = self.clock()
        snaps = [
            snap
            for p, seen in sorted(self._last_seen.items())
            if now - seen >= quiet
            for snap in self.book.flush(p)
        ]
        if snaps:
            self._tail = asyncio.ensure_future(
                self._finish(None, snaps, [], time.perf_counter(), 0)
            )
            await self._tail

    async def _calibrate(self, snapshots: list[Snapshot]) -> list[Awaitable]:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.calibrations.run, snapshots)
        except Exception as exc:  # a bug must not stop the stream: say so loudly instead
            log.exception("calibration of %d smiles failed", len(snapshots))
            self.counters.errors += 1
            return await self._error_alerts(snapshots, exc)
        now = self.clock()
        cooldown = self.settings.runbook_cooldown
        for snap, message in zip(snapshots, results):
            key = message.key
            due = now - self._runbook_at.get(key, -math.inf) >= cooldown
            if cooldown > 0 and not message.good and key not in self._runbooks and due:
                self._runbook_at[key] = now
                self._runbooks[key] = asyncio.ensure_future(self._runbook(snap))
        quotes = [(s.strikes, s.vols) for s in snapshots]  # the drift diagnosis: what moved
        found, self.history = evaluate(self.history, results, now, quotes)
        params, alerts = [], []
        for message, raised in zip(results, found):
            key = message.key.encode()
            params.append((key, encode(message)))
            self.counters.calibrations += 1
            self.counters.flagged += not message.good
            self.metrics.latency.labels(message.model).observe(now - message.received_at)
            alerts += [(key, encode(alert)) for alert in raised]
        self.counters.alerts += len(alerts)
        topics = self.settings.topics
        # the state topic is compacted: the latest state of each smile in this batch suffices
        states = [
            state_message(key, self.calibrations.state[key])
            for key in dict.fromkeys(p.key for p in results)
        ]
        sent = await self.sink.send_many(topics["params"], params)
        sent += await self.sink.send_many(topics["alerts"], alerts)
        return sent + await self.sink.send_many(topics["state"], states)

    async def _runbook(self, snap: Snapshot) -> None:
        """The failure runbook on a snapshot whose fit failed: an alert says which step
        worked (``info``, with the fix's parameters as ``fit.NAME`` figures and its
        ``runbook_step``) or that none did (``critical``: escalate). The params topic keeps
        exactly one result per snapshot, a pure function of the quotes (replays are
        bit-identical): the fix is advice to operators there, never a second result. Its
        delivery is not awaited by any batch."""
        loop = asyncio.get_running_loop()
        try:
            message, outcome = await loop.run_in_executor(
                self.runbooks, self.calibrations.runbook, snap
            )
        except Exception:  # a bug must not stop the stream
            log.exception("the runbook on %s raised", snap.key)
            self.counters.errors += 1
            return
        finally:
            self._runbooks.pop(snap.key, None)
        self.counters.runbooks[outcome.step or "escalated"] += 1
        alert = Alert(
            self.clock(),
            "critical" if outcome.escalate else "info",
            "runbook",
            message.subject,
            outcome.summary()[:2000],
            {"step": float(outcome.step_index), "attempts": float(len(outcome.attempts))}
            | {f"fit.{n}": v for n, v in message.params.items() if not outcome.escalate},
        )
        key = message.key.encode()
        alerts = [(key, encode(alert))]
        self.counters.alerts += 1
        await asyncio.gather(*await self.sink.send_many(self.settings.topics["alerts"], alerts))

    def start_playbook_jobs(self, jobs: Iterable[str]) -> list[asyncio.Task]:
        """Start each of ``jobs`` (:meth:`run_playbook_job`) in the background: the stream
        never waits for them (they queue on the jobs thread, one at a time). A job whose
        previous run is still going is skipped, counted and logged, so a schedule faster
        than the job cannot pile runs up."""
        tasks = []
        for job in jobs:
            if job in self._jobs:
                self.counters.jobs[(job, "skipped")] += 1
                log.warning("playbook job %s is due but its last run is still going: skipped", job)
                continue
            task = self._jobs[job] = asyncio.ensure_future(self.run_playbook_job(job))
            task.add_done_callback(lambda _, job=job: self._jobs.pop(job, None))
            tasks.append(task)
        return tasks

    async def run_playbook_job(self, job: str) -> list[JobResult]:
        """Run playbook ``job`` on the book's current surfaces (read here, on the loop; fitted
        on the jobs thread) and publish each finding to the jobs topic, a flagged one with a
        ``job`` alert. Returns the findings."""
        snapshots, now = self.book.current(), self.clock()
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self.jobs, run_on_book, job, snapshots, now)
        alerts = []
        for r in results:
            self.counters.jobs[(r.job, "good" if r.good else "flagged")] += 1
            if not r.good:
                failed = ", ".join(r.failed) or "see the finding"
                alerts.append(
                    (r.key.encode(), encode(Alert(now, "warning", "job", r.subject,
                     f"{r.title}: flagged ({failed})"[:2000], {})))
                )  # fmt: skip
        topics = self.settings.topics
        sent = await self.sink.send_many(
            topics["jobs"], [(r.key.encode(), encode(r)) for r in results]
        )
        sent += await self.sink.send_many(topics["alerts"], alerts) if alerts else []
        self.counters.alerts += len(alerts)
        await asyncio.gather(*sent)
        return results

    async def runbooks_done(self) -> None:
        """Wait for every runbook in flight (tests, and a worker that stops)."""
        while self._runbooks:
            await asyncio.gather(*self._runbooks.values(), return_exceptions=True)

    async def _dead_letters(self, refused: list[tuple[Record, bytes, SchemaError]]):
        letters = []
        for record, value, exc in refused:
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
            letters.append((exc.reason.encode(), encode(letter)))
        return await self.sink.send_many(self.settings.topics["dlq"], letters) if letters else []

    async def _error_alerts(self, snapshots: list[Snapshot], exc: Exception) -> list[Awaitable]:
        now = self.clock()
        alerts = [
            (
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
        return await self.sink.send_many(self.settings.topics["alerts"], alerts)
