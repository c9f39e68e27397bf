"""Bursts and breadth (issue 22, scenario 5): a worker on the broker given a burst of ticks
for thousands of underlyings at once, half of which then fall silent.

``wide_market`` makes the ticks: ``underlyings`` FX-like names (W0000, W0001, ...) of
``expiries`` dated expiries and ``strikes`` strikes each, every smile a SABR smile (beta 0.5,
its own alpha, rho, nu) quoted with a 5 bp half spread around the model. Round ``r`` quotes each
smile of the names still quoted at one strike (cycling through them, so a smile is whole after
``strikes`` rounds), ``step`` seconds of event time after the round before; the first half of
the names stop after ``quiet_after`` seconds of event time, the rest go on to the end.

Run (``--underlyings 5000 --expiries 10``: 50,000 smiles; ``--ticks 1000000``: the burst)::

    .venv/bin/python bench/wide.py --underlyings 5000 --ticks 1000000

It sends every tick before the worker starts (a backlog: the worst burst), starts a worker
with ``VOLSTREAM_EVICT_AFTER`` shorter than the stream, and reports the time to drain, the
worker's peak RSS (``VmHWM``), the smiles held and dropped (its /metrics), and writes a JSON
line to ``bench/results/wide.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from engine.sabr import hagan_vol
from schemas import QuoteColumns, time_to_expiry
from schemas.columns import MAX_COLUMN_ROWS

HALF_SPREAD = 5e-4  # vol: within the book's 5 bp floor, so a re-quote alone is no trigger


def wide_market(
    underlyings: int,
    expiries: int,
    strikes: int,
    start: float,
    rounds: int,
    step: float,
    quiet_after: float,
    seed: int = 7,
) -> Iterator[QuoteColumns]:
    """The rounds of ticks (see the module doc), as column messages of at most
    ``MAX_COLUMN_ROWS`` rows, in event-time order."""
    rng = np.random.default_rng(seed)
    day = dt.datetime.fromtimestamp(start, dt.UTC).date()
    dates = [(day + dt.timedelta(days=30 * (i + 1))).isoformat() for i in range(expiries)]
    names = [f"W{i:04d}" for i in range(underlyings)]
    alpha = rng.uniform(0.05, 0.12, underlyings)
    rho, nu = rng.uniform(-0.4, 0.1, underlyings), rng.uniform(0.3, 0.9, underlyings)
    forward = np.exp(rng.normal(0.0, 0.3, underlyings))
    moneyness = np.linspace(0.9, 1.1, strikes)
    u, x = np.divmod(np.arange(underlyings * expiries), expiries)  # every smile, by name
    t = np.array([time_to_expiry(start, d) for d in dates])
    late = np.flatnonzero(u >= underlyings // 2)  # the names still quoted after quiet_after
    for r in range(rounds):
        quoted = np.arange(u.size) if r * step < quiet_after else late
        qu, qx = u[quoted], x[quoted]
        f = forward[qu]
        k = f * moneyness[r % strikes]
        vol = np.asarray(hagan_vol(k, f, t[qx], alpha[qu], 0.5, rho[qu], nu[qu]))
        ts = start + r * step + step * np.arange(quoted.size) / quoted.size
        for lo in range(0, quoted.size, MAX_COLUMN_ROWS):
            s = slice(lo, lo + MAX_COLUMN_ROWS)
            n = ts[s].size
            yield QuoteColumns.of(
                ts=ts[s], underlying=[names[i] for i in qu[s].tolist()], asset_class=["fx"] * n,
                expiry=[dates[i] for i in qx[s].tolist()], strike=k[s], source=["wide"] * n,
                seq=np.arange(lo, lo + n), forward=f[s],
                bid_vol=vol[s] - HALF_SPREAD, ask_vol=vol[s] + HALF_SPREAD,
            )  # fmt: skip


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (``VmHWM``), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def burst(bootstrap: str, workdir: Path, underlyings: int, expiries: int, ticks: int,
          seconds: float, evict_after: float, trigger_age: float = 30.0, strikes: int = 6,
          partitions: int = 6) -> dict:  # fmt: skip
    """Start a worker, wait until it is warm, send it ``ticks`` ticks of ``wide_market`` (all
    at once: the producer outruns it) spanning ``seconds`` of event time, the first half of
    the names silent after a quarter of it; wait until its lag drained. What was measured.
    ``trigger_age``: the worker's ``VOLSTREAM_TRIGGER_AGE`` (every quote lies within its fit's
    tolerance, so a smile is fitted again only that often: the fits' share of the work)."""
    from bench.stream import scrape_one, start_worker, stop_worker, wait_warm
    from streams.feed.send import ensure_topics, send_columns, wait_consumed
    from streams.local.broker import free_port
    from streams.settings import Settings

    prefix = f"wide-{uuid.uuid4().hex[:8]}"
    settings = Settings(bootstrap=bootstrap, topic_prefix=prefix, app_id=f"{prefix}-g",
                        partitions=partitions)  # fmt: skip
    asyncio.run(ensure_topics(settings))
    smiles = underlyings * expiries
    rounds = max(1, round(ticks / (0.625 * smiles)))  # a quarter of the rounds quote all
    port, log = free_port(), workdir / f"{prefix}.log"
    state = Path(os.environ.get("VOLSTREAM_STATE_DIR", workdir / "state"))
    worker = start_worker(settings, state, log, port, VOLSTREAM_EVICT_AFTER=str(evict_after),
                          VOLSTREAM_MAX_QUOTE_AGE=str(min(300.0, evict_after)),
                          VOLSTREAM_TRIGGER_AGE=str(trigger_age), VOLSTREAM_WARM_RUNBOOK="0",
                          VOLSTREAM_JOBS="none")  # fmt: skip
    try:
        wait_warm(port, worker, log, ready_only=True)
        rss_warm = peak_rss_mb(worker.pid)
        chunks = list(wide_market(underlyings, expiries, strikes, 1.8e9, rounds,
                                  seconds / rounds, seconds / 4))  # fmt: skip
        began = time.monotonic()
        sent = asyncio.run(send_columns(chunks, settings, batch=4096)).sent
        produced = time.monotonic() - began
        asyncio.run(wait_consumed(settings, timeout=3600))
        drained = time.monotonic() - began
        figures = {name: scrape_one(port, f"volstream_{name}")
                   for name in ("surfaces", "evicted_total", "ticks_total")}  # fmt: skip
        rss = peak_rss_mb(worker.pid)
        alive = worker.poll() is None
    finally:
        stop_worker(worker)
    return {
        "ticks": sent, "underlyings": underlyings, "smiles": smiles, "rounds": rounds,
        "event_seconds": seconds, "evict_after": evict_after, "trigger_age": trigger_age,
        "produced_s": round(produced, 1), "drained_s": round(drained, 1),
        "ticks_per_s": round(sent / drained), "rss_warm_mb": round(rss_warm),
        "peak_rss_mb": round(rss), "held": figures["surfaces"],
        "dropped": figures["evicted_total"], "consumed": figures["ticks_total"],
        "alive": alive, "log": str(log),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--underlyings", type=int, default=5000)
    parser.add_argument("--expiries", type=int, default=10)
    parser.add_argument("--ticks", type=int, default=1_000_000, help="the burst's size")
    parser.add_argument("--seconds", type=float, default=2400.0, help="event time it spans")
    parser.add_argument("--evict-after", type=float, default=900.0,
                        help="VOLSTREAM_EVICT_AFTER of the worker")  # fmt: skip
    parser.add_argument("--trigger-age", type=float, default=30.0,
                        help="VOLSTREAM_TRIGGER_AGE of the worker")  # fmt: skip
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.stream, as a script
    from streams.local.broker import BrokerConfig, LocalKafka, free_port

    with tempfile.TemporaryDirectory() as tmp:
        broker = LocalKafka(BrokerConfig(state_dir=Path(tmp) / "kafka", port=free_port(),
                                         controller_port=free_port()))  # fmt: skip
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or broker.start()
        try:
            record = burst(bootstrap, Path(tmp), args.underlyings, args.expiries, args.ticks,
                           args.seconds, args.evict_after, args.trigger_age)  # fmt: skip
        finally:
            broker.stop()
    record |= {"bench": "wide", "device": "cpu", "cores": os.cpu_count(),
               "date": dt.date.today().isoformat()}  # fmt: skip
    print(json.dumps(record))
    with (Path(__file__).parent / "results" / "wide.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
