"""The stream on a real broker: one worker against a naive aiokafka + QuantLib pipeline.

In one run (local KRaft broker unless ``KAFKA_BOOTSTRAP_SERVERS`` is set), with 504 FX smiles
(6 pairs x 84 weekly expiries, SABR) and 5 index surfaces (4 expiries x 11 strikes, Heston):

1. backlog: ``--ticks`` ticks, event times 20 us apart (50,000 a second: a busy live stream's
   density), produced before the worker starts; ticks/s from the worker's first received batch
   to its last published parameters, once the group's committed offsets reached the end;
2. live: ticks paced at each of ``--rates`` ticks/s for ``--seconds`` each, event time = the
   time a tick is due; freshness of every tick = the time an independent consumer reads the
   first parameters of its smile or surface whose window ends at or after it, minus its event
   time (p50, p99, and the share of ticks whose smile was calibrated at all); the worker's CPU
   per tick from ``/proc``; XLA compilations during the phase from its ``/metrics``;
3. single quotes: a backlog of ``--single`` ticks sent one quote a message;
4. the naive peer: an aiokafka consumer keeping per-row Python surfaces with the same
   triggers, fitting each due smile with QuantLib's ``SABRInterpolation`` and each due surface
   with QuantLib's Heston calibration, one at a time, on the same backlog topic (for at most
   ``--peer-seconds``) and at the first live rate, publishing to a topic of its own.

Prints every figure and ratio and appends a JSON line to ``bench/results/stream.jsonl``.

    .venv/bin/python bench/stream.py [--ticks 1000000] [--rates 20000 100000 300000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
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

from bench.quantlib_peer import quantlib_heston_fit, quantlib_sabr_fit, write_record
from schemas import Params, Quote, QuoteBatch, QuoteColumns, book_key, decode, encode
from streams.book.calibrations import surface_market_data
from streams.book.surfaces import SmileSnapshot, SurfaceConfig, SurfaceSnapshot
from streams.feed.send import SendSummary, ensure_topics, send_columns, wait_consumed
from streams.feed.simulate import TENOR_DAYS, TickSimulator
from streams.local.broker import BrokerConfig, LocalKafka
from streams.settings import Settings
from streams.worker.metrics import scrape

VOLSTREAM = Path(sys.executable).with_name("volstream")
WEEKLY = tuple(range(7, 7 * 84 + 1, 7))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def simulator(seed: int) -> TickSimulator:
    return TickSimulator(pairs=6, indices=5, tenors=WEEKLY, index_tenors=TENOR_DAYS, seed=seed)


class Recorder:
    """Wraps a chunk generator; keeps each row's smile or surface (an integer code) and event
    time, so the freshness of every tick can be computed afterwards."""

    def __init__(self, chunks) -> None:
        self.chunks, self.keys, self.ts, self.codes = chunks, [], [], {}

    def __iter__(self):
        for chunk in self.chunks:
            names = chunk.text["underlying"].decoded()
            expiries = chunk.text["expiry"].decoded()
            equity = chunk.text["asset_class"].decoded() == "equity"
            keys = [book_key(u, None if e else x) for u, x, e in zip(names, expiries, equity)]
            self.keys.append(np.array([self.codes.setdefault(k, len(self.codes)) for k in keys]))
            self.ts.append(chunk.numbers["ts"].copy())
            yield chunk


async def collect(bootstrap: str, topic: str, stop: asyncio.Event) -> list[tuple[float, Params]]:
    """(time read, Params) of every message on ``topic`` until ``stop`` is set."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    await consumer.seek_to_end()
    out: list[tuple[float, Params]] = []
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batch.values():
                out.extend((now, decode(r.value, Params)) for r in records)
    finally:
        await consumer.stop()
    return out


