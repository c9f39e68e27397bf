"""End to end on the real broker: replay -> worker(s) -> params, alerts and dead letters.

Every check reads the output topics with an independent aiokafka consumer. Expected results
come from running the same tick file through the surfaces offline (per smile the snapshot
sequence depends only on that smile's ticks, which one partition keeps in order) and
calibrating each snapshot directly with the engine.
"""

import asyncio
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import msgpack
import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client.parser import text_string_to_metric_families

from engine.heston import HestonCalibrator
from engine.sabr import SABRCalibrator
from schemas import (
    CalibrationRecord,
    DeadLetter,
    JobResult,
    KeyHealth,
    Params,
    Quote,
    QuoteColumns,
    WarmState,
    decode,
    encode,
)
from streams.book.calibrations import Calibrations, snapshot_surface
from streams.book.state import read_all, read_state, state_message
from streams.book.surfaces import SurfaceBook, SurfaceSnapshot
from streams.book.tracker import Step, Tracker
from streams.cli.main import main
from streams.feed.replay import read_ticks
from streams.feed.send import ensure_topics, wait_consumed
from streams.feed.simulate import TickSimulator
from streams.local.broker import free_port
from streams.settings import Settings
from streams.worker.jobs import run_on_book
from streams.worker.metrics import scrape
from tests.pages import check_report, open_page

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]
TICKS = ROOT / "data" / "sample_ticks.csv"
VOLSTREAM = Path(sys.executable).with_name("volstream")
STAMPS = ("received_at", "published_at")


def settings_for(bootstrap: str, prefix: str) -> Settings:
    return Settings(bootstrap=bootstrap, topic_prefix=prefix, partitions=3)


@contextmanager
def worker(
    bootstrap: str,
    prefix: str,
    group: str,
    state_dir: Path,
    log: Path,
    metrics_port: int = 0,
    jobs: str = "none",
    more: dict[str, str] | None = None,
):
    env = (
        os.environ
        # the runbook's programs, traced in the background, take 20-30 s of a core a worker
        # (on the 2-core CI machine, from the test running beside); no test of a worker
        # process walks the runbook (the pipeline and fuzz tests do, in process)
        | {"VOLSTREAM_WARM_RUNBOOK": "0"}
        | (more or {})
        | {
            "VOLSTREAM_JOBS": jobs,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "VOLSTREAM_TOPIC_PREFIX": prefix,
            "VOLSTREAM_APP_ID": group,
            "VOLSTREAM_STATE_DIR": str(state_dir),
            "VOLSTREAM_PARTITIONS": "3",
            "VOLSTREAM_METRICS_PORT": str(metrics_port),
            # a replay is bit-identical while no partition pauses longer than the linger in the
            # middle of an epoch (a quiet partition's open epoch is then calibrated early): the
            # suite runs a test file per core, and its producers may stall for a second or two
            "VOLSTREAM_LINGER": "5",
        }
    )
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(VOLSTREAM), "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


