"""``volstream demo``: a broker, a worker, a replayed sample stream and a live table.

Uses ``KAFKA_BOOTSTRAP_SERVERS`` when set, else the local broker (started, and stopped again at
the end, when it was not already running). Each run gets its own topic prefix and consumer
group, so runs never see each other's data. The table shows the latest parameters of every
smile as they are published; the summary gives what the run measured.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from schemas import Params, Watermark, book_key, decode
from streams.feed.freshness import partitions_of, watermark_lags
from streams.feed.replay import replay_ticks
from streams.feed.send import SendSummary, ensure_topics
from streams.feed.tail import format_params
from streams.feed.tickfile import TickFile, read_tick_file
from streams.local.broker import LocalKafka, free_port
from streams.settings import Settings
from streams.worker.metrics import scrape

__all__ = ["render", "run_demo"]

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample_ticks.csv"


def render(latest: dict[str, Params], counts: dict[str, int]) -> str:
    """The live table: latest parameters per smile (SABR) or surface (Heston)."""
    rows = [
        (
            p.underlying,
            "surface" if p.expiries else p.expiry,
            p.model,
            format_params(p),
            f"{1e4 * (p.rmse or 0):.2f}",
            str(p.iterations),
            "warm" if p.warm else "cold",
            str(counts[key]),
            "good" if p.good else "FLAGGED",
        )
        for key, p in sorted(latest.items())
    ]
    header = ("underlying", "expiry", "model", "parameters", "rmse bp", "steps", "start", "fits")
    header += ("verdict",)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), "-" * len(line(header)), *(line(r) for r in rows)])


async def _watch(
    settings: Settings,
    stop: asyncio.Event,
    live: bool,
    out,
    seen: list[Params],
    marks: list[tuple[float, Watermark]],
) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        settings.topics["params"],
        settings.topics["watermarks"],
        **settings.client(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    latest: dict[str, Params] = {}
    counts: dict[str, int] = {}
    last_draw = 0.0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batch.values():
                for r in records:
                    p = decode(r.value)
                    if isinstance(p, Watermark):
                        marks.append((now, p))
                        continue
                    seen.append(p)
                    key = p.key
                    latest[key], counts[key] = p, counts.get(key, 0) + 1
            if live and latest and time.monotonic() - last_draw > 0.5:
                last_draw = time.monotonic()
                out.write(
                    "\x1b[H\x1b[2J"
                    + render(latest, counts)
                    + f"\n\n{len(seen)} calibrations published\n"
                )
                out.flush()
    finally:
        await consumer.stop()
    out.write(render(latest, counts) + "\n")


async def _ready(settings: Settings, alive, timeout: float = 300.0) -> bool:
    """Wait until the worker has joined its group, holds the quotes partitions and has
    compiled every batch shape it warms (``volstream_warming_up`` 0): the replay then starts
    on a worker that is listening and no longer compiling."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import GroupCoordinatorNotAvailableError

    admin = AIOKafkaAdminClient(**settings.client())
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while alive() and time.monotonic() < deadline:
            try:
                (response,) = await admin.describe_consumer_groups([settings.app_id])
            except GroupCoordinatorNotAvailableError:  # a new broker: no offsets topic yet
                response = None
            stable = response and any(g[2] == "Stable" and g[5] for g in response.groups)
            if stable and _warm(settings):
                return True
            await asyncio.sleep(0.2)
        return False
    finally:
        await admin.close()


def _warm(settings: Settings) -> bool:
    try:
        return scrape(settings.metrics_port).get(("volstream_warming_up", ())) == 0.0
    except OSError:
        return False


def _keys(ticks: TickFile) -> set[str]:
    """The key of every smile (FX) and surface (equity) the valid ticks quote."""
    if ticks.columns is None:
        return set()
    text = {k: ticks.columns.text[k].decoded() for k in ("underlying", "asset_class", "expiry")}
    return {
        book_key(u, e if a == "fx" else None)
        for u, a, e in zip(text["underlying"], text["asset_class"], text["expiry"])
    }


class _Run(NamedTuple):
    published: list[Params]
    marks: list[tuple[float, Watermark]]  # (time read, watermark)
    sent: SendSummary | None
    ticks_out: float  # the worker's count of ticks that needed a fit


async def _run(
    settings: Settings, ticks: TickFile, speed: float | None, live: bool, out, alive
) -> _Run:
    stop, seen, marks = asyncio.Event(), [], []
    await ensure_topics(settings)
    waited = time.monotonic()
    if not await _ready(settings, alive):
        return _Run(seen, marks, None, math.nan)
    page = f"http://{settings.metrics_host}:{settings.metrics_port}/"
    out.write(f"worker ready after {time.monotonic() - waited:.0f} s; replaying the sample "
              f"(live page while it runs: {page})\n")  # fmt: skip
    out.flush()
    watcher = asyncio.create_task(_watch(settings, stop, live, out, seen, marks))
    summary = await replay_ticks(ticks, settings, speed=speed, progress=False, batch=1024)
    out.write(f"replayed {summary.sent:,} ticks; waiting for the last calibrations...\n")
    out.flush()
    # done once every smile and surface of the sample has parameters and results stop for
    # 5 s; a key that never publishes is given a minute of quiet. On a machine whose compile
    # cache lacks some of the worker's programs it compiles them mid-stream, tens of seconds
    # without a result (a demo that stopped at the first quiet 5 s showed 4 smiles of 12)
    expected = _keys(ticks)
    start = quiet_since = time.monotonic()
    last_count = 0
    while alive() and not watcher.done():
        await asyncio.sleep(0.5)
        now = time.monotonic()
        if len(seen) != last_count:
            last_count, quiet_since = len(seen), now
        quiet = now - quiet_since
        complete = expected <= {p.key for p in seen}
        if (seen and quiet > 5.0 and complete) or quiet > 60.0 or now - start > 300.0:
            break
    stop.set()
    await watcher
    try:
        ticks_out = scrape(settings.metrics_port)[("volstream_ticks_out_of_tolerance_total", ())]
    except (OSError, KeyError):
        ticks_out = math.nan
    return _Run(seen, marks, summary, ticks_out)