def freshness(recorder: Recorder, restamp, seen: list[tuple[float, Params]]) -> dict:
    """Per tick: first read time of its smile's parameters with window end >= its event time,
    minus that event time."""
    keys = np.concatenate(recorder.keys)
    ts = restamp(np.concatenate(recorder.ts))
    by_key: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    rows: dict[int, list[tuple[float, float]]] = {}
    for read, p in seen:
        code = recorder.codes.get(p.key)
        if code is not None:
            rows.setdefault(code, []).append((p.window_end, read))
    for code, pairs in rows.items():
        ends, reads = np.array(pairs).T
        order = np.argsort(ends, kind="stable")
        ends, reads = ends[order], np.minimum.accumulate(reads[order][::-1])[::-1]
        by_key[code] = (ends, reads)  # earliest read among params ending at or after each end
    lag = np.full(ts.size, np.nan)
    for code, (ends, reads) in by_key.items():
        mine = np.flatnonzero(keys == code)
        i = np.searchsorted(ends, ts[mine] - 1e-9)  # window end >= tick time
        ok = i < ends.size
        lag[mine[ok]] = reads[i[ok]] - ts[mine[ok]]
    # the last ticks of a run may never be calibrated (no later epoch): leave the last second
    settled = ts <= ts.max() - 1.0
    done = np.isfinite(lag) & settled
    return {
        "p50_ms": float(1e3 * np.percentile(lag[done], 50)) if done.any() else None,
        "p99_ms": float(1e3 * np.percentile(lag[done], 99)) if done.any() else None,
        "covered": float(done.sum() / max(settled.sum(), 1)),
        "ticks": int(ts.size),
    }


def start_worker(settings: Settings, state_dir: Path, log: Path, port: int):
    env = os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap,
        "VOLSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "VOLSTREAM_APP_ID": settings.app_id,
        "VOLSTREAM_STATE_DIR": str(state_dir),
        "VOLSTREAM_METRICS_PORT": str(port),
    }
    with log.open("w") as fh:
        return subprocess.Popen(
            [str(VOLSTREAM), "worker"], env=env, stdout=fh, stderr=subprocess.STDOUT
        )


