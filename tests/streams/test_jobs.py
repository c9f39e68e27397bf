"""Scheduled playbook jobs in the worker: when they are due, what they run on (the book's
current surfaces), and what they publish (the jobs topic, an alert when flagged)."""

import asyncio
import dataclasses
import datetime as dt
import re

import pytest

from audit import verify_chains
from schemas import Alert, CalibrationRecord, JobResult, decode
from streams.feed.simulate import INDICES, TickSimulator
from streams.settings import JobSchedule, Settings
from streams.worker.audit import rerun_all
from streams.worker.jobs import JobClock, next_run, run_on_book
from streams.worker.pipeline import Pipeline
from tests.streams.memory import Memory

T0 = 1.795e9  # 2026-11-18 11:06 UTC: event times of the book's quotes (a fixed day, so the
# surfaces' expiries are the same at every run; the wall clock's put a short SX5E expiry past
# the price-error gate on some days)


def utc(*args) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        (JobSchedule("daily-sabr", "daily", 0, 6, 0), utc(2026, 12, 3, 5, 59), utc(2026, 12, 3, 6)),
        (JobSchedule("daily-sabr", "daily", 0, 6, 0), utc(2026, 12, 3, 6), utc(2026, 12, 4, 6)),
        # 3 Dec 2026 is a Thursday: the next Monday is the 7th
        (JobSchedule("weekly-heston", "weekly", 0, 6, 0), utc(2026, 12, 3, 8), utc(2026, 12, 7, 6)),
        (JobSchedule("joint", "monthly", 1, 6, 30), utc(2026, 12, 3), utc(2027, 1, 1, 6, 30)),
        (JobSchedule("model-selection", "quarterly", 1, 6, 0), utc(2026, 12, 3), utc(2027, 1, 1, 6)),
        (JobSchedule("model-selection", "quarterly", 1, 6, 0), utc(2027, 1, 1, 7), utc(2027, 4, 1, 6)),
        # intraday: on the quarter hours, strictly after
        (JobSchedule("daily-sabr", "every", 0, 0, 0, 900), utc(2026, 12, 3, 9, 7), utc(2026, 12, 3, 9, 15)),
        (JobSchedule("daily-sabr", "every", 0, 0, 0, 900), utc(2026, 12, 3, 9, 15), utc(2026, 12, 3, 9, 30)),
    ],
)  # fmt: skip
def test_next_run_of_each_cadence(schedule, after, expected):
    assert next_run(schedule, after) == expected


def test_a_due_job_runs_once_however_late_and_then_waits_for_its_next_time():
    daily = JobSchedule("daily-sabr", "daily", 0, 6, 0)
    clock = JobClock([daily], utc(2026, 12, 3, 5))
    assert clock.due(utc(2026, 12, 3, 5, 59)) == []
    assert clock.due(utc(2026, 12, 3, 9)) == ["daily-sabr"]  # three hours late: once
    assert clock.due(utc(2026, 12, 3, 9, 1)) == []
    assert clock.next[daily] == utc(2026, 12, 4, 6)


def _pipeline() -> tuple[Pipeline, Memory]:
    sink = Memory()
    pipe = Pipeline(Settings(topic_prefix="j"), sink, clock=lambda: 1_000.0)
    ticks = TickSimulator(pairs=1, indices=2, seed=4).columns(T0, 100.0, count=0)
    for chunk in ticks:  # every option's opening quote
        pipe.book.ingest(chunk)
    return pipe, sink


def test_a_scheduled_job_runs_on_the_books_surfaces_and_publishes_its_findings():
    pipe, sink = _pipeline()

    async def started():  # as the worker's timer starts the due jobs
        (task,) = pipe.jobs.start(["weekly-heston"])
        return await task

    results = asyncio.run(started())
    assert [r.subject for r in results] == ["SPX", "SX5E"]  # each index of the book
    published = [decode(v, JobResult) for _, v in sink.sent["j.jobs"]]
    assert published == results
    spx = published[0]
    assert spx.good and spx.failed == () and spx.title.startswith("Weekly Heston: SPX from the")
    assert spx.figures["parameters.rho"] == pytest.approx(INDICES["SPX"][-1], abs=0.05)
    assert pipe.counters.jobs[("weekly-heston", "good")] == 2
    assert "j.alerts" not in sink.sent  # nothing flagged: no noise