def _freshness(ticks: TickFile, run: _Run, speed: float | None, partitions: int) -> np.ndarray:
    """Each replayed tick's time from being sent to the watermark that covers it being read
    (:mod:`streams.feed.freshness`); a paced tick left at the start plus its due time."""
    columns = ticks.columns
    if columns is None or run.sent is None:
        return np.empty(0)
    ts = columns.numbers["ts"]
    parts = partitions_of(columns.text["underlying"], partitions)
    sent = run.sent.started + (np.zeros(ts.size) if speed is None else (ts - ts[0]) / speed)
    return watermark_lags(ts, parts, sent, run.marks)


def run_demo(
    bootstrap: str | None, sample: Path = SAMPLE, speed: float | None = 30.0, out=sys.stdout
) -> int:
    started, started_at = None, time.time()
    ticks = read_tick_file(sample)  # replayed, then each tick's freshness measured
    if bootstrap is None and not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        broker = LocalKafka()
        if not broker.status()["answering"]:
            out.write(
                "starting the local Kafka broker (the first start fetches it with Maven)...\n"
            )
            out.flush()
            started = broker
        bootstrap = broker.start()
    bootstrap = bootstrap or os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    run = f"demo-{int(time.time())}"
    # the sample's 12 smiles make batches of at most 12: the worker compiles the two smallest
    # batch shapes only (a few seconds, not the larger ones' tens), and traces no runbook
    # steps in the background while the sample streams
    env = {"VOLSTREAM_WARM_BATCHES": "8,32", "VOLSTREAM_WARM_RUNBOOK": "0"} | os.environ
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "VOLSTREAM_TOPIC_PREFIX": run,
        "VOLSTREAM_APP_ID": run,
        "VOLSTREAM_METRICS_PORT": str(free_port()),  # never another worker's
    }
    settings = Settings.from_env(env)
    volstream = Path(sys.executable).with_name("volstream")
    log = settings.state_dir / "logs" / f"{run}-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    out.write(f"broker {bootstrap}; worker log {log} (the first run compiles the solver)\n")
    out.flush()
    with log.open("w") as fh:
        worker = subprocess.Popen(
            [str(volstream), "worker", "--bootstrap", bootstrap],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        start = time.monotonic()
        alive = lambda: worker.poll() is None  # noqa: E731
        run = asyncio.run(_run(settings, ticks, speed, out.isatty(), out, alive))
        published = run.published
        elapsed = time.monotonic() - start
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
        if started is not None:
            started.stop()
    if not published:
        out.write(f"no parameters were published: see {log}\n")
        return 1
    # steady state: from 5 s after the first parameters on (the first batches may compile)
    first = min(p.published_at for p in published)
    steady = [p for p in published if p.published_at > first + 5.0] or published
    latency = np.array([1e3 * (p.published_at - p.received_at) for p in steady])
    good = np.mean([p.good for p in published])
    warm = np.mean([p.warm for p in published])
    smiles = len({p.key for p in published if p.expiries is None})
    surfaces = len({p.key for p in published if p.expiries is not None})
    out.write(
        f"\n{len(published):,} calibrations of {smiles} smiles and {surfaces} "
        f"surface{'s' * (surfaces != 1)} in "
        f"{elapsed:.0f} s: {good:.1%} good, {warm:.1%} warm-started; first parameters "
        f"{first - started_at:.0f} s after the start; steady state, tick received to "
        f"parameters published: p50 {np.percentile(latency, 50):.0f} ms, p99 "
        f"{np.percentile(latency, 99):.0f} ms\n"
    )
    lags = _freshness(ticks, run, speed, settings.partitions)
    covered = lags[np.isfinite(lags)]
    if covered.size:
        out.write(
            f"watermark freshness, tick sent to the watermark covering it read: p50 "
            f"{1e3 * np.percentile(covered, 50):.0f} ms, p99 {1e3 * np.percentile(covered, 99):.0f}"
            f" ms ({covered.size:,} of {lags.size:,} ticks covered); {run.ticks_out:,.0f} ticks "
            "needed a fit (the rest were within tolerance of the parameters already published)\n"
        )
    prefix = f"VOLSTREAM_TOPIC_PREFIX={settings.topic_prefix}"
    if started is None:  # the broker stays up: the run's topics can be read back
        out.write(f"\nthis run's topics are {settings.topic_prefix}.*; look back at it with\n"
                  f"  {prefix} volstream report --out report/\n"
                  f"  {prefix} volstream audit verify\n")  # fmt: skip
    else:
        out.write("\n(the demo started the local broker and stopped it; `volstream broker "
                  "start` first keeps it, and this run's topics, for `volstream report` and "
                  "`volstream audit verify`)\n")  # fmt: skip
    return 0