def stop_worker(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(60)
    except subprocess.TimeoutExpired:
        worker.kill()


def scrape_one(port: int, name: str) -> float:
    """One unlabelled sample of the worker's ``/metrics`` (NaN while not served, 0 absent)."""
    try:
        return scrape(port).get((name, ()), 0.0)
    except OSError:
        return math.nan


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drain(settings: Settings, chunks, batch: int = 1024):
    """Send ``chunks`` unpaced to a listening worker and read the params topic until its
    group committed the end of the quotes: what was read, and the ticks sent."""
    stop = asyncio.Event()
    reader = asyncio.create_task(collect(settings.bootstrap, settings.topics["params"], stop))
    await asyncio.sleep(1.0)  # the reader is at the end
    sent = await send_columns(chunks, settings, batch=batch)
    await wait_consumed(settings, timeout=1800)
    await asyncio.sleep(2)  # the last deliveries reach the reader
    stop.set()
    return await reader, sent.sent


def wait_warm(port: int, worker: subprocess.Popen, timeout: float = 900) -> float:
    """Seconds until the worker serves metrics and its background warm-up is done."""
    start = time.time()
    while time.time() - start < timeout:
        if worker.poll() is not None:
            raise RuntimeError("the worker died: see its log")
        if scrape_one(port, "volstream_warming_up") == 0.0:
            return time.time() - start
        time.sleep(0.5)
    raise TimeoutError("the worker did not finish compiling")


def measure_backlog(seen: list[tuple[float, Params]], ticks: int) -> dict:
    params = [p for _, p in seen]
    t0 = min(p.received_at for p in params)
    t1 = max(p.published_at for p in params)
    return {
        "ticks": ticks,
        "seconds": t1 - t0,
        "ticks_per_s": ticks / (t1 - t0),
        "calibrations": len(params),
        "calibrations_per_s": len(params) / (t1 - t0),
        "converged": float(np.mean([p.converged for p in params])),
        "good": float(np.mean([p.good for p in params])),
        "heston": sum(p.model == "heston" for p in params),
    }


async def live_run(settings: Settings, rate: float, seconds: float, seed: int):
    stop = asyncio.Event()
    reader = asyncio.create_task(collect(settings.bootstrap, settings.topics["params"], stop))
    await asyncio.sleep(1.0)  # the reader is at the end before the first tick leaves
    start = time.time()  # the book holds every option already (the backlog's opening quotes)
    chunks = simulator(seed).columns(start, rate, int(rate * seconds), chunk=2048, opening=False)
    recorder = Recorder(chunks)
    summary: SendSummary = await send_columns(
        recorder, settings, due=lambda ts: ts - start, restamp=True, batch=1024
    )
    await asyncio.sleep(3)
    stop.set()
    seen = await reader
    return recorder, (lambda ts: summary.started + (ts - start)), seen, summary


# -- the naive peer ---------------------------------------------------------------------------


class NaiveBook:
    """Per-row Python surfaces with the worker's *former* triggers (5 new quotes a smile, 25 a
    surface, a 5 bp forward move, max age; outliers not filtered: the peer is naive).

    NOT like for like since issue 20: the worker now calibrates on tolerance triggers
    (streams.book.surfaces); this peer has not been rebuilt with them yet, so the ratio this
    script prints compares different trigger rules and is marked so."""

    TICKS, SURFACE_TICKS, FORWARD_MOVE = 5, 25, 5e-4

    def __init__(self, config: SurfaceConfig) -> None:
        self.c, self.books = config, {}

    def on_quote(self, q: Quote):
        equity = q.asset_class == "equity"
        key = book_key(q.underlying, None if equity else q.expiry)
        b = self.books.setdefault(key, {"quotes": {}, "pending": 0, "fit_ts": None, "level": 0.0})
        b["quotes"][(q.expiry, q.strike)] = q
        b["pending"] += 1
        b["level"], b["ts"] = (q.spot if equity else q.forward), q.ts
        need = self.c.surface_min_quotes if equity else self.c.min_quotes
        ticks = self.SURFACE_TICKS if equity else self.TICKS
        if len(b["quotes"]) < need:
            return None
        moved = (
            b["fit_ts"] is not None and abs(b["level"] / b["fit_level"] - 1) >= self.FORWARD_MOVE
        )
        if b["fit_ts"] is not None and b["pending"] < ticks and not moved:
            return None
        b["pending"], b["fit_ts"], b["fit_level"] = 0, q.ts, b["level"]
        quotes = sorted(b["quotes"].values(), key=lambda x: (x.expiry, x.strike))
        if not equity:
            return SmileSnapshot(
                q.underlying, "fx", q.expiry, q.forward, q.time_to_expiry,
                tuple(x.strike for x in quotes), tuple(x.vol for x in quotes),
                quotes[0].ts, q.ts, 0, time.time(),
            )  # fmt: skip
        nan = lambda x: math.nan if x is None else x  # noqa: E731
        return SurfaceSnapshot(
            q.underlying, q.spot, tuple(x.expiry for x in quotes),
            tuple(x.time_to_expiry for x in quotes), tuple(x.strike for x in quotes),
            tuple(x.rate for x in quotes), tuple(x.dividend for x in quotes),
            tuple(nan(x.vol) for x in quotes), tuple(nan(x.price) for x in quotes),
            tuple(x.call for x in quotes), tuple(x.spot for x in quotes),
            tuple(nan(x.open_interest) for x in quotes), quotes[0].ts, q.ts, 0, time.time(),
        )  # fmt: skip


def naive_params(snap) -> Params:
    """What the peer does per due smile or surface: fit with QuantLib, make the message."""
    if isinstance(snap, SmileSnapshot):
        (alpha, rho, nu), _ = quantlib_sabr_fit(
            snap.forward, snap.time_to_expiry, snap.strikes, snap.vols
        )
        params, expiry, t, fwd = (
            {"alpha": alpha, "beta": 0.5, "rho": rho, "nu": nu},
            snap.expiry,
            snap.time_to_expiry,
            snap.forward,
        )
    else:
        data = surface_market_data(snap)
        days = np.maximum(1, np.round(data["maturities"] * 365))
        _, _, params = quantlib_heston_fit(
            data["strikes"], days, data["target_vols"], spot=snap.spot,
            rate=float(np.mean(data["rate"])), dividend=float(np.mean(data["dividend"])),
        )  # fmt: skip
        expiry, t, fwd = snap.expiries[-1], max(snap.times), snap.spot
    return Params(
        underlying=snap.underlying, expiry=expiry, model="sabr" if "alpha" in params else "heston",
        params=params, forward=fwd, time_to_expiry=t, converged=True, status="quantlib",
        warm=False, iterations=0, rmse=0.0, gates={}, diagnostics={},
        window_start=snap.window_start, window_end=snap.window_end, n_quotes=len(snap.strikes),
        received_at=snap.received_at, published_at=time.time(),
        spot=None if "alpha" in params else snap.spot,
        expiries=None if "alpha" in params else tuple(sorted(set(snap.expiries))),
    )  # fmt: skip


def naive(settings: Settings, limit_ticks: int, limit_seconds: float, out_topic: str) -> dict:
    """The peer on the quotes topic from its start: ticks/s until ``limit_ticks`` or
    ``limit_seconds``; it publishes each fit to ``out_topic``."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run() -> dict:
        consumer = AIOKafkaConsumer(
            settings.topics["quotes"],
            bootstrap_servers=settings.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
        )
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
        await consumer.start()
        await producer.start()
        book, ticks, fits, start = NaiveBook(SurfaceConfig()), 0, 0, None
        try:
            while ticks < limit_ticks and (start is None or time.time() - start < limit_seconds):
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
                            snap = book.on_quote(quote)
                            if snap is not None:
                                p = naive_params(snap)
                                await producer.send(out_topic, encode(p), key=p.key.encode())
                                fits += 1
        finally:
            await producer.stop()
            await consumer.stop()
        elapsed = time.time() - start
        return {"ticks": ticks, "ticks_per_s": ticks / elapsed, "fits_per_s": fits / elapsed}

    return asyncio.run(run())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=1_000_000, help="backlog ticks")
    parser.add_argument("--rates", type=float, nargs="+", default=[20_000, 100_000, 300_000])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each live run")
    parser.add_argument("--single", type=int, default=100_000, help="single-quote backlog")
    parser.add_argument("--peer-seconds", type=float, default=60.0)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "stream.jsonl"
    )
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="volstream-bench-"))
    state_dir = Path(os.environ.get("VOLSTREAM_STATE_DIR", Path.home() / ".volstream"))
    broker, bootstrap = None, os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = LocalKafka(
            BrokerConfig(state_dir=tmp / "kafka", port=_free_port(), controller_port=_free_port())
        )
        bootstrap = broker.start()
    record: dict = {"bench": "stream", "device": "cpu", "cores": os.cpu_count()}
    try:
        run = f"bench-{uuid.uuid4().hex[:6]}"
        settings = Settings(bootstrap=bootstrap, topic_prefix=run, app_id=run)
        asyncio.run(ensure_topics(settings))
        port = _free_port()
        worker = start_worker(settings, state_dir, tmp / "worker.log", port)
        try:
            warm = wait_warm(port, worker)
            print(f"worker compiled and listening after {warm:.0f} s", flush=True)
            # event times just before the live runs, so the live ticks find these quotes fresh
            backlog = simulator(11).columns(
                time.time() - 25, 50_000.0, count=args.ticks, chunk=8192
            )
            seen, total = asyncio.run(drain(settings, backlog))
            print(f"backlog: {total:,} ticks", flush=True)
            record["backlog"] = through = measure_backlog(seen, total)
            print(
                f"worker, backlog: {through['ticks_per_s']:,.0f} ticks/s "
                f"({through['calibrations']:,} calibrations, {through['calibrations_per_s']:,.0f}/s;"
                f" {through['converged']:.2%} converged, {through['good']:.2%} good)",
                flush=True,
            )
            record["live"] = []
            for i, rate in enumerate(args.rates):
                compiles0, cpu0 = (
                    scrape_one(port, "volstream_compiles_total"),
                    cpu_seconds(worker.pid),
                )
                recorder, restamp, seen, summary = asyncio.run(
                    live_run(settings, rate, args.seconds, seed=20 + i)
                )
                cpu1, compiles1 = (
                    cpu_seconds(worker.pid),
                    scrape_one(port, "volstream_compiles_total"),
                )
                behind = time.time()
                asyncio.run(wait_consumed(settings, timeout=1800))  # the next rate starts clean
                behind = time.time() - behind
                fresh = freshness(recorder, restamp, seen)
                achieved = summary.sent / max(summary.seconds, 1e-9)
                live = {
                    "rate": rate,
                    "sent_per_s": achieved,
                    **fresh,
                    "calibrations": len(seen),
                    "good": float(np.mean([p.good for _, p in seen])) if seen else None,
                    "worker_cpu_us_per_tick": 1e6 * (cpu1 - cpu0) / max(summary.sent, 1),
                    "compiles": compiles1 - compiles0,
                    "caught_up_after_s": behind,  # after the last tick (+3 s): how far behind
                }
                record["live"].append(live)
                print(
                    f"live {rate:,.0f} ticks/s (sent {achieved:,.0f}/s): freshness p50 "
                    f"{fresh['p50_ms']:.1f} ms, p99 {fresh['p99_ms']:.1f} ms, {fresh['covered']:.1%}"
                    f" of ticks calibrated; worker CPU {live['worker_cpu_us_per_tick']:.1f} us "
                    f"a tick; {live['compiles']:.0f} compilations; caught up {behind:.0f} s after",
                    flush=True,
                )
        finally:
            stop_worker(worker)

        if args.single:  # the same worker code, fed one quote a message
            single = Settings(bootstrap=bootstrap, topic_prefix=run + "-1", app_id=run + "-1")
            asyncio.run(ensure_topics(single))
            port = _free_port()
            worker = start_worker(single, state_dir, tmp / "worker-1.log", port)
            try:
                wait_warm(port, worker)
                ticks = simulator(13).columns(time.time() - 3600, 50_000.0, count=args.single)
                seen, total_single = asyncio.run(drain(single, ticks, batch=1))
            finally:
                stop_worker(worker)
            record["single_quotes"] = one = measure_backlog(seen, total_single)
            print(f"worker, single-quote messages: {one['ticks_per_s']:,.0f} ticks/s", flush=True)

        peer_topic = dataclasses.replace(settings, topic_prefix=run + "-naive")
        asyncio.run(ensure_topics(peer_topic))
        peer = naive(settings, total, args.peer_seconds, peer_topic.topics["params"])
        record["naive"] = peer
        print(
            f"naive aiokafka + QuantLib, backlog: {peer['ticks_per_s']:,.0f} ticks/s "
            f"({peer['fits_per_s']:,.0f} fits/s, {peer['ticks']:,} ticks in {args.peer_seconds:.0f} s)",
            flush=True,
        )
    finally:
        if broker is not None:
            broker.stop()
    ratio = through["ticks_per_s"] / peer["ticks_per_s"]
    record["ratio_ticks_per_s"] = ratio
    print(
        f"ratio, backlog ticks/s: worker {through['ticks_per_s']:,.0f} / naive "
        f"{peer['ticks_per_s']:,.0f} = {ratio:.1f}x (NOT like for like: the peer still uses the "
        "former quote-count triggers, see NaiveBook)"
    )
    write_record(args.out, record)
    return record


if __name__ == "__main__":
    main()