async def read_topic(
    bootstrap: str,
    topic: str,
    want: int,
    timeout: float = 180.0,
    quiet: float = 5.0,
    workers: tuple = (),
):
    """Every record of ``topic`` until ``want`` arrived (then ``quiet`` s of silence), timeout,
    or every one of ``workers`` has died (their logs then explain)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records, loop = [], asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=int(quiet * 1000))
            if not batch and (
                len(records) >= want or (workers and all(w.poll() is not None for w in workers))
            ):
                break
            for rs in batch.values():
                records.extend(rs)
    finally:
        await consumer.stop()
    return records


def offline_run(quotes: list[Quote], partitions: int = 3) -> tuple[SurfaceBook, Step]:
    """The quotes through a book and its calibrations as a worker takes them: each
    partition's in order (keyed by underlying, partitioned as the producer does), each
    epoch's due snapshots fitted before the next epoch's ticks are checked, the last epochs
    closed at the end."""
    book, every = SurfaceBook(Settings().surface), list(range(partitions))
    tracker, snaps, params = Tracker(book, Calibrations()), [], []
    for p in every:
        mine = [q for q in quotes if DefaultPartitioner()(q.underlying.encode(), every, every) == p]
        if mine:
            step = tracker.take(QuoteColumns.from_quotes(mine), np.full(len(mine), p), 0.0)
            snaps, params = snaps + step.snapshots, params + step.results
    step = tracker.flush(every)
    return book, Step(snaps + step.snapshots, params + step.results, {}, [], [])


def expected_snapshots(quotes: list[Quote]):
    """Per smile: its snapshots and the parameters fitted to them offline."""
    per_smile: dict[str, list] = {}
    _, step = offline_run(quotes)
    for snap, params in zip(step.snapshots, step.results):
        per_smile.setdefault(snap.key, []).append((snap, params))
    return per_smile


BAD = [
    (b"\xc1not msgpack", "not_msgpack"),
    (msgpack.packb({"type": "quote", "v": 9}), "unknown_version"),
    (b"\x00" * 70_000, "oversized"),
]


def bad_messages(good: Quote) -> list[tuple[bytes, str]]:
    crossed = msgpack.packb(
        {"type": "quote", "v": 1, **good.to_wire(), "bid_vol": 0.2, "ask_vol": 0.1}
    )
    expired = msgpack.packb({"type": "quote", "v": 1, **good.to_wire(), "expiry": "2020-01-01"})
    return [*BAD, (crossed, "crossed_quote"), (expired, "expired")]


async def produce_with_bad(settings: Settings, quotes: list[Quote]) -> list[str]:
    """Replay ``quotes`` with bad messages spliced in; return the bad ones' reasons."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    bad = bad_messages(quotes[0])
    try:
        for i, q in enumerate(quotes):
            await producer.send(settings.topics["quotes"], encode(q), key=q.underlying.encode())
            if i % 1500 == 700 and bad:
                value, _ = bad[0]
                await producer.send(settings.topics["quotes"], value, key=q.underlying.encode())
                bad = bad[1:]
        for value, _ in bad:
            await producer.send(settings.topics["quotes"], value, key=b"junk")
        await producer.flush()
    finally:
        await producer.stop()
    return sorted(reason for _, reason in bad_messages(quotes[0]))


def params_by_smile(records) -> dict[str, list[Params]]:
    """Published parameters per smile or surface (``Params.key``), in publication order."""
    out: dict[str, list[Params]] = {}
    for r in records:
        p = decode(r.value, Params)
        out.setdefault(p.key, []).append(p)
    return out


def strip(p: Params) -> dict:
    return {k: v for k, v in p.to_wire().items() if k not in STAMPS}


@pytest.fixture(scope="module")
def quotes():
    ticks = list(read_ticks(TICKS))
    assert all(isinstance(q, Quote) for q in ticks)
    return ticks


@pytest.fixture(scope="module")
def jit_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("volstream-state")  # shared: workers compile once


