"""From a micro-batch of raw quote messages to published parameters, alerts, dead letters and
watermarks: the worker's one path, its jobs each in a home of its own.

1. decode and check (:mod:`streams.worker.decode`, on the event loop); a refused part becomes
   a :class:`schemas.DeadLetter` with its reason (and a row's index and field), counted;
2. the book and its calibrations in tick order (:class:`streams.book.tracker.Tracker`, on one
   executor thread: the loop takes the next batch in meanwhile);
3. each result published as :class:`schemas.Params` (flagged, never as good, when it failed),
   with its health alerts (:mod:`alerts`) and the smiles' warm state; a failed fit walks the
   runbook (:mod:`streams.worker.runbooks`);
4. once those are delivered, a :class:`schemas.Watermark` per quotes partition the batch
   touched: the event time up to which its ticks are reflected.

``process`` returns only once every message it sent is delivered, so the offsets the agent
then commits never run ahead of published work. Scheduled playbook jobs
(:class:`streams.worker.jobs.PlaybookJobs`) read the book through the same thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import pickle
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Protocol

from alerts import (
    Health,
    KeyHistory,
    approval_alert,
    calibration_error_alert,
    consumer_lag,
    evaluate,
    forget,
    material_alert,
    refused_alert,
    stale_keys,
    threshold,
)
from audit import check_decision
from schemas import (
    DEAD_LETTER_KEEP,
    Alert,
    CalibrationRecord,
    DeadLetter,
    Decision,
    JobResult,
    Params,
    SchemaError,
    WarmState,
    Watermark,
    encode,
    job_key,
    runbook_key,
    watermark_key,
)
from streams.book.calibrations import Calibrations
from streams.book.state import state_message
from streams.book.surfaces import Coverage, Snapshot, SurfaceBook
from streams.book.tracker import Step, Tracker
from streams.live.view import LiveView
from streams.settings import Settings
from streams.worker.approvals import Head, decided, judge, moved_on
from streams.worker.audit import record_fit, record_job, record_message
from streams.worker.checkpoint import Checkpoint, Checkpoints
from streams.worker.counters import Counters
from streams.worker.decode import Record, decode_records
from streams.worker.health import health_message
from streams.worker.jobs import PlaybookJobs
from streams.worker.metrics import WorkerMetrics
from streams.worker.runbooks import Runbooks

__all__ = ["Counters", "Pipeline", "Record", "Sink"]

log = logging.getLogger(__name__)

Messages = list[tuple[bytes, bytes]]  # (key, value) pairs for one topic
UNFIT_NAMED = 64  # smiles too thin to fit named in one watermark (the wire's list limit)
HEAD_FIELDS = ("audit_seq", "audit_hash", "approved", "pending")  # moved on by the event loop


class Sink(Protocol):
    async def send_many(self, topic: str, messages: Messages) -> list[Awaitable]:
        """Queue ``messages`` on ``topic``; the awaitables resolve on delivery."""
        ...


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        *,
        calibrations: Calibrations | None = None,
        clock: Callable[[], float] = time.time,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.clock = clock
        self.checkpoints = checkpoints  # None: nothing kept for a restart
        self.book = SurfaceBook(settings.surface)
        self.calibrations = calibrations or Calibrations(
            betas=settings.betas, default_beta=settings.default_beta, clock=clock
        )
        self.tracker = Tracker(self.book, self.calibrations)
        self.health = Health()
        self.counters = Counters()
        self.metrics = WorkerMetrics(lambda: (self.counters, len(self.book)))
        self.live = LiveView()  # what the live page shows (streams.live)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="calibrate")
        self.runbooks = Runbooks(
            self.calibrations,
            settings.runbook_cooldown,
            self._alert,
            self.counters,
            clock,
            self._record_fix if settings.audit else None,
        )
        self.jobs = PlaybookJobs(self._current, self._deliver, self._alert, self.counters, clock,
                                 self._record_jobs if settings.audit else None)  # fmt: skip
        self._last_seen: dict[int, float] = {}  # partition -> wall time of its latest message
        self._next_offset: dict[int, int] = {}  # partition -> the offset after its latest
        self._heads: dict[str, WarmState] = {}  # key -> its audit chain's head, moved on here
        self._decisions: dict[tuple[str, int], Decision] = {}  # (key, seq) -> a decision on it
        self._marks: dict[int, Coverage] = {}  # partition -> its last published coverage
        self._tail: asyncio.Future | None = None  # the last batch's calibration and delivery
        self._outbox: asyncio.Future | None = None  # the stream health's last messages, sent
        self._reflected: dict[int, int] = {}  # partition -> the offset after the last delivered
        self._skip: dict[int, int] = {}  # partition -> offsets below it a checkpoint reflects
        self._open = asyncio.Event()  # batches wait while closed (partitions being taken over)
        self._open.set()
        self._imaged_at = -math.inf  # monotonic time of the last checkpoint's image
        self._uncovered: list[asyncio.Future] = []  # acks of delivered batches no checkpoint has
        self._stopped = False  # handed everything over: a stopping worker writes no more

    def rebuild(self, records: Iterable[Record]) -> set[str]:
        """Take in quote messages another worker already processed (a takeover's read-back):
        the book updates as it did there, but nothing is calibrated, published or counted,
        and bad messages, already dead-lettered, are skipped. The smiles have no current fit
        here, so each is fitted once at its first new tick. Returns the underlyings seen."""
        decoded = decode_records(records)
        if decoded.rows.n:
            # as the previous owner took them (what it refused, it dead-lettered), uncounted
            keep, _ = self.book.screen(decoded.rows, decoded.partitions)
            rows, parts = decoded.rows.take(keep), decoded.partitions[keep]
            self.book.ingest(rows, parts, 0.0, counted=False)
        return decoded.underlyings()

    def hold(self) -> None:
        """Hold the batches that come from now on until :meth:`release`: faust may deliver
        the messages of partitions just assigned while their takeover (or the resumption of
        a checkpoint) is still reading, which a batch taken in then was lost to (the book it
        went into was replaced)."""
        self._open.clear()

    def release(self) -> None:
        """Let the batches held by :meth:`hold` go on."""
        self._open.set()

    async def settle(self) -> None:
        """Wait for the batch in flight (its outputs delivered) and the stream health's last
        messages."""
        if self._tail is not None:
            try:
                await self._tail
            except Exception:  # said where it failed
                log.exception("the batch in flight failed")
        if self._outbox is not None:
            with contextlib.suppress(Exception):  # said where it failed
                await self._outbox

    def restore(self, checkpoint: Checkpoint) -> None:
        """Take up what ``checkpoint`` kept (a restart on the partitions it covers): the book,
        warm starts, health histories and audit heads as its last batch left them. Messages
        before its offsets, which it reflects, are skipped when they come again."""
        book, warm = pickle.loads(checkpoint.image)
        self.book = self.tracker.book = book
        self.calibrations.state.clear()
        self.calibrations.state.update(warm)
        kept = pickle.loads(checkpoint.loop)
        self.health, self._heads, self._decisions = kept["health"], kept["heads"], kept["decisions"]
        self._marks = kept["marks"]
        self._skip = dict(checkpoint.offsets)
        self._reflected = dict(checkpoint.offsets)

    def _imaged(self, work: Callable[..., Step], *args, force: bool = False
                ) -> tuple[Step, bytes | None]:  # fmt: skip
        """``work(*args)`` on the calibration thread, and, with checkpoints on and one due
        (``checkpoint_every`` since the last, or ``force``), the book and warm starts it left,
        pickled there (the next batch changes them while this one delivers)."""
        step = work(*args)
        now = time.monotonic()
        due = force or now - self._imaged_at >= self.settings.checkpoint_every
        if self.checkpoints is None or not due:
            return step, None
        self._imaged_at = now
        return step, pickle.dumps((self.book, self.calibrations.state), pickle.HIGHEST_PROTOCOL)

    async def cover(self) -> None:
        """A checkpoint now if delivered batches wait for one (a quiet stream, a handover):
        their messages are then acked."""
        if not self._uncovered or (self._tail is not None and not self._tail.done()):
            return
        loop = asyncio.get_running_loop()
        step = loop.run_in_executor(self.executor, partial(self._imaged, Step.none, force=True))
        self._tail = asyncio.ensure_future(self._finish(None, step, [], time.perf_counter(), 0))
        await self._tail

    async def _checkpoint(self, image: bytes | None, offsets: Mapping[int, int],
                          ack: asyncio.Future) -> list[asyncio.Future]:  # fmt: skip
        """The acks of delivered batches a checkpoint now holds (``ack``, a batch's): with
        ``image`` the state the batch left (and the event loop's part now) with the offsets it
        reflects is written now, and every batch waiting is held; without, the batch waits
        for the next (see :mod:`streams.worker.checkpoint`)."""
        self._reflected.update(offsets)
        if self.checkpoints is None:
            return [ack]
        self._uncovered.append(ack)
        if image is None:
            return []
        kept = {
            "health": self.health,
            "heads": self._heads,
            "decisions": self._decisions,
            "marks": self._marks,
        }
        checkpoint = Checkpoint(
            self.checkpoints.topic,
            self.checkpoints.partitions,
            dict(self._reflected),
            image,
            pickle.dumps(kept, pickle.HIGHEST_PROTOCOL),
        )
        await asyncio.get_running_loop().run_in_executor(None, self.checkpoints.write, checkpoint)
        covered, self._uncovered = self._uncovered, []
        return covered

    def restore_health(self, keys: Mapping[str, KeyHistory]) -> None:
        """Take the health rules' history of ``keys`` as read back from the health topic
        (a start, a takeover): later fits are judged against it, and its firing alerts
        resolve when they clear."""
        self.health = replace(self.health, keys={**self.health.keys, **keys})

    async def process(self, records: Sequence[Record]) -> None:
        """:meth:`submit` ``records`` and wait until all they produced is delivered (and
        kept in a checkpoint, if one was due)."""
        await self.submit(records)
        await self._tail

    async def submit(self, records: Sequence[Record]) -> tuple[asyncio.Future, asyncio.Future]:
        """Check ``records`` now and queue their rows for the book's thread (batches run there
        in order: the warm-start and tolerance chain). Returns two futures: done when
        everything this batch produced is delivered (the agent's pace), and when, with
        checkpoints, a checkpoint also holds it (then its messages may be acked)."""
        if not self._open.is_set():  # (no await otherwise: a batch goes on at once)
            await self._open.wait()
        start = time.perf_counter()
        for record in records:
            self._last_seen[record.partition] = record.received_at
            self._next_offset[record.partition] = record.offset + 1
        if self._skip:  # what the checkpoint resumed from already reflects
            records = [r for r in records if r.offset >= self._skip.get(r.partition, 0)]
        offsets = {r.partition: r.offset + 1 for r in records}
        for p in offsets:  # past the checkpoint: nothing more to skip there
            self._skip.pop(p, None)
        decoded = decode_records(records)
        self.counters.ticks += decoded.ticks
        self.metrics.batch_ticks.observe(decoded.ticks)
        deliveries = await self._dead_letters(decoded.refused)
        received = records[0].received_at if records else self.clock()
        loop = asyncio.get_running_loop()
        step = loop.run_in_executor(
            self.executor, self._imaged, self.tracker.take, decoded.rows, decoded.partitions,
            received,
        )  # fmt: skip
        ack = loop.create_future()
        self._tail = asyncio.ensure_future(
            self._finish(self._tail, step, deliveries, start, len(records), decoded, offsets, ack)
        )
        return self._tail, ack

    async def flush_idle(self, quiet: float) -> None:
        """Close the open epoch of every partition without a message for ``quiet`` seconds
        (wall clock): a stream gone quiet still gets its last quotes calibrated, and its
        watermark reaches the event time the stream reached. A batch still in progress means
        the stream is not quiet: nothing to do then."""
        if self._tail is not None and not self._tail.done():
            return
        now = self.clock()
        quiet_parts = [p for p, seen in sorted(self._last_seen.items()) if now - seen >= quiet]
        if not quiet_parts:
            await self.cover()
            return
        stream_time = max(
            (c.event_time for c in (self.book.coverage(p) for p in self.book.partitions())),
            default=None,
        )
        loop = asyncio.get_running_loop()
        force = bool(self._uncovered)  # a quiet stream: what waits is acked now
        flush = partial(self._imaged, self.tracker.flush, quiet_parts, stream_time, force=force)
        step = loop.run_in_executor(self.executor, flush)
        self._tail = asyncio.ensure_future(self._finish(None, step, [], time.perf_counter(), 0))
        await self._tail

    async def check_stream(self, highwater: Mapping[int, int]) -> None:
        """The stream's health rules (:mod:`alerts.rules`), on the book as it stands: each
        quotes partition's watermark behind its newest tick (``freshness``) and its unread
        messages (``consumer_lag``; ``highwater``: the offset the broker will give next, per
        partition; all of them while the broker does not answer), and each quoted smile or
        surface not fitted within ``stale_after``."""
        loop = asyncio.get_running_loop()
        seen, quoted = await loop.run_in_executor(self.executor, self.book.latest)
        config, now, topic = self.settings.alerts, self.clock(), self.settings.topics["quotes"]
        lags = {p: t - self._marks[p].event_time for p, t in seen.items() if p in self._marks}
        unread = {p: float(end - self._next_offset.get(p, end)) for p, end in highwater.items()}
        self.live.lags = {str(p): lag for p, lag in lags.items()}
        for p, lag in lags.items():
            self.metrics.watermark_lag.labels(str(p)).set(lag)
        for p, n in unread.items():
            self.metrics.consumer_lag.labels(str(p)).set(n)
        by_key = lambda figures: {watermark_key(topic, p): v for p, v in figures.items()}  # noqa: E731
        alerts, health = threshold(self.health, "freshness", by_key(lags), config.freshness, now,
                                   config, " s")  # fmt: skip
        silent = self.counters.broker_silent
        more, health = consumer_lag(health, by_key(unread), silent, now, config)
        stale, health = stale_keys(health, quoted, now, config)
        self.health = health
        if self._stopped:  # handed over: the next owner writes these keys' histories now
            return
        alerts += more + stale
        self.counters.alerts += len(alerts)
        self.counters.alerts_held = health.held_total
        shown = self._shown(alerts)
        self._send_later([("alerts", shown), ("health", self._health_records(_changed(alerts)))])

    def _send_later(self, batches: list[tuple[str, Messages]]) -> None:
        """Send ``batches`` in order, after what was sent so before, off the caller's path: the
        stream's health is judged every second whether or not the broker takes messages (a
        check that waited on a delivery through a broker outage judged nothing more until it
        ended: its consumer-lag alert never fired)."""
        if not any(messages for _, messages in batches):
            return
        before = self._outbox

        async def send() -> None:
            if before is not None:
                with contextlib.suppress(Exception):  # said where it failed
                    await before
            for kind, messages in batches:
                await self._deliver(kind, messages)

        self._outbox = asyncio.ensure_future(send())
        self._outbox.add_done_callback(_said)

    async def hand_over(self, last: bool = False) -> None:
        """Before partitions leave this worker (a rebalance, a stop): finish the batch in
        flight, so that what it fitted is delivered, health histories included, before the
        next owner reads the topics. ``last``: the worker stops; its stream health rules write
        nothing more."""
        if self._stopped:
            return
        self._stopped = last
        await self.settle()
        await self.cover()

    async def runbooks_done(self) -> None:
        """Wait for every runbook in flight (tests, and a worker that stops)."""
        await self.runbooks.done()

    async def _finish(
        self, before, step_future, deliveries, start: float, messages: int, decoded=None,
        offsets: Mapping[int, int] | None = None, ack: asyncio.Future | None = None,
    ) -> None:  # fmt: skip
        mine = ack or asyncio.get_running_loop().create_future()  # an idle flush's: no waiter
        try:
            covered = await self._deliver_step(before, step_future, deliveries, decoded, offsets,
                                               mine)  # fmt: skip
        except BaseException as exc:  # the batch's ack says so too (the agent raises it)
            if ack is not None and not ack.done():
                ack.set_exception(exc)
            raise
        if messages:  # a batch of messages, not an idle flush
            self.metrics.batch_seconds.observe(time.perf_counter() - start)
            self.metrics.batch_messages.observe(messages)
        for done in covered:  # last: the acks' waiters find this batch finished
            if not done.done():
                done.set_result(None)

    async def _deliver_step(self, before, step_future, deliveries, decoded, offsets, ack
                            ) -> list[asyncio.Future]:  # fmt: skip
        if before is not None:
            await before
        step, image = await step_future
        if step.evicted:
            await self._evicted(step.evicted)
        if step.refused:  # rows the book refused: stale ticks
            deliveries = deliveries + await self._dead_letters(decoded.refused_rows(step.refused))
        self.counters.out_of_tolerance = self.book.ticks_out
        if step.failed:
            self.counters.errors += 1
            now = self.clock()
            errors = {s.key: calibration_error_alert(now, s.key, exc) for s, exc in step.failed}
            await self._alert(list(errors.values()))
        if step.results:
            deliveries = deliveries + await self._publish(step.snapshots, step.results, step.starts)
        await asyncio.gather(*deliveries)
        await self._watermarks(step.coverage)
        return await self._checkpoint(image, offsets or {}, ack)

    async def _evicted(self, keys: Sequence[str]) -> None:
        """Smiles and surfaces the book dropped (no quote for ``evict_after``): their health
        histories go (resolving what still fired, a tombstone on the health topic) and the
        live page forgets them; their warm starts stay (a few hundred bytes: a key quoted
        again starts warm, its audit chain going on)."""
        after = self.settings.surface.evict_after
        self.counters.evicted += len(keys)
        self.live.forget(keys)
        why = f"no quote for {after:.0f} s of event time: dropped from the book"
        alerts, self.health = forget(self.health, keys, self.clock(), why)
        named = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        log.warning("dropped %d smiles and surfaces with no quote for %.0f s of event time (%s); "
                    "counted in volstream_evicted_total", len(keys), after, named)  # fmt: skip
        await self._alert(alerts)
        await self._deliver("health", [(key.encode(), None) for key in keys])

    async def _publish(
        self, snapshots: list[Snapshot], results: list, starts: list[WarmState]
    ) -> list[Awaitable]:
        now = self.clock()
        self.runbooks.start(snapshots, results)
        quotes = [(s.strikes, s.vols) for s in snapshots]  # the drift diagnosis: what moved
        found, self.health = evaluate(self.health, results, now, quotes, self.settings.alerts)
        self.counters.alerts_held = self.health.held_total
        raised = [a for alerts in found for a in alerts]
        records, results, notices = self._audit(snapshots, results, starts, now)
        params, alerts = [], []
        for snap, message, mine in zip(snapshots, results, found):
            key = message.key.encode()
            params.append((key, encode(message)))
            self.counters.calibrations += 1
            self.counters.flagged += not message.good
            self._observe(message, snap.asset_class, now)
            alerts += [(key, encode(alert)) for alert in mine]
        alerts += [(a.key.encode(), encode(a)) for a in notices]
        self.counters.alerts += len(alerts)
        self.live.fitted(snapshots, results)
        self.live.alerted(raised + notices)
        topics = self.settings.topics
        # the state topic is compacted: the latest state of each smile in this batch suffices,
        # with its audit chain's head
        states = [
            state_message(key, self._with_head(key, self.calibrations.state[key]))
            for key in dict.fromkeys(p.key for p in results)
        ]
        # every fitted key's history goes with the batch, before its messages are acked: a
        # worker taking the partitions over from the committed offsets reads it whole (one
        # written every 10 s, and the rest at a handover, lost the last fits when faust's stop
        # raced a rebalance)
        health = self._health_records({p.key for p in results} | _changed(raised))
        sent = await self.sink.send_many(topics["params"], params)
        sent += await self.sink.send_many(topics["alerts"], alerts)
        sent += await self.sink.send_many(topics["health"], health)
        sent += await self.sink.send_many(topics["audit"], records)
        return sent + await self.sink.send_many(topics["state"], states)

    def _audit(
        self, snapshots: list[Snapshot], results: list[Params], starts: list[WarmState], now: float
    ) -> tuple[Messages, list[Params], list[Alert]]:
        """A chained audit record of each fit (in order: a key fitted twice in a batch chains
        both), the fits marked with their record and approval (``pending`` when a material
        change waits for an approver, with a notice saying why). Each key's chain head moves
        on here, on the event loop. (The warm states are the calibration thread's, which may
        be fitting the next batch meanwhile: writing a head into them from here put back a
        state that thread had moved on.)"""
        if not self.settings.audit:
            return [], results, []
        records, marked, notices = [], [], []
        for snap, message, start in zip(snapshots, results, starts):
            head = self._head(message.key)
            why = judge(message, head, self.settings)
            beta = self.calibrations.beta(snap.underlying) if message.model == "sabr" else None
            record = record_fit(message, snap, start, head, beta, self.settings.operator_name,
                                pending=bool(why))  # fmt: skip
            message = replace(message, approval="pending" if why else "auto",
                              record_seq=record.seq)  # fmt: skip
            self._heads[message.key] = moved_on(head, message, record.seq, record.record_hash)
            records.append(record_message(record))
            marked.append(message)
            if why:
                notices.append(material_alert(now, message, why))
        return records, marked, notices

    async def _record_fix(self, fix: Params, snap: Snapshot) -> None:
        """The audit record of a runbook's fix, on the key's runbook chain (cold start)."""
        beta = self.calibrations.beta(snap.underlying) if fix.model == "sabr" else None
        operator = self.settings.operator_name

        def make(head: WarmState) -> CalibrationRecord:
            return record_fit(fix, snap, WarmState(), head, beta, operator, run="runbook")

        await self._chain([(runbook_key(fix.key), make)])

    async def _record_jobs(self, results: list[JobResult], snapshots: list[Snapshot]) -> None:
        """The audit record of each playbook finding, with the surfaces of its assets."""
        operator = self.settings.operator_name

        def maker(r: JobResult) -> Callable[[WarmState], CalibrationRecord]:
            mine = [s for s in snapshots if s.underlying in r.subject.split("+")]
            return lambda head: record_job(r, mine, head, operator)

        await self._chain([(job_key(r.job, r.subject), maker(r)) for r in results])

    async def _chain(
        self, makers: list[tuple[str, Callable[[WarmState], CalibrationRecord]]]
    ) -> None:
        """Records made off the stream's path (``make(head)`` per chain key), each chained
        on its key, written with the key's head on the state topic."""
        records, states = [], []
        for key, make in makers:
            record = make(self._head(key))
            self._heads[key] = replace(self._head(key), audit_seq=record.seq,
                                       audit_hash=record.record_hash)  # fmt: skip
            records.append(record_message(record))
            states.append(state_message(key, self._head(key)))
        await self._deliver("audit", records)
        await self._deliver("state", states)

    def _head(self, key: str) -> WarmState:
        """``key``'s audit chain head and approval figures: as moved on here, else as restored
        with the warm state."""
        return self._with_head(key, WarmState())

    def _with_head(self, key: str, state: WarmState) -> WarmState:
        """``state`` carrying ``key``'s audit chain head and approval figures."""
        head = self._heads.get(key) or self.calibrations.state.get(key) or WarmState()
        return replace(state, **{name: getattr(head, name) for name in HEAD_FIELDS})

    async def decide(self, decisions: Sequence[Decision]) -> None:
        """Take approvers' decisions (the decisions topic) and apply those on a pending record
        of a key this worker holds."""
        for d in decisions:
            self._decisions[(d.record_key, d.record_seq)] = d
        await self.settle_decisions({d.record_key for d in decisions})

    async def settle_decisions(self, keys: Iterable[str]) -> None:
        """Apply the decisions taken so far on the pending record of each of ``keys`` (also
        after a start or takeover restored their heads): one that stands publishes the fit
        again marked ``approved`` or ``rejected``, with a notice, and moves the key's
        approved figures; one that does not raises a critical alert and is dropped."""
        now, alerts, params, states = self.clock(), [], [], []
        for key in sorted(keys):
            head = self._head(key)
            d = self._decisions.get((key, head.audit_seq))  # type: ignore[arg-type]
            if head.pending is None or d is None:
                continue  # not pending here (decided, superseded, or another worker's key)
            named = Head(key, head.audit_seq, head.audit_hash, self.settings.operator_name)  # type: ignore[arg-type]
            why = check_decision(d, named, self.settings.approvers)
            if why:
                del self._decisions[(key, d.record_seq)]
                alerts.append(refused_alert(now, d, why))
                continue
            self._heads[key] = decided(head, d)
            alerts.append(approval_alert(now, d))
            latest = self.live.published(key)  # the live page keeps each key's last
            if latest is not None and latest.record_seq == d.record_seq:
                again = replace(latest, approval=d.decision, published_at=now)
                params.append((key.encode(), encode(again)))
                self.live.marked(again)
            state = self.calibrations.state.get(key, WarmState())
            states.append(state_message(key, self._with_head(key, state)))
        self.counters.alerts += len(alerts)
        await self._deliver("params", params)
        await self._alert(alerts)
        await self._deliver("state", states)

    def import_state(self, states: Mapping[str, WarmState]) -> None:
        """Take warm states read back from the state topic (a start, a takeover): the fits'
        starts and the audit chains' heads and approval figures, which go on from there
        (:meth:`settle_decisions` then applies decisions already taken on them)."""
        self.calibrations.import_state(states)
        for key in states:
            self._heads.pop(key, None)

    def _observe(self, message: Params, asset_class: str, now: float) -> None:
        """A published fit's figures in the metrics, by model and asset class."""
        m, labels = self.metrics, (message.model, asset_class)
        outcome = "good" if message.good else "flagged" if message.converged else "failed"
        m.calibrations.labels(*labels, outcome).inc()
        m.latency.labels(*labels).observe(now - message.received_at)
        m.iterations.labels(*labels).observe(message.iterations)
        if message.warm:
            m.warm_starts.labels(*labels).inc()
        if message.rmse is not None:
            m.rmse_bp.labels(*labels).observe(1e4 * message.rmse)
        condition = message.diagnostics.get("condition_number")
        if condition is not None and math.isfinite(condition):
            m.condition.labels(*labels).observe(condition)
        z = self.health.keys[message.key].last_z
        if message.good and math.isfinite(z):
            m.drift_z.labels(*labels).observe(z)

    def _health_records(self, keys: set[str]) -> Messages:
        """The health histories of ``keys``, to write now."""
        found = ((key, self.health.keys.get(key)) for key in sorted(keys))
        return [health_message(key, history) for key, history in found if history is not None]

    async def _watermarks(self, coverage: dict[int, Coverage]) -> None:
        """A watermark per partition whose coverage changed (event time never moves back)."""
        now, topic, out = self.clock(), self.settings.topics["quotes"], []
        for partition, c in sorted(coverage.items()):
            before = self._marks.get(partition)
            if before is not None:
                c = c._replace(event_time=max(c.event_time, before.event_time))
            if c == before or c.event_time != c.event_time:  # unchanged, or no tick yet
                continue
            self._marks[partition] = c
            mark = Watermark(now, topic, partition, c.event_time, c.pending, c.unfit[:UNFIT_NAMED])
            out.append((mark.key.encode(), encode(mark)))
        self.counters.watermarks += len(out)
        await self._deliver("watermarks", out)

    async def _alert(self, alerts: Sequence[Alert]) -> None:
        """Send ``alerts`` (off the batch's path: the stream's rules, runbooks, jobs,
        decisions) and show them on the live page."""
        await self._deliver("alerts", self._shown(alerts))

    def _shown(self, alerts: Sequence[Alert]) -> Messages:
        """Show ``alerts`` on the live page at once; their messages, to send."""
        self.live.alerted(alerts)
        return [(a.key.encode(), encode(a)) for a in alerts]

    async def _deliver(self, kind: str, messages: Messages) -> None:
        """Send ``messages`` to the topic of ``kind`` and wait for their delivery."""
        if messages:
            await asyncio.gather(*await self.sink.send_many(self.settings.topics[kind], messages))

    async def _current(self) -> list[Snapshot]:
        """The book's current surfaces, read on the book's thread (between batches)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.book.current)

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


def _said(sent: asyncio.Future) -> None:
    """Log a background send that failed (nobody awaits it to hear)."""
    if not sent.cancelled() and sent.exception() is not None:
        log.error("the stream health's messages were not delivered", exc_info=sent.exception())


def _changed(alerts: Sequence[Alert]) -> set[str]:
    """The keys whose alerts changed state (a notice changes none)."""
    return {a.key for a in alerts if a.state != "notice"}
