"""Playbook jobs on a schedule inside the worker: each runs on the stream's current surfaces
(:meth:`SurfaceBook.current`) for every asset it applies to, and its findings go to the jobs
topic as :class:`schemas.JobResult` messages (a flagged one raises a ``job`` alert too), each
with an audit record of the surfaces it ran on (:func:`streams.worker.audit.record_job`).

Daily SABR runs on each FX pair of the book; weekly Heston, term structure and model
selection on each index; the joint fit on all indices together (two or more). When a job is
due is a pure function of its :class:`~streams.settings.JobSchedule` and the clock
(:func:`next_run`); a worker that starts after a run time waits for the next one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from alerts import job_alert
from playbooks.jobs import JobReport, run_job
from playbooks.names import DAILY_SABR, JOINT
from schemas import Alert, JobResult, clip, encode
from streams.book.source import BookSource
from streams.book.surfaces import SmileSnapshot, Snapshot, SurfaceSnapshot
from streams.settings import JobSchedule
from streams.worker.counters import Counters

__all__ = ["JobClock", "PlaybookJobs", "findings", "next_run", "run_on_book"]

log = logging.getLogger(__name__)

UTC = dt.UTC


def next_run(schedule: JobSchedule, after: float) -> float:
    """The first run time of ``schedule`` strictly after ``after`` (epoch seconds, UTC)."""
    if schedule.cadence == "every":
        return (math.floor(after / schedule.period) + 1) * schedule.period
    now = dt.datetime.fromtimestamp(after, UTC)
    at = dt.time(schedule.hour, schedule.minute, tzinfo=UTC)
    day = now.date()
    for _ in range(400):  # a quarterly schedule recurs within 92 days; a year is plenty
        if _runs_on(schedule, day):
            when = dt.datetime.combine(day, at)
            if when > now:
                return when.timestamp()
        day += dt.timedelta(days=1)
    raise AssertionError(f"no run of {schedule} within a year")  # unreachable by construction


def _runs_on(schedule: JobSchedule, day: dt.date) -> bool:
    if schedule.cadence == "daily":
        return True
    if schedule.cadence == "weekly":
        return day.weekday() == schedule.day
    if schedule.cadence == "monthly":
        return day.day == schedule.day
    return day.day == schedule.day and day.month in (1, 4, 7, 10)  # quarterly


class JobClock:
    """Which scheduled jobs are due: each schedule's next run, advanced as it is taken."""

    def __init__(self, schedules: Sequence[JobSchedule], start: float) -> None:
        self.next = {s: next_run(s, start) for s in schedules}

    def due(self, now: float) -> list[str]:
        """The jobs whose run time has come (each once, however late), their next run set."""
        out = []
        for schedule, when in self.next.items():
            if when <= now:
                out.append(schedule.job)
                self.next[schedule] = next_run(schedule, now)
        return out


def _assets(job: str, snapshots: Sequence[Snapshot]) -> list[tuple[str, ...]]:
    """What ``job`` runs on: each pair, each index, or all indices at once."""
    pairs = sorted({s.underlying for s in snapshots if isinstance(s, SmileSnapshot)})
    indices = sorted({s.underlying for s in snapshots if isinstance(s, SurfaceSnapshot)})
    if job == DAILY_SABR:
        return [(p,) for p in pairs]
    if job == JOINT:
        return [tuple(indices)] if len(indices) >= 2 else []
    return [(i,) for i in indices]


def run_on_book(job: str, snapshots: Sequence[Snapshot], now: float) -> list[JobResult]:
    """``job`` on every asset it applies to in ``snapshots``; a job that raises gives a
    flagged result saying why (never an exception: the stream goes on)."""
    source = BookSource(snapshots, now)
    out = []
    for assets in _assets(job, snapshots):
        subject = "+".join(assets)
        try:
            report = run_job(job, assets, source)
        except Exception as exc:  # a bad surface must not stop the worker: said instead
            log.exception("playbook job %s on %s raised", job, subject)
            message = clip(f"{job} on {subject} raised {type(exc).__name__}: {exc}")
            out.append(JobResult(now, job, subject, False, message, (message,), {}, ("error",)))
            continue
        out.append(findings(report, subject, now))
    return out