@pytest.fixture(scope="module")
def first_run(kafka_bootstrap, quotes, jit_cache, tmp_path_factory):
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    settings = settings_for(kafka_bootstrap, prefix)
    expected = expected_snapshots(quotes)
    total = sum(len(v) for v in expected.values())
    log = tmp_path_factory.mktemp("logs") / "worker-a.log"
    port = free_port()
    with worker(kafka_bootstrap, prefix, f"{prefix}-g", jit_cache, log, metrics_port=port):
        reasons = asyncio.run(produce_with_bad(settings, quotes))
        params = asyncio.run(read_topic(kafka_bootstrap, settings.topics["params"], total))
        dlq = asyncio.run(
            read_topic(kafka_bootstrap, settings.topics["dlq"], len(reasons), quiet=2)
        )
        metrics = scrape(port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            families = {f.name for f in text_string_to_metric_families(page.read().decode())}
    return {
        "families": families,
        "expected": expected,
        "params": params,
        "dlq": dlq,
        "reasons": reasons,
        "log": log,
        "metrics": metrics,
        "prefix": prefix,
    }


def test_every_published_smile_equals_a_direct_engine_calibration(first_run):
    expected, got = first_run["expected"], params_by_smile(first_run["params"])
    assert got.keys() == expected.keys(), first_run["log"].read_text()[-3000:]
    assert "SPX|surface" in got  # the equity index, next to the FX smiles
    snaps, published, surfaces, heston = [], [], [], []
    for key, smiles in expected.items():
        assert len(got[key]) == len(smiles), key  # nothing lost, nothing extra
        for (snap, _), p in zip(smiles, got[key]):
            assert (p.window_start, p.window_end, p.n_quotes) == (
                snap.window_start,
                snap.window_end,
                len(snap.strikes),
            )
            if isinstance(snap, SurfaceSnapshot):
                assert (p.model, p.spot, p.time_to_expiry) == ("heston", snap.spot, max(snap.times))
                assert p.expiries == tuple(sorted(set(snap.expiries)))
                surfaces.append(snap)
                heston.append(p)
                continue
            assert (p.forward, p.time_to_expiry) == (snap.forward, snap.time_to_expiry)
            snaps.append(snap)
            published.append(p)
    # 1. the stream changes nothing: the same snapshots through the same warm-start and
    # tolerance chain offline
    for key, smiles in expected.items():
        # each fit is its key's next audit record (the offline run keeps no audit trail)
        assert [p.record_seq for p in got[key]] == list(range(len(smiles)))
        ours = [strip(p) | {"params": p.params, "record_seq": None} for p in got[key]]
        offline = [strip(p) | {"params": p.params} for _, p in smiles]
        for i, (a, b) in enumerate(zip(ours, offline)):
            assert a == b, (key, i, {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)})
    # 2. and it fits as well as an independent cold calibration of each snapshot
    direct = SABRCalibrator(beta=0.5).calibrate_batch(
        [s.forward for s in snaps],
        [s.time_to_expiry for s in snaps],
        [np.array(s.strikes) for s in snaps],
        [np.array(s.vols) for s in snaps],
    )
    both = np.array([p.converged for p in published]) & direct.converged
    assert both.mean() > 0.99
    rmse = np.array([p.rmse for p in published])
    np.testing.assert_allclose(rmse[both], direct.rmse[both], rtol=0, atol=1e-8)
    for name in ("alpha", "rho", "nu"):
        ours = np.array([p.params[name] for p in published])
        np.testing.assert_allclose(ours[both], direct.params[name][both], rtol=1e-4, atol=1e-4)
    assert any(p.warm for p in published) and not all(p.warm for p in published)
    assert all(
        p.good == (p.converged and all(g["verdict"] != "fail" for g in p.gates.values()))
        for p in published + heston
    )
    # 3. each surface's Heston fit, warm-started on the stream, is the optimum a cold
    # multi-start calibration of the same snapshot finds
    cold = HestonCalibrator().calibrate_batch([snapshot_surface(s) for s in surfaces])
    both = np.array([p.converged for p in heston]) & cold.converged
    assert both.mean() > 0.95 and np.mean([p.good for p in heston]) > 0.9
    assert any(p.warm for p in heston) and not all(p.warm for p in heston)
    for name in ("v0", "kappa", "theta", "sigma", "rho"):
        ours = np.array([p.params[name] for p in heston])
        np.testing.assert_allclose(ours[both], cold.params[name][both], rtol=2e-3, atol=1e-4)


