"""Streaming benchmark on a real broker: one worker against a naive QuantLib pipeline.

In one run (local KRaft broker unless ``KAFKA_BOOTSTRAP_SERVERS`` is set):

1. throughput: a backlog of ``--ticks`` simulated FX ticks (6 pairs x 4 expiries = 24 smiles)
   is produced, then one worker consumes it; ticks/s and smiles calibrated/s come from the
   worker's own stamps (first tick received to last parameters published);
2. latency: live ticks at ``--rate`` per second for ``--seconds``, each stamped with its send
   time as event time; tick -> params latency is the time the parameters reach an independent
   consumer minus the send time of the tick that triggered them (p50, p99);
3. the naive peer: an aiokafka consumer keeping the same surfaces and triggers that recalibrates
   each dirty smile with QuantLib ``SABRInterpolation`` one at a time, on the same backlog.

Prints the figures and ratios and appends a JSON line to ``bench/results/stream.jsonl``.

    .venv/bin/python bench/stream.py [--ticks 100000] [--rate 5000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quantlib_peer import quantlib_sabr_fit, write_record
from schemas import Params, Quote, QuoteBatch, QuoteColumns, decode, encode
from streams.broker import BrokerConfig, LocalKafka
from streams.replay import ensure_topics, send_quotes
from streams.settings import Settings
from streams.simulate import TickSimulator
from streams.surface import SurfaceBook

VOLSTREAM = Path(sys.executable).with_name("volstream")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def produce(settings: Settings, quotes, rate: bool = False, batch: int = 1, linger=0.005):
    """Send quotes through the project's one send path; paced by their event times when
    ``rate`` is set, each then restamped with its send time (event time = send time)."""
    due = None
    if rate:
        t0 = quotes[0].ts
        due = lambda q: q.ts - t0  # noqa: E731
    summary = await send_quotes(
        quotes, settings, due=due, restamp=bool(rate), batch=batch, linger=linger
    )
    if summary.failed:
        raise RuntimeError(f"{summary.failed} ticks were not delivered")


async def collect(settings: Settings, want: int, timeout: float) -> list[tuple[float, Params]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        settings.topics["params"],
        bootstrap_servers=settings.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    out: list[tuple[float, Params]] = []
    deadline = time.time() + timeout
    try:
        while len(out) < want and time.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for records in batch.values():
                out.extend((now, decode(r.value, Params)) for r in records)
    finally:
        await consumer.stop()
    return out


def expected_count(quotes) -> int:
    book = SurfaceBook(Settings().surface)
    return sum(book.on_quote(q, 0.0) is not None for q in quotes)


def start_worker(settings: Settings, state_dir: Path, log: Path) -> subprocess.Popen:
    env = os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap,
        "VOLSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "VOLSTREAM_APP_ID": settings.app_id,
        "VOLSTREAM_STATE_DIR": str(state_dir),
    }
    with log.open("w") as fh:
        return subprocess.Popen(
            [str(VOLSTREAM), "worker"], env=env, stdout=fh, stderr=subprocess.STDOUT
        )


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def _quantlib_params(snap) -> None:
    """What the naive peer does per due smile: fit with QuantLib, then encode the result."""
    k, v = list(snap.strikes), list(snap.vols)
    (alpha, rho, nu), fitted = quantlib_sabr_fit(snap.forward, snap.time_to_expiry, k, v)
    encode(
        Params(
            underlying=snap.underlying,
            expiry=snap.expiry,
            model="sabr",
            params={"alpha": alpha, "beta": 0.5, "rho": rho, "nu": nu},
            forward=snap.forward,
            time_to_expiry=snap.time_to_expiry,
            converged=True,
            status="quantlib",
            warm=False,
            iterations=0,
            rmse=float(np.sqrt(np.mean((fitted - np.array(v)) ** 2))),
            gates={},
            diagnostics={},
            window_start=snap.window_start,
            window_end=snap.window_end,
            n_quotes=len(k),
            received_at=snap.received_at,
            published_at=time.time(),
        )
    )


def naive(settings: Settings, total: int) -> dict:
    """aiokafka consumer + the same surfaces + QuantLib one smile at a time."""
    from aiokafka import AIOKafkaConsumer

    async def run() -> dict:
        consumer = AIOKafkaConsumer(
            settings.topics["quotes"],
            bootstrap_servers=settings.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        book, ticks, fits, start = SurfaceBook(settings.surface), 0, 0, None
        try:
            while ticks < total:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for r in records:
                        start = start or time.time()
                        message = decode(r.value)
                        if isinstance(message, QuoteColumns):
                            quotes = message.quotes(message.problems()[0])
                        elif isinstance(message, QuoteBatch):
                            quotes = [decode(item, Quote) for item in message.items]
                        else:
                            quotes = [message]
                        for quote in quotes:
                            ticks += 1
                            snap = book.on_quote(quote, time.time())
                            if snap is not None:
                                _quantlib_params(snap)
                                fits += 1
        finally:
            await consumer.stop()
        elapsed = time.time() - start
        return {"ticks_per_s": ticks / elapsed, "smiles_per_s": fits / elapsed, "fits": fits}

    return asyncio.run(run())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=100_000, help="backlog for the throughput run")
    parser.add_argument("--rate", type=float, default=5000.0, help="live ticks/s for latency")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the latency run")
    parser.add_argument(
        "--batch",
        type=int,
        default=64,
        help="quotes per Kafka message (QuoteColumns); default 64",
    )
    parser.add_argument(
        "--linger",
        type=float,
        default=0.005,
        help="seconds a live quote may wait for others of its underlying (default 0.005)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "stream.jsonl"
    )
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="volstream-bench-"))
    state_dir = Path(os.environ.get("VOLSTREAM_STATE_DIR", Path.home() / ".volstream"))
    broker = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = LocalKafka(
            BrokerConfig(state_dir=tmp / "kafka", port=_free_port(), controller_port=_free_port())
        )
        bootstrap = broker.start()
    try:
        sim = TickSimulator(pairs=6, seed=11)
        backlog = list(sim.ticks(time.time() - 3600, rate=5000.0, count=args.ticks))
        want = expected_count(backlog)
        run = f"bench-{uuid.uuid4().hex[:6]}"
        settings = Settings(bootstrap=bootstrap, topic_prefix=run, app_id=run)
        asyncio.run(ensure_topics(settings))
        asyncio.run(produce(settings, backlog, batch=args.batch))
        print(
            f"backlog of {len(backlog):,} ticks produced ({want:,} smile calibrations due)",
            flush=True,
        )

        worker = start_worker(settings, state_dir, tmp / "worker.log")
        try:
            got = asyncio.run(collect(settings, want, timeout=600))
            params = [p for _, p in got]
            t0 = min(p.received_at for p in params)
            t1 = max(p.published_at for p in params)
            through = {
                "ticks_per_s": len(backlog) / (t1 - t0),
                "smiles_per_s": len(params) / (t1 - t0),
                "calibrations": len(params),
                "expected": want,
                "converged": float(np.mean([p.converged for p in params])),
                "good": float(np.mean([p.good for p in params])),
            }
            print(
                f"worker: {through['ticks_per_s']:,.0f} ticks/s, {through['smiles_per_s']:,.0f} "
                f"smiles/s, {through['converged']:.2%} converged",
                flush=True,
            )

            live = list(
                TickSimulator(pairs=6, seed=12).ticks(
                    time.time(), rate=args.rate, count=int(args.rate * args.seconds)
                )
            )
            live_settings = settings  # same worker, same topics: warm and compiled
            # the load generator must not stall: full collections over its ~10^5 quotes paused
            # it for ~150 ms, and the ticks it had stamped waited (a burst, a false p99)
            gc.collect()
            gc.freeze()
            before = len(got)

            async def latency_run():
                collector = asyncio.create_task(
                    collect(live_settings, before + 10**9, timeout=args.seconds + 15)
                )
                await produce(live_settings, live, rate=True, batch=args.batch, linger=args.linger)
                await asyncio.sleep(3)
                return await collector

            cpu0 = cpu_seconds(worker.pid)
            seen = asyncio.run(latency_run())
            cpu1 = cpu_seconds(worker.pid)
        finally:
            stop(worker)
        recent = [(t, p) for t, p in seen[before:] if p.window_end > live[0].ts - 1e6]
        tail = [(t, p) for t, p in recent if p.window_end > time.time() - 1e9]
        steady = tail[len(tail) // 10 :]  # skip ramp-up
        lat = np.array([1e3 * (t - p.window_end) for t, p in steady])
        # where it goes: tick sent -> worker has published | published -> seen by a consumer
        inside = np.array([1e3 * (p.published_at - p.window_end) for _, p in steady])
        out = lat - inside
        latency = {
            "rate": args.rate,
            "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)),
            "to_published_p50_ms": float(np.percentile(inside, 50)),
            "to_published_p99_ms": float(np.percentile(inside, 99)),
            "to_consumer_p50_ms": float(np.percentile(out, 50)),
            "to_consumer_p99_ms": float(np.percentile(out, 99)),
            "samples": int(lat.size),
            # what the worker spent per live tick: the headroom left on this machine
            "worker_cpu_us_per_tick": None if cpu0 is None else 1e6 * (cpu1 - cpu0) / len(live),
        }
        print(
            f"latency at {args.rate:,.0f} ticks/s: p50 {latency['p50_ms']:.1f} ms, p99 "
            f"{latency['p99_ms']:.1f} ms ({lat.size} calibrations); tick -> published p50 "
            f"{latency['to_published_p50_ms']:.1f} / p99 {latency['to_published_p99_ms']:.1f} ms,"
            f" published -> consumer p50 {latency['to_consumer_p50_ms']:.1f} / p99 "
            f"{latency['to_consumer_p99_ms']:.1f} ms; worker CPU "
            f"{latency['worker_cpu_us_per_tick'] or float('nan'):.0f} us per tick",
            flush=True,
        )

        peer = naive(settings, len(backlog))
        print(
            f"naive aiokafka + QuantLib: {peer['ticks_per_s']:,.0f} ticks/s, "
            f"{peer['smiles_per_s']:,.0f} smiles/s",
            flush=True,
        )
    finally:
        if broker is not None:
            broker.stop()
    ratio = through["smiles_per_s"] / peer["smiles_per_s"]
    print(f"ratio (smiles calibrated/s, volstream worker / naive): {ratio:.1f}x")
    import jax

    record = {
        "bench": "stream",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": jax.devices()[0].platform,
        "cores": os.cpu_count(),
        "throughput": through,
        "latency": latency,
        "naive": peer,
        "ratio_smiles_per_s": ratio,
        "batch": args.batch,
        "linger_s": args.linger,
    }
    write_record(args.out, record)
    return record


if __name__ == "__main__":
    main()