def test_each_finding_has_an_audit_record_of_the_surfaces_it_ran_on_that_runs_again():
    pipe, sink = _pipeline()
    (result,) = asyncio.run(pipe.jobs.run("daily-sabr"))
    (record,) = [decode(v, CalibrationRecord) for _, v in sink.sent["j.audit"]]
    assert (record.key, record.asset, record.model_type) == ("EURUSD|daily-sabr", "EURUSD",
                                                            "playbook")  # fmt: skip
    assert record.parameters == result.figures and record.validation_status == "passed"
    snaps = record.inputs["snapshots"]
    assert snaps and {s["underlying"] for s in snaps} == {"EURUSD"}  # its pair's smiles only
    assert rerun_all([record], tolerance=0.0) == []
    asyncio.run(pipe.jobs.run("daily-sabr"))  # the job's chain goes on
    second = decode(sink.sent["j.audit"][-1][1], CalibrationRecord)
    assert second.seq == 1 and verify_chains([record, second]) == []


def test_a_job_due_while_its_last_run_is_going_is_skipped_not_queued():
    pipe, sink = _pipeline()

    async def twice():
        (first,) = pipe.jobs.start(["daily-sabr"])
        assert pipe.jobs.start(["daily-sabr"]) == []  # still going: skipped
        await first
        (again,) = pipe.jobs.start(["daily-sabr"])  # done: runs again
        await again

    asyncio.run(twice())
    assert pipe.counters.jobs[("daily-sabr", "skipped")] == 1
    assert pipe.counters.jobs[("daily-sabr", "good")] == 2 == len(sink.sent["j.jobs"])


def test_a_job_that_cannot_run_is_a_flagged_finding_that_says_why():
    pipe, _ = _pipeline()
    empty = Pipeline(Settings(topic_prefix="e"), Memory())
    assert asyncio.run(empty.jobs.run("joint")) == []  # no indices: nothing to run
    spx = next(s for s in pipe.book.current() if s.underlying == "SPX")
    nan = float("nan")
    broken = dataclasses.replace(spx, vols=(nan,) * len(spx.vols), prices=(nan,) * len(spx.prices))
    (result,) = run_on_book("weekly-heston", [broken], 1_000.0)  # never raises
    assert not result.good and result.failed == ("error",)
    assert result.title == (
        "weekly-heston on SPX raised ValueError: no option left to fit (all weights zero, "
        "filtered as illiquid or with no time value)"
    )


def test_flagged_findings_raise_a_job_alert(monkeypatch):
    pipe, sink = _pipeline()
    real = run_on_book

    def flagged(job, snapshots, now):
        return [r.__class__(**(r.__dict__ | {"good": False, "failed": ("rmse",)}))
                for r in real(job, snapshots, now)]  # fmt: skip

    monkeypatch.setattr("streams.worker.jobs.run_on_book", flagged)
    asyncio.run(pipe.jobs.run("daily-sabr"))
    (alert,) = [decode(v, Alert) for _, v in sink.sent["j.alerts"]]
    assert alert.rule == "job" and alert.subject == "EURUSD" and "flagged (rmse)" in alert.message
    assert pipe.counters.jobs[("daily-sabr", "flagged")] == 1
    (finding,) = [decode(v, JobResult) for _, v in sink.sent["j.jobs"]]
    # a row per expiry: each figure named by it (and by the gate)
    rhos = [k for k in finding.figures if re.fullmatch(r"parameters\.T\d\.\d{3}\.rho", k)]
    assert len(rhos) == 4
    assert len([k for k in finding.figures if re.fullmatch(r"gates\.T.*/rmse\.value", k)]) == 4