def test_audit_verify_passes_on_the_replay_and_names_a_tampered_record(
    first_run, kafka_bootstrap, monkeypatch, capsys
):
    monkeypatch.setenv("VOLSTREAM_TOPIC_PREFIX", first_run["prefix"])
    params = [decode(r.value, Params) for r in first_run["params"]]
    smile = next(p.key for p in params if p.model == "sabr")
    assert main(["audit", "verify", "--bootstrap", kafka_bootstrap, "--no-rerun"]) == 0
    said = capsys.readouterr().out
    assert f"{len(params):,} records of " in said and "every chain intact" in said
    # one smile's and the surface's calibrations, run again from their archived inputs
    for key in (smile, "SPX|surface"):
        assert main(["audit", "verify", "--bootstrap", kafka_bootstrap, "--key", key]) == 0
        assert "reproduce their archived parameters" in capsys.readouterr().out
    assert main(["audit", "show", "--bootstrap", kafka_bootstrap, "--key", smile]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 + sum(p.key == smile for p in params) and "passed" in listed[2]
    # a record altered on the topic (appended: the topic is append-only) is named
    records = asyncio.run(
        read_all(
            {"bootstrap_servers": kafka_bootstrap},
            f"{first_run['prefix']}.audit",
            CalibrationRecord,
        )
    )
    last = [r for k, r in records if k == smile][-1]
    altered = dataclasses.replace(last, parameters={**last.parameters, "rho": 0.5})

    async def append():
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(f"{first_run['prefix']}.audit", encode(altered),
                                         key=smile.encode())  # fmt: skip
        finally:
            await producer.stop()

    asyncio.run(append())
    assert main(["audit", "verify", "--bootstrap", kafka_bootstrap, "--no-rerun"]) == 1
    said = capsys.readouterr().out
    assert f"FAILED {smile} seq {last.seq}" in said and "altered" in said


def test_the_daily_report_from_the_topics(first_run, kafka_bootstrap, monkeypatch, capsys,
                                          tmp_path):  # fmt: skip
    monkeypatch.setenv("VOLSTREAM_TOPIC_PREFIX", first_run["prefix"])
    assert main(["report", "--bootstrap", kafka_bootstrap, "--out", str(tmp_path)]) == 0
    said = capsys.readouterr().out
    n = len(first_run["params"])
    assert f"{n:,} calibrations of " in said and "Success rate" in said
    check_report(open_page(tmp_path), tmp_path)  # the page in Chromium, every plot shown
    assert main(["report", "--bootstrap", kafka_bootstrap, "--date", "2001-01-01", "--out",
                 str(tmp_path / "none")]) == 1  # fmt: skip
    assert "no calibrations published on 2001-01-01" in capsys.readouterr().err


def test_bad_messages_land_in_the_dlq_with_reasons(first_run):
    letters = [decode(r.value, DeadLetter) for r in first_run["dlq"]]
    assert sorted(d.reason for d in letters) == first_run["reasons"]
    for d in letters:
        assert d.topic.endswith(".quotes") and d.offset >= 0 and d.detail
        assert d.original_size >= len(d.original)
    oversized = next(d for d in letters if d.reason == "oversized")
    assert oversized.original_size == 70_000 and len(oversized.original) < 70_000


def test_the_worker_metrics_count_what_the_topics_hold(first_run, quotes):
    """/metrics against independent counts: the ticks sent, the dead letters and parameters
    read back from their topics, the surfaces an offline book of the same ticks holds."""
    m, params = first_run["metrics"], [decode(r.value, Params) for r in first_run["params"]]
    messages = len(quotes) + len(first_run["reasons"])
    assert m[("volstream_ticks_total", ())] == messages
    rejected = {
        labels[0][1]: v for (name, labels), v in m.items() if name == "volstream_rejected_total"
    }
    assert rejected == Counter(first_run["reasons"])
    fits = Counter()
    for (name, labels), v in m.items():
        if name == "volstream_calibrations_total":
            fits[tuple(v for _, v in labels)] += v  # (asset_class, model, outcome)
    outcome = lambda p: "good" if p.good else "flagged" if p.converged else "failed"  # noqa: E731
    asset = {"sabr": "fx", "heston": "equity"}
    assert fits == Counter((asset[p.model], p.model, outcome(p)) for p in params)
    for model in ("sabr", "heston"):
        labels = (("asset_class", asset[model]), ("model", model))
        count = m[("volstream_tick_to_publish_seconds_count", labels)]
        assert count == sum(p.model == model for p in params) > 0
        assert m[("volstream_warm_starts_total", labels)] == sum(
            p.warm for p in params if p.model == model
        )
        assert m[("volstream_fit_iterations_count", labels)] == count
    # every metric the Grafana dashboard queries is one this live worker serves
    dashboard = json.loads((ROOT / "compose/grafana/dashboards/volstream.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    queried = {n for e in exprs for n in re.findall(r"(?:volstream|process)_[a-z_]+", e)}
    assert {re.sub(r"_(bucket|sum|count|total)$", "", n) for n in queried} <= first_run["families"]
    assert m[("volstream_batch_messages_sum", ())] == messages  # every message in one batch
    assert m[("volstream_batch_seconds_count", ())] == m[("volstream_batch_messages_count", ())]
    book = offline_run(quotes)[0]
    assert m[("volstream_surfaces", ())] == len(book)
    assert m[("volstream_ticks_out_of_tolerance_total", ())] == book.ticks_out > 0


def test_replaying_into_a_fresh_group_publishes_identical_parameters(
    kafka_bootstrap, quotes, jit_cache, first_run, tmp_path
):
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    settings = settings_for(kafka_bootstrap, prefix)
    with worker(kafka_bootstrap, prefix, f"{prefix}-g", jit_cache, tmp_path / "worker-b.log"):
        asyncio.run(produce_with_bad(settings, quotes))
        params = asyncio.run(
            read_topic(kafka_bootstrap, settings.topics["params"], len(first_run["params"]))
        )
    first, second = params_by_smile(first_run["params"]), params_by_smile(params)
    assert first.keys() == second.keys()
    for key in first:
        assert [strip(p) for p in first[key]] == [strip(p) for p in second[key]], key


async def _members(bootstrap: str, group: str) -> int:
    return (await _group(bootstrap, group))[0]


async def _group(bootstrap: str, group: str) -> tuple[int, str]:
    """The group's member count and state (``Stable``, ``PreparingRebalance``, ...)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
        return sum(len(g[5]) for g in response.groups), response.groups[0][2]
    except KafkaError:  # no group coordinator yet: nobody has joined
        return 0, ""
    finally:
        await admin.close()


@pytest.mark.parametrize("stop", ["settled", "rebalancing"])
def test_two_workers_share_partitions_and_one_takes_over(
    kafka_bootstrap, quotes, jit_cache, tmp_path, stop
):
    """``settled``: w1 stops once the two workers have split the partitions; ``rebalancing``:
    as soon as w2 has joined, before the split (faust then closes w1's consumer at once, which
    left the group before w1 had handed over: w2 read a health history many fits old)."""
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    group = f"{prefix}-g"
    settings = settings_for(kafka_bootstrap, prefix)
    half = len(quotes) // 2
    asyncio.run(ensure_topics(settings))

    def members(n: int, stable: bool = True, every: float = 1.0) -> None:
        """Wait until the group has ``n`` members, and is stable (or rebalancing)."""
        for _ in range(int(120 / every)):
            count, state = asyncio.run(_group(kafka_bootstrap, group))
            if count == n and (state == "Stable") == stable:
                return
            time.sleep(every)
        raise AssertionError(f"not {n} members, {'' if stable else 'not '}stable: {state}")

    # w1 alone calibrates the first half; w2 joins and they split the partitions (w2 takes
    # some over from w1); w1 stops and w2 takes over the rest: everything w2 publishes is for
    # smiles and surfaces it took over
    slow = {"VOLSTREAM_SESSION_TIMEOUT": "30"} if stop == "rebalancing" else None
    with worker(kafka_bootstrap, prefix, group, jit_cache, tmp_path / "w1.log", more=slow) as w1:
        members(1)
        asyncio.run(_send(settings, quotes[:half]))
        asyncio.run(wait_consumed(settings, group))
        first = asyncio.run(read_topic(kafka_bootstrap, settings.topics["params"], 1, quiet=2))
        assert first
        w2_log = tmp_path / "w2.log"
        with worker(kafka_bootstrap, prefix, group, jit_cache, w2_log):
            if stop == "settled":
                members(2)
                for _ in range(300):  # and w2 has read back what it was given
                    if "took over quote partitions" in w2_log.read_text():
                        break
                    time.sleep(0.2)
            else:  # caught between w2's join and w1's next heartbeat (every 7.5 s here)
                members(2, stable=False, every=0.1)
            w1.send_signal(signal.SIGTERM)
            w1.wait(60)
            stopped = time.time()
            asyncio.run(_send(settings, quotes[half:]))
            params = asyncio.run(
                read_topic(kafka_bootstrap, settings.topics["params"], len(first) + 1)
            )
    before = [decode(r.value, Params) for r in first]
    later = [decode(r.value, Params) for r in params[len(first) :]]
    assert {p.underlying for p in later} == {q.underlying for q in quotes}  # the survivor has all
    # it took over the stopped worker's surfaces and warm starts, not just its partitions:
    # every fit after the takeover is warm and sees every option its smile or surface had
    assert all(p.warm for p in later), [p.key for p in later if not p.warm]
    full = {p.key: p.n_quotes for p in before}
    first_after = {p.key: p for p in reversed(later)}
    assert all(p.n_quotes >= full[key] for key, p in first_after.items()), {
        key: (p.n_quotes, full[key]) for key, p in first_after.items()
    }
    # and the health rules' history: each smile's window after the takeover goes on from the
    # last one the stopped worker wrote (its drift and RMSE judged on the whole history)
    health = asyncio.run(read_topic(kafka_bootstrap, settings.topics["health"], 1, quiet=2))
    by_worker: tuple[dict, dict] = ({}, {})  # the stopped worker's records, the survivor's
    for r in health:
        mine = by_worker[r.timestamp >= 1000 * stopped].setdefault(r.key.decode(), [])
        mine.append(decode(r.value, KeyHealth))
    last_w1, first_w2 = by_worker
    both = [
        k for k in first_w2 if k in last_w1 and k.split("|")[0] in {q.underlying for q in quotes}
    ]
    assert both, (sorted(last_w1), sorted(first_w2))
    for key in both:
        before_h, after_h = last_w1[key][-1], first_w2[key][0]
        n = len(before_h.rmse)
        assert n and after_h.rmse[:n] == before_h.rmse and len(after_h.rmse) > n, key


def test_a_scheduled_job_runs_inside_the_worker_on_its_current_surfaces(
    kafka_bootstrap, jit_cache, tmp_path
):
    """VOLSTREAM_JOBS in a running worker: daily SABR every 10 s; once the quotes are in,
    its finding on the jobs topic is the same job run offline on a book of the same ticks."""
    prefix = f"job-{uuid.uuid4().hex[:8]}"
    group = f"{prefix}-g"
    settings = settings_for(kafka_bootstrap, prefix)
    quotes = list(TickSimulator(pairs=1, seed=4).ticks(time.time() - 30, 50.0, count=300))
    asyncio.run(ensure_topics(settings))
    log = tmp_path / "worker.log"
    with worker(kafka_bootstrap, prefix, group, jit_cache, log, jobs="daily-sabr=every 10s"):
        asyncio.run(_send(settings, quotes))
        asyncio.run(wait_consumed(settings, group))
        done, finding = time.time(), None
        while finding is None and time.time() < done + 90:
            records = asyncio.run(read_topic(kafka_bootstrap, settings.topics["jobs"], 1, quiet=2))
            found = [decode(r.value, JobResult) for r in records]
            after = [f for f in found if f.ts > done]
            finding = after[0] if after else None
    assert finding is not None, log.read_text()[-3000:]
    (expected,) = run_on_book("daily-sabr", offline_run(quotes)[0].current(), finding.ts)
    assert (finding.job, finding.subject, finding.good) == ("daily-sabr", "EURUSD", True)
    assert finding.title == expected.title and finding.failed == expected.failed == ()
    assert finding.figures.keys() == expected.figures.keys()
    assert len([k for k in finding.figures if k.endswith(".rho")]) == 4  # every expiry
    for name, value in expected.figures.items():
        assert finding.figures[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name


async def _send(settings: Settings, quotes: list[Quote]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        for q in quotes:
            await producer.send(settings.topics["quotes"], encode(q), key=q.underlying.encode())
        await producer.flush()
    finally:
        await producer.stop()


def test_replay_cli_counts_what_the_broker_confirmed(kafka_bootstrap, tmp_path):
    path = tmp_path / "few.csv"
    lines = TICKS.read_text().splitlines()
    bad = lines[1].split(",")
    bad[6] = "0.9"  # bid_vol above ask_vol: crossed
    path.write_text("\n".join([*lines[:40], ",".join(bad)]) + "\n")
    env = os.environ | {"VOLSTREAM_TOPIC_PREFIX": f"cli-{uuid.uuid4().hex[:6]}"}
    out = subprocess.run(
        [str(VOLSTREAM), "replay", "--max", "--quiet", "--bootstrap", kafka_bootstrap, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "sent 39 ticks" in out.stdout and "rejected 1 (crossed_quote 1)" in out.stdout
    batched = subprocess.run(
        [
            str(VOLSTREAM),
            "replay",
            "--max",
            "--quiet",
            "--batch",
            "16",
            "--bootstrap",
            kafka_bootstrap,
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert batched.returncode == 0 and "sent 39 ticks" in batched.stdout
    only_bad = tmp_path / "bad.csv"
    only_bad.write_text("\n".join([lines[0], ",".join(bad)]) + "\n")
    nothing = subprocess.run(
        [
            str(VOLSTREAM),
            "replay",
            "--max",
            "--quiet",
            "--bootstrap",
            kafka_bootstrap,
            str(only_bad),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert nothing.returncode == 2, nothing.stderr  # nothing valid sent: not a success
    assert "row 1: bid_vol: crossed_quote: bid_vol 0.9 > ask_vol" in nothing.stdout
    assert "no valid tick was sent" in nothing.stderr


def test_simulate_cli_sends_paced_batches_the_broker_confirmed(kafka_bootstrap):
    prefix = f"sim-{uuid.uuid4().hex[:6]}"
    env = os.environ | {"VOLSTREAM_TOPIC_PREFIX": prefix}
    cmd = [str(VOLSTREAM), "simulate", "--rate", "300", "--duration", "1.5", "--pairs", "2"]
    cmd += ["--indices", "1"]
    out = subprocess.run(
        [*cmd, "--quiet", "--bootstrap", kafka_bootstrap],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    sent = int(out.stdout.split()[1].replace(",", ""))
    records = asyncio.run(read_topic(kafka_bootstrap, f"{prefix}.quotes", 1, quiet=2))
    messages = [decode(r.value) for r in records]
    assert all(isinstance(m, QuoteColumns) for m in messages)
    quotes = [q for m in messages for q in m.quotes()]
    assert len(quotes) == sent >= 2 * 4 * 15 + 4 * 11  # every opening quote, then paced updates
    assert {q.asset_class for q in quotes} == {"fx", "equity"}
    assert any(m.n > 1 for m in messages)  # batched by underlying...
    assert all(len(m.text["underlying"].values) == 1 for m in messages)
    span = max(q.ts for q in quotes) - min(q.ts for q in quotes)
    assert 1.0 < span <= 1.5  # ...and paced by event time


def test_read_state_returns_the_latest_value_of_every_key_and_skips_bad_ones(kafka_bootstrap):
    settings = settings_for(kafka_bootstrap, f"state-{uuid.uuid4().hex[:8]}")
    topic = settings.topics["state"]
    assert (
        asyncio.run(read_state({"bootstrap_servers": kafka_bootstrap}, topic)) == {}
    )  # no topic yet
    asyncio.run(ensure_topics(settings))

    async def write() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for i in range(6):
                key, value = state_message(
                    f"EURUSD|2027-0{i % 3 + 1}-25", WarmState(i, {"alpha": float(i)})
                )
                await producer.send_and_wait(topic, value, key=key)
            await producer.send_and_wait(topic, b"junk", key=b"USDJPY|2027-01-25")
        finally:
            await producer.stop()

    asyncio.run(write())
    state = asyncio.run(read_state({"bootstrap_servers": kafka_bootstrap}, topic))
    assert state == {
        f"EURUSD|2027-0{k + 1}-25": WarmState(k + 3, {"alpha": float(k + 3)}) for k in range(3)
    }