def findings(report: JobReport, subject: str, now: float) -> JobResult:
    """A job's report as a message: its lines, every number of its tables as a figure
    (``table.column``, or ``table.ROW.column`` for tables of several rows, ``ROW`` named by
    the row's expiry, gate, model, asset or fold), and the gates that failed."""
    figures: dict[str, float | None] = {}
    for table, rows in report.tables.items():
        for i, row in enumerate(rows):
            label = _row_label(row, i) if len(rows) > 1 else None
            for column, value in row.items():
                if column in _LABELS or isinstance(value, bool):
                    continue
                if not isinstance(value, (int, float, np.number)):
                    continue
                name = ".".join(x for x in (table, label, column) if x)
                figures[name] = float(value) if math.isfinite(float(value)) else None
    failed = tuple(
        _row_label(row, 0) for row in report.tables.get("gates", []) if row.get("verdict") == "fail"
    )
    return JobResult(
        now, report.name, subject, report.good, report.title, tuple(report.lines), figures, failed
    )


_LABELS = ("t", "gate", "name", "asset", "fold")  # columns that name a row, not figures


def _row_label(row: dict, i: int) -> str:
    """``T0.250/rmse``-like: what identifies a row (its index when nothing does)."""
    parts = [f"T{row['t']:.3f}" if key == "t" else str(row[key]) for key in _LABELS if key in row]
    return "/".join(parts) or str(i)


Send = Callable[[str, list[tuple[bytes, bytes]]], Awaitable[None]]  # (kind, messages) delivered


class PlaybookJobs:
    """Scheduled playbook jobs run on a thread of their own (minutes for model selection),
    one at a time, on the book's current surfaces; the stream never waits for them."""

    def __init__(
        self,
        current: Callable[[], Awaitable[list[Snapshot]]],
        send: Send,
        send_alerts: Callable[[list[Alert]], Awaitable[None]],
        counters: Counters,
        clock: Callable[[], float],
        record: Callable[[list[JobResult], list[Snapshot]], Awaitable[None]] | None = None,
    ) -> None:
        self.current = current  # the book's current surfaces, read where the book is kept
        self.record = record  # the findings' audit records (None: the audit trail is off)
        self.send = send
        self.send_alerts = send_alerts
        self.counters = counters
        self.clock = clock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="playbook-job")
        self._running: dict[str, asyncio.Task] = {}  # job -> its run in flight (kept alive)

    def start(self, jobs: Sequence[str]) -> list[asyncio.Task]:
        """Start each of ``jobs`` (:meth:`run`) in the background. A job whose previous run is
        still going is skipped, counted and logged, so a schedule faster than the job cannot
        pile runs up."""
        tasks = []
        for job in jobs:
            if job in self._running:
                self.counters.jobs[(job, "skipped")] += 1
                log.warning("playbook job %s is due but its last run is still going: skipped", job)
                continue
            task = self._running[job] = asyncio.ensure_future(self.run(job))
            task.add_done_callback(lambda _, job=job: self._running.pop(job, None))
            tasks.append(task)
        return tasks

    async def run(self, job: str) -> list[JobResult]:
        """Run playbook ``job`` on the book's current surfaces and publish each finding to the
        jobs topic, a flagged one with a ``job`` alert. Returns the findings."""
        snapshots, now = await self.current(), self.clock()
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._thread, run_on_book, job, snapshots, now)
        alerts = []
        for r in results:
            self.counters.jobs[(r.job, "good" if r.good else "flagged")] += 1
            if not r.good:
                alerts.append(job_alert(now, r))
        self.counters.alerts += len(alerts)
        await asyncio.gather(
            self.send("jobs", [(r.key.encode(), encode(r)) for r in results]),
            self.send_alerts(alerts),
        )
        if self.record is not None:
            await self.record(results, snapshots)
        return results
