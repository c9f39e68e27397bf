"""The stream on a real broker: one worker against a naive aiokafka + QuantLib pipeline, on
the same ticks with the same trigger rules.

In one run (local KRaft broker unless ``KAFKA_BOOTSTRAP_SERVERS`` is set), with 504 FX smiles
(6 pairs x 84 weekly expiries, SABR) and 5 index surfaces (4 expiries x 11 strikes, Heston),
one simulated market (drift per unit of event time, a jump of 20-60 vol bp on one pair or
index every ``--jump-every`` event seconds, quotes noisy inside their bid-ask) goes on through
every phase:

1. backlog: ``--ticks`` ticks, event times 20 us apart (50,000 a second), sent unpaced to the
   warm worker (the producer outruns it): ticks/s from the worker's first received batch to
   its last published parameters, calibrations, the worker's CPU per tick (``/proc``) and
   XLA compilations (its ``/metrics``); and, on its index ticks, how often the worker's vol-grid
   check decides as a full Heston repricing would;
2. live: ticks paced at each of ``--rates`` ticks/s for ``--seconds``, event time = the time a
   tick is due. An independent consumer reads the watermarks and parameters (``schemas``
   alone). Freshness of a tick: the time the first watermark of its partition with event time
   at or after it was read, minus its event time (p50/p99); the same for a jump's ticks (those
   of the jumped underlying within ``min_interval`` after it, which its old fit no longer
   reflects); tracking: once a second, the share of every option's latest quote that the
   latest parameters read by then fit within tolerance (Hagan's vol; a full Heston repricing);
3. the naive peer (``NaiveBook``): aiokafka, per-row Python with the same tolerance rules
   (QuantLib's ``sabrVolatility`` or an ``AnalyticHestonEngine`` price per tick), QuantLib's
   ``SABRInterpolation`` and Heston calibration per due smile and surface, each warm from its
   last fit (cold the first time) as the worker's are, on the same backlog topic from its
   start (for at most ``--peer-seconds``);
4. what the audit trail and the checkpoints cost: the same backlog to fresh workers with and
   without calibration records (``VOLSTREAM_AUDIT``), then with and without a checkpoint after
   every batch (``VOLSTREAM_CHECKPOINT``), each alternating on, off, off, on: both rates
   (``--costs`` picks them, ``--costs-only`` runs nothing else).

Prints every figure and ratio and appends a JSON line to ``bench/results/stream.jsonl``.

    .venv/bin/python bench/stream.py [--ticks 1000000] [--rates 20000 100000 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import QuantLib as ql

from bench.quantlib_peer import quantlib_heston_fit, quantlib_sabr_fit, write_record
from engine.blackscholes import (
    black_vega,
    discount_factor,
    forward_price,
    implied_vols_of_prices,
)
from engine.buckets import on_host
from engine.heston import PARAM_NAMES as HESTON_NAMES
from engine.heston import heston_price
from engine.model_values import grid_vols, heston_vol_grid, quote_checks
from engine.sabr import PARAM_NAMES as SABR_NAMES
from engine.sabr import hagan_vol
from schemas import (
    Params,
    Quote,
    QuoteBatch,
    QuoteColumns,
    Watermark,
    book_key,
    decode,
    encode,
    mid,
)  # fmt: skip
from schemas.daycount import YEAR_SECONDS, expiry_epoch
from streams.book.calibrations import snapshot_surface
from streams.book.surfaces import SmileSnapshot, SurfaceConfig, SurfaceSnapshot
from streams.feed.freshness import partitions_of, watermark_lags
from streams.feed.send import SendSummary, ensure_topics, send_columns, wait_consumed
from streams.feed.simulate import TENOR_DAYS, TickSimulator
from streams.local.broker import BrokerConfig, LocalKafka, free_port
from streams.settings import Settings
from streams.worker.metrics import scrape

VOLSTREAM = Path(sys.executable).with_name("volstream")
WEEKLY = tuple(range(7, 7 * 84 + 1, 7))


def simulator(seed: int, jump_every: float | None = 1.0) -> TickSimulator:
    return TickSimulator(
        pairs=6, indices=5, tenors=WEEKLY, index_tenors=TENOR_DAYS, seed=seed,
        jump_every=jump_every,
    )  # fmt: skip


class Recorder:
    """Wraps a chunk generator; keeps what the figures need of each row (its smile or surface
    as an integer code, its quotes partition, event time and quote), compactly."""

    FIELDS = ("ts", "strike", "forward", "bid_vol", "ask_vol", "spot", "rate", "dividend",
              "bid_price", "ask_price", "call")  # fmt: skip

    def __init__(self, chunks, partitions: int) -> None:
        self.chunks, self.codes, self.expiry_ends = chunks, {}, {}
        self.parts: list[dict[str, np.ndarray]] = []
        self.partitions = partitions

    def __iter__(self):
        for chunk in self.chunks:
            names = chunk.text["underlying"]
            expiries = chunk.text["expiry"]
            equity = chunk.text["asset_class"].decoded() == "equity"
            ex = expiries.decoded()
            keys = [book_key(u, None if e else x) for u, x, e in zip(names.decoded(), ex, equity)]
            part = {name: chunk.numbers[name].copy() for name in self.FIELDS}
            part["key"] = np.array([self.codes.setdefault(k, len(self.codes)) for k in keys])
            part["expiry_end"] = np.array(
                [self.expiry_ends.setdefault(x, expiry_epoch(x)) for x in ex]
            )
            part["partition"] = partitions_of(names, self.partitions)
            part["equity"] = equity
            self.parts.append(part)
            yield chunk

    def columns(self, restamp=None) -> dict[str, np.ndarray]:
        out = {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]}
        if restamp is not None:
            out["ts"] = restamp(out["ts"])
        return out


async def _collect(bootstrap: str, topics: list[str], ready, stop) -> list[tuple[float, bytes]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest",
        fetch_max_wait_ms=5,
    )  # fmt: skip
    await consumer.start()
    await consumer.seek_to_end()
    for tp in consumer.assignment():
        await consumer.position(tp)  # at the end now: later messages are all read
    ready.set()
    out: list[tuple[float, bytes]] = []
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=20)
            now = time.time()
            for records in batch.values():
                out.extend((now, r.value) for r in records)
    finally:
        await consumer.stop()
    return out


def _reader_main(bootstrap: str, topics: list[str], ready, stop, path: str) -> None:
    Path(path).write_bytes(pickle.dumps(asyncio.run(_collect(bootstrap, topics, ready, stop))))


class Reader:
    """An independent subscriber in a process of its own (the producer's loop would delay its
    reads): the time each message on ``topics`` was read, and the message, read with
    ``schemas`` alone."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.ready, self.stop_event = ctx.Event(), ctx.Event()
        self.path = Path(tempfile.mkstemp(prefix="volstream-reader-")[1])
        self.process = ctx.Process(
            target=_reader_main,
            args=(bootstrap, topics, self.ready, self.stop_event, str(self.path)),
        )

    def __enter__(self) -> Reader:
        self.process.start()
        if not self.ready.wait(60):
            raise TimeoutError("the reader did not reach the end of its topics")
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        self.process.join(60)

    def seen(self) -> list[tuple]:
        return [(read, decode(value)) for read, value in pickle.loads(self.path.read_bytes())]


def watermark_freshness(cols: dict, seen: list[tuple], mask=None) -> dict:
    """Per tick: the time its partition's first watermark with event time at or after the
    tick was read, minus the tick's event time (p50, p99, and the share of ticks covered)."""
    ts = cols["ts"]
    marks = [(read, m) for read, m in seen if isinstance(m, Watermark)]
    lag = watermark_lags(ts, cols["partition"], ts, marks)
    settled = ts <= ts.max() - 1.0  # the last second may wait for the end's flush
    if mask is not None:
        settled &= mask
    done = np.isfinite(lag) & settled
    pct = lambda q: float(1e3 * np.percentile(lag[done], q)) if done.any() else None  # noqa: E731
    return {"p50_ms": pct(50), "p99_ms": pct(99), "max_ms": pct(100),
            "covered": float(done.sum() / max(settled.sum(), 1)), "ticks": int(settled.sum())}  # fmt: skip


JUMP_WINDOW = 0.5  # event seconds after a jump whose ticks of its underlying count as its own


def jump_mask(cols: dict, recorder: Recorder, jumps, restamp) -> np.ndarray:
    """The ticks of a jumped underlying within :data:`JUMP_WINDOW` of its jump: those the
    fit before the jump no longer reflects, which wait for their smile's refits."""
    mask = np.zeros(cols["ts"].size, bool)
    by_name: dict[str, list[int]] = {}
    for key, code in recorder.codes.items():
        by_name.setdefault(key.split("|")[0], []).append(code)
    for jump in jumps:
        at = float(restamp(np.array([jump.ts]))[0])
        codes = by_name.get(jump.underlying, [])
        mask |= np.isin(cols["key"], codes) & (cols["ts"] >= at) & (cols["ts"] < at + JUMP_WINDOW)
    return mask


def within(
    cols: dict, rows: np.ndarray, fits: list[Params], config: SurfaceConfig, grid: bool = False
) -> np.ndarray:
    """Whether each tick ``rows[i]`` lies within tolerance of ``fits[i]`` (the worker's rule,
    :mod:`streams.book.surfaces`): SABR by Hagan's vol; a Heston surface by a full Lewis
    repricing, or with ``grid`` through the worker's vol grid (engine.model_values)."""
    out = np.zeros(rows.size, bool)
    c = {k: v[rows] for k, v in cols.items()}
    t = (c["expiry_end"] - c["ts"]) / YEAR_SECONDS
    floor = 1e-4 * config.tolerance_floor_bp  # every simulated quote has a bid and an ask
    sabr = np.array([f is not None and f.model == "sabr" for f in fits], bool)
    if sabr.any():
        p = {n: np.array([f.params[n] for f, s in zip(fits, sabr) if s]) for n in SABR_NAMES}
        model = on_host(hagan_vol, c["strike"][sabr], c["forward"][sabr], t[sabr],
                        *(p[n] for n in SABR_NAMES))  # fmt: skip
        vol = mid(None, c["bid_vol"][sabr], c["ask_vol"][sabr])
        tol = np.maximum(0.5 * (c["ask_vol"][sabr] - c["bid_vol"][sabr]), floor)
        out[sabr] = np.abs(vol - model) <= tol
    heston = np.flatnonzero([f is not None and f.model == "heston" for f in fits])
    by_fit: dict[int, list[int]] = {}
    for i in heston.tolist():
        by_fit.setdefault(id(fits[i]), []).append(i)
    for idx in by_fit.values():
        i = np.array(idx)
        f = fits[idx[0]]
        spot, rate, div, k = c["spot"][i], c["rate"][i], c["dividend"][i], c["strike"][i]
        call = c["call"][i] > 0
        hp = [f.params[n] for n in HESTON_NAMES]
        if grid:
            ends, inverse = np.unique(c["expiry_end"][i], return_inverse=True)
            times = (ends - f.window_end) / YEAR_SECONDS  # one grid per fit, as the worker
            g = heston_vol_grid(f.spot, times, np.full(ends.size, rate[0]),
                                np.full(ends.size, div[0]), *hp)  # fmt: skip
            fwd = forward_price(spot, rate, div, t[i])
            vol = grid_vols(g, inverse, np.log(k / fwd))
            _, price, vega = quote_checks(k, fwd, t[i], *(np.nan,) * 4, vol, spot, rate, div, call)
        else:
            price = on_host(heston_price, spot, k, t[i], rate, div, *(np.full(i.size, x) for x in hp),
                            call)  # fmt: skip
            vol = implied_vols_of_prices(price, spot, rate, div, t[i], k, call)
            vega = discount_factor(rate, t[i]) * on_host(
                black_vega, forward_price(spot, rate, div, t[i]), k, t[i], vol)  # fmt: skip
        quoted = mid(None, c["bid_price"][i], c["ask_price"][i])
        tol = np.maximum(0.5 * (c["ask_price"][i] - c["bid_price"][i]), floor * vega)
        out[i] = np.abs(quoted - price) <= tol
    return out


def latest_fits(seen: list[tuple], codes: dict[str, int], until: float) -> dict[int, Params]:
    """The latest converged parameters of each smile or surface read by ``until``."""
    out: dict[int, Params] = {}
    for read, m in seen:
        if read > until:
            break
        if isinstance(m, Params) and m.converged and m.key in codes:
            out[codes[m.key]] = m
    return out


def tracking(cols: dict, seen: list[tuple], codes: dict, config: SurfaceConfig) -> dict:
    """Once a second: the share of the latest quote of every option that the latest
    parameters read by then fit within tolerance (min and mean over the seconds)."""
    _, slot = np.unique(np.stack([cols["key"], cols["expiry_end"], cols["strike"]]), axis=1,
                        return_inverse=True)  # fmt: skip
    order = np.lexsort((cols["ts"], slot))
    ts_sorted, slot_sorted = cols["ts"][order], slot[order]
    shares = []
    for b in np.arange(cols["ts"].min() + 1.0, cols["ts"].max(), 1.0):
        taken = np.flatnonzero(ts_sorted <= b)
        last = taken[np.r_[slot_sorted[taken][1:] != slot_sorted[taken][:-1], True]]
        rows = order[last]
        fits = latest_fits(seen, codes, b)
        chosen = [fits.get(int(k)) for k in cols["key"][rows]]
        shares.append(float(np.mean(within(cols, rows, chosen, config))))
    return {"min": min(shares, default=None), "mean": float(np.mean(shares)) if shares else None,
            "seconds": len(shares)}  # fmt: skip


def grid_agreement(
    cols: dict, seen: list[tuple], codes: dict, config: SurfaceConfig, sample: int = 20_000
) -> dict:
    """On index ticks of the run: how often the worker's grid check and a full Heston
    repricing decide alike, each tick against its surface's latest fit ending before it."""
    fits: dict[int, list[Params]] = {}
    for _, m in seen:
        if isinstance(m, Params) and m.model == "heston" and m.converged and m.key in codes:
            fits.setdefault(codes[m.key], []).append(m)
    rows = np.flatnonzero(cols["equity"])
    rows = rows[:: max(1, rows.size // sample)]
    chosen = []
    for k, ts in zip(cols["key"][rows].tolist(), cols["ts"][rows].tolist()):
        ends = [f for f in fits.get(k, []) if f.window_end < ts]
        chosen.append(ends[-1] if ends else None)
    keep = np.array([f is not None for f in chosen], bool)
    rows, chosen = rows[keep], [f for f in chosen if f is not None]
    full = within(cols, rows, chosen, config)
    fast = within(cols, rows, chosen, config, grid=True)
    return {"ticks": int(rows.size), "agree": float(np.mean(full == fast)) if rows.size else None,
            "out_full": int((~full).sum()), "out_grid": int((~fast).sum())}  # fmt: skip


def start_worker(settings: Settings, state_dir: Path, log: Path, port: int, **more: str):
    env = (
        os.environ
        | more
        | {
            "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap,
            "VOLSTREAM_TOPIC_PREFIX": settings.topic_prefix,
            "VOLSTREAM_APP_ID": settings.app_id,
            "VOLSTREAM_STATE_DIR": str(state_dir),
            "VOLSTREAM_METRICS_PORT": str(port),
        }
    )
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
    """Send ``chunks`` unpaced to a listening, warm worker (the producer outruns it) and read
    the params and watermarks until its group committed the end of the quotes: what was read,
    and the ticks sent."""
    topics = [settings.topics["params"], settings.topics["watermarks"]]
    with Reader(settings.bootstrap, topics) as reader:
        sent = await send_columns(chunks, settings, batch=batch)
        await wait_consumed(settings, timeout=1800)
        await asyncio.sleep(2)  # the last deliveries reach the reader
    return reader.seen(), sent.sent


def wait_warm(port: int, worker: subprocess.Popen, log: Path, timeout: float = 900,
              ready_only: bool = False):  # fmt: skip
    """Seconds until the worker serves metrics with its batch shapes loaded (``ready``, what
    the demo waits for) and until its background warm-up of the runbook's steps, which it
    logs, is done too: no phase measures a worker still tracing programs (``ready_only``: a
    worker that does not warm the runbook)."""
    start, ready = time.time(), None
    while time.time() - start < timeout:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker died: see {log}")
        if ready is None and scrape_one(port, "volstream_warming_up") == 0.0:
            ready = time.time() - start
        if ready is not None and (ready_only or "traced the runbook's steps" in log.read_text()):
            return ready, time.time() - start
        time.sleep(0.5)
    raise TimeoutError("the worker did not finish compiling")


COSTS = {"audit": "VOLSTREAM_AUDIT", "checkpoint": "VOLSTREAM_CHECKPOINT"}


def switch_cost(feature: str, bootstrap: str, run: str, state_dir: Path, tmp: Path, args) -> dict:
    """The backlog's rate with ``feature`` (a key of :data:`COSTS`) on and off: fresh workers
    on fresh topics, the same ticks, in the order on, off, off, on (the machine's drift within
    a run falls on both sides alike); the mean rate of each side, and the share of the rate
    the feature costs."""
    rates: dict[str, list[float]] = {"1": [], "0": []}
    order = ["1", "0", "0", "1"]
    for i, on in enumerate(order):
        name = f"{run}-{feature}{on}-{i}"
        settings = Settings(bootstrap=bootstrap, topic_prefix=name, app_id=name)
        asyncio.run(ensure_topics(settings))
        port = free_port()
        log = tmp / f"worker-{name}.log"
        worker = start_worker(settings, state_dir, log, port, **{COSTS[feature]: on})
        try:
            wait_warm(port, worker, log)
            ticks = simulator(11, args.jump_every).columns(
                time.time() - 25, 50_000.0, count=args.ticks, chunk=8192
            )
            seen, total = asyncio.run(drain(settings, ticks))
        finally:
            stop_worker(worker)
        rates[on].append(measure_backlog(seen, total)["ticks_per_s"])
    with_, without = (float(np.mean(rates[k])) for k in ("1", "0"))
    return {"with": with_, "without": without, "cost": 1.0 - with_ / without, "runs": rates,
            "order": ["on" if a == "1" else "off" for a in order]}  # fmt: skip


def measure_costs(args, bootstrap: str, run: str, state_dir: Path, tmp: Path, record: dict):
    """Phase 4: each of ``args.costs`` measured (:func:`switch_cost`), printed and recorded."""
    for feature in args.costs:
        record[f"{feature}_cost"] = cost = switch_cost(
            feature, bootstrap, run, state_dir, tmp, args
        )
        print(
            f"{feature}: backlog {cost['with']:,.0f} ticks/s with it, "
            f"{cost['without']:,.0f} without (fresh workers, in the order "
            f"{', '.join(cost['order'])}; each the mean of two): "
            f"{100 * cost['cost']:+.1f}% of the rate",
            flush=True,
        )


def measure_backlog(seen: list[tuple], ticks: int) -> dict:
    params = [m for _, m in seen if isinstance(m, Params)]
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


async def live_run(settings: Settings, sim: TickSimulator, rate: float, seconds: float):
    """Ticks of ``sim``'s market (going on from its last call) paced at ``rate`` for
    ``seconds``, each restamped to the time it is due; the params and watermarks read
    meanwhile (and 3 s after)."""
    topics = [settings.topics["params"], settings.topics["watermarks"]]
    with Reader(settings.bootstrap, topics) as reader:
        start = time.time()  # the book holds every option already (the backlog's opening)
        chunks = sim.columns(
            start, rate, int(rate * seconds), chunk=2048, opening=False, resume=True
        )
        recorder = Recorder(chunks, settings.partitions)
        summary: SendSummary = await send_columns(
            recorder, settings, due=lambda ts: ts - start, restamp=True, batch=1024
        )
        await asyncio.sleep(3)
    restamp = lambda ts: summary.started + (ts - start)  # noqa: E731
    return recorder, restamp, reader.seen(), summary, sim.jumps


# -- the naive peer ---------------------------------------------------------------------------


class NaiveBook:
    """Per-row Python surfaces with the worker's trigger rules (streams.book.surfaces): a tick
    farther from its smile's current fit than half its bid-ask (floor ``tolerance_floor_bp``)
    makes it due, so does no fit or a fit ``max_age`` older than its news; due smiles are
    fitted when an event-time epoch closes, at most once per ``min_interval``. The check is
    QuantLib per row: ``sabrVolatility``, or an ``AnalyticHestonEngine`` price of the quote.
    Naive where the worker is not: one epoch clock for all partitions, no outlier filter."""

    def __init__(self, config: SurfaceConfig) -> None:
        self.c, self.books, self.epoch, self.seen = config, {}, None, -math.inf
        self.dirty: set[str] = set()
        self.pending: set[str] = set()

    def on_quote(self, q: Quote) -> list:
        """Take one quote; the snapshots of the epoch it closed (fit them, then
        :meth:`fitted`, before the next quote)."""
        epoch = math.floor(q.ts / self.c.epoch)
        out = self._close() if self.epoch is not None and epoch > self.epoch else []
        self.epoch = epoch if self.epoch is None else max(self.epoch, epoch)
        equity = q.asset_class == "equity"
        key = book_key(q.underlying, None if equity else q.expiry)
        b = self.books.setdefault(
            key, {"quotes": {}, "fit": None, "fit_ts": None, "due": None, "last": -math.inf}
        )
        b["quotes"][(q.expiry, q.strike)] = q
        b["last"], self.seen = max(b["last"], q.ts), max(self.seen, q.ts)
        if b["due"] is None and not self._within(b["fit"], q):
            b["due"] = q.ts
        self.dirty.add(key)
        return out

    def _within(self, fit, q: Quote) -> bool:
        if fit is None:
            return False
        floor = 1e-4 * self.c.tolerance_floor_bp
        t = q.time_to_expiry
        if fit[0] == "sabr":
            _, (alpha, beta, rho, nu) = fit
            model = ql.sabrVolatility(q.strike, q.forward, t, alpha, beta, nu, rho)
            return abs(q.vol - model) <= max(0.5 * (q.ask_vol - q.bid_vol), floor)
        _, model, spot, engine = fit
        spot.setValue(q.spot)
        kind = ql.Option.Call if q.call else ql.Option.Put
        today = ql.Settings.instance().evaluationDate
        expiry = today + max(1, round(t * 365))
        option = ql.VanillaOption(
            ql.PlainVanillaPayoff(kind, q.strike), ql.EuropeanExercise(expiry)
        )
        option.setPricingEngine(engine)
        price = option.NPV()
        forward, discount = q.spot * math.exp((q.rate - q.dividend) * t), math.exp(-q.rate * t)
        try:  # the tolerance in price: vega at the model's own vol
            std = ql.blackFormulaImpliedStdDev(kind, q.strike, forward, price / discount, discount)
        except RuntimeError:
            return False
        d1 = math.log(forward / q.strike) / std + 0.5 * std
        vega = discount * forward * math.exp(-0.5 * d1 * d1) * math.sqrt(t / (2 * math.pi))
        return abs(q.price - price) <= max(0.5 * (q.ask_price - q.bid_price), floor * vega)

    def _close(self) -> list:
        out = []
        for key in sorted(self.dirty | self.pending):
            b = self.books[key]
            equity = "|" not in key
            able = len(b["quotes"]) >= (self.c.surface_min_quotes if equity else self.c.min_quotes)
            news = b["due"] is not None or (
                b["fit_ts"] is not None and b["last"] - b["fit_ts"] >= self.c.max_age
            )
            spaced = b["fit_ts"] is None or self.seen - b["fit_ts"] >= self.c.min_interval
            if able and news and spaced:
                b["due"], b["fit_ts"] = None, b["last"]
                out.append((key, self._snapshot(b)))
                self.pending.discard(key)
            elif able and b["due"] is not None:
                self.pending.add(key)
        self.dirty.clear()
        return out

    def fitted(self, key: str, params: Params) -> None:
        """Keep ``params`` as the smile's current fit (a QuantLib model for a surface)."""
        if params.model == "sabr":
            p = params.params
            self.books[key]["fit"] = ("sabr", (p["alpha"], p["beta"], p["rho"], p["nu"]))
            return
        p = params.params
        spot = ql.SimpleQuote(params.spot)
        today = ql.Settings.instance().evaluationDate
        curve = lambda x: ql.YieldTermStructureHandle(ql.FlatForward(today, x, ql.Actual365Fixed()))  # noqa: E731
        q = next(iter(self.books[key]["quotes"].values()))
        process = ql.HestonProcess(curve(q.rate), curve(q.dividend), ql.QuoteHandle(spot),
                                   *(p[n] for n in ("v0", "kappa", "theta", "sigma", "rho")))  # fmt: skip
        model = ql.HestonModel(process)
        self.books[key]["fit"] = ("heston", model, spot, ql.AnalyticHestonEngine(model))

    @staticmethod
    def _snapshot(b: dict):
        quotes = sorted(b["quotes"].values(), key=lambda x: (x.expiry, x.strike))
        q = max(quotes, key=lambda x: x.ts)
        if q.asset_class != "equity":
            return SmileSnapshot(
                q.underlying, q.asset_class, q.expiry, q.forward, q.time_to_expiry,
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


def naive_params(snap, last: Params | None = None) -> Params:
    """What the peer does per due smile or surface: fit with QuantLib, warm from its ``last``
    fit as the worker starts warm from its last good one (cold, from QuantLib's usual guess,
    the first time), and make the message."""
    start = None if last is None else last.params
    if isinstance(snap, SmileSnapshot):
        (alpha, rho, nu), _ = quantlib_sabr_fit(
            snap.forward, snap.time_to_expiry, snap.strikes, snap.vols,
            start=None if start is None else (start["alpha"], start["rho"], start["nu"]),
        )  # fmt: skip
        params, expiry, t, fwd = (
            {"alpha": alpha, "beta": 0.5, "rho": rho, "nu": nu},
            snap.expiry,
            snap.time_to_expiry,
            snap.forward,
        )
    else:
        data = snapshot_surface(snap)
        days = np.maximum(1, np.round(data.maturities * 365))
        _, _, params = quantlib_heston_fit(
            data.strikes, days, data.values, spot=snap.spot,
            rate=float(np.mean(data.rates)), dividend=float(np.mean(data.dividends)),
            start=start,
        )  # fmt: skip
        expiry, t, fwd = snap.expiries[-1], max(snap.times), snap.spot
    return Params(
        underlying=snap.underlying, expiry=expiry, model="sabr" if "alpha" in params else "heston",
        params=params, forward=fwd, time_to_expiry=t, converged=True, status="quantlib",
        warm=start is not None, iterations=0, rmse=0.0, gates={}, diagnostics={},
        window_start=snap.window_start, window_end=snap.window_end, n_quotes=len(snap.strikes),
        received_at=snap.received_at, published_at=time.time(),
        spot=None if "alpha" in params else snap.spot,
        expiries=None if "alpha" in params else tuple(sorted(set(snap.expiries))),
    )  # fmt: skip


def naive(
    settings: Settings,
    config: SurfaceConfig,
    limit_ticks: int,
    limit_seconds: float,
    out_topic: str,
) -> dict:
    """The peer, with the worker's trigger ``config``, on the quotes topic from its start:
    ticks/s until ``limit_ticks`` or ``limit_seconds``; it publishes each fit to ``out_topic``."""
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
        book, ticks, fits, start = NaiveBook(config), 0, 0, None
        last: dict[str, Params] = {}  # each smile's and surface's latest fit: its warm start
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
                            for key, snap in book.on_quote(quote):
                                p = last[key] = naive_params(snap, last.get(key))
                                book.fitted(key, p)
                                await producer.send(out_topic, encode(p), key=p.key.encode())
                                fits += 1
        finally:
            await producer.stop()
            await consumer.stop()
        elapsed = time.time() - start
        return {"ticks": ticks, "seconds": elapsed, "ticks_per_s": ticks / elapsed,
                "fits_per_s": fits / elapsed}  # fmt: skip

    return asyncio.run(run())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=1_000_000, help="backlog ticks")
    parser.add_argument("--rates", type=float, nargs="+", default=[20_000, 100_000, 200_000])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each live run")
    parser.add_argument("--jump-every", type=float, default=1.0,
                        help="event seconds between jumps (one pair or index each)")  # fmt: skip
    parser.add_argument("--single", type=int, default=0, help="single-quote backlog (0: none)")
    parser.add_argument("--peer-seconds", type=float, default=120.0)
    parser.add_argument("--costs", nargs="*", choices=sorted(COSTS), default=sorted(COSTS),
                        help="features whose cost to measure (none: skip)")  # fmt: skip
    parser.add_argument("--costs-only", action="store_true",
                        help="measure only the costs (phase 4)")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "stream.jsonl"
    )
    args = parser.parse_args(argv)
    config = Settings.from_env().surface  # the worker's, from the same environment

    tmp = Path(tempfile.mkdtemp(prefix="volstream-bench-"))
    state_dir = Path(os.environ.get("VOLSTREAM_STATE_DIR", Path.home() / ".volstream"))
    broker, bootstrap = None, os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        broker = LocalKafka(
            BrokerConfig(state_dir=tmp / "kafka", port=free_port(), controller_port=free_port())
        )
        bootstrap = broker.start()
    record: dict = {"bench": "stream", "device": "cpu", "cores": os.cpu_count(),
                    "jump_every": args.jump_every, "config": dataclasses.asdict(config)}  # fmt: skip
    try:
        run = f"bench-{uuid.uuid4().hex[:6]}"
        if args.costs_only:
            measure_costs(args, bootstrap, run, state_dir, tmp, record)
            write_record(args.out, record)
            return record
        settings = Settings(bootstrap=bootstrap, topic_prefix=run, app_id=run)
        asyncio.run(ensure_topics(settings))
        port = free_port()
        worker = start_worker(settings, state_dir, tmp / "worker.log", port)
        try:
            ready, warm = wait_warm(port, worker, tmp / "worker.log")
            record["worker_ready_s"], record["worker_warm_s"] = ready, warm
            print(f"worker ready after {ready:.1f} s, every program loaded after {warm:.0f} s",
                  flush=True)  # fmt: skip
            # event times just before the live runs, so the live ticks find these quotes fresh
            sim = simulator(11, args.jump_every)
            recorder = Recorder(
                sim.columns(time.time() - 25, 50_000.0, count=args.ticks, chunk=8192),
                settings.partitions,
            )
            cpu0, compiles0 = cpu_seconds(worker.pid), scrape_one(port, "volstream_compiles_total")
            seen, total = asyncio.run(drain(settings, recorder))
            cpu1, compiles1 = cpu_seconds(worker.pid), scrape_one(port, "volstream_compiles_total")
            record["backlog"] = through = measure_backlog(seen, total)
            through |= {"jumps": len(sim.jumps), "worker_cpu_us_per_tick": 1e6 * (cpu1 - cpu0) / total,
                        "compiles": compiles1 - compiles0}  # fmt: skip
            cols = recorder.columns()
            through["grid_vs_full_heston"] = agree = grid_agreement(
                cols, seen, recorder.codes, config
            )
            print(
                f"worker, backlog of {total:,} ticks ({len(sim.jumps)} jumps): "
                f"{through['ticks_per_s']:,.0f} ticks/s ({through['calibrations']:,} calibrations; "
                f"{through['converged']:.2%} converged, {through['good']:.2%} good); worker CPU "
                f"{through['worker_cpu_us_per_tick']:.1f} us a tick; {through['compiles']:.0f} compilations",
                flush=True,
            )  # fmt: skip
            print(
                f"grid check vs full Heston repricing on {agree['ticks']:,} index ticks: "
                f"{agree['agree']:.2%} decide alike (out of tolerance: full {agree['out_full']}, "
                f"grid {agree['out_grid']})", flush=True,
            )  # fmt: skip
            record["live"] = []
            for rate in args.rates:
                compiles0, cpu0 = (
                    scrape_one(port, "volstream_compiles_total"),
                    cpu_seconds(worker.pid),
                )
                recorder, restamp, seen, summary, jumps = asyncio.run(
                    live_run(settings, sim, rate, args.seconds)
                )
                cpu1, compiles1 = (
                    cpu_seconds(worker.pid),
                    scrape_one(port, "volstream_compiles_total"),
                )
                behind = time.time()
                asyncio.run(wait_consumed(settings, timeout=1800))  # the next rate starts clean
                behind = time.time() - behind
                cols = recorder.columns(restamp)
                fresh = watermark_freshness(cols, seen)
                jumped = watermark_freshness(cols, seen, jump_mask(cols, recorder, jumps, restamp))
                track = tracking(cols, seen, recorder.codes, config)
                achieved = summary.sent / max(summary.seconds, 1e-9)
                params = [m for _, m in seen if isinstance(m, Params)]
                live = {
                    "rate": rate,
                    "sent_per_s": achieved,
                    "freshness": fresh,
                    "jump_freshness": jumped,
                    "tracking": track,
                    "calibrations": len(params),
                    "good": float(np.mean([p.good for p in params])) if params else None,
                    "worker_cpu_us_per_tick": 1e6 * (cpu1 - cpu0) / max(summary.sent, 1),
                    "compiles": compiles1 - compiles0,
                    "caught_up_after_s": behind,  # after the last tick (+3 s): how far behind
                }
                record["live"].append(live)
                print(
                    f"live {rate:,.0f} ticks/s (sent {achieved:,.0f}/s): watermark freshness p50 "
                    f"{fresh['p50_ms']:.1f} ms, p99 {fresh['p99_ms']:.1f} ms ({fresh['covered']:.1%} "
                    f"of ticks covered); a jump's ticks ({jumped['ticks']:,}) p50 "
                    f"{jumped['p50_ms']:.1f} ms, p99 {jumped['p99_ms']:.1f} ms; tracking min "
                    f"{track['min']:.2%}, mean {track['mean']:.2%}; {len(params)} calibrations; "
                    f"worker CPU {live['worker_cpu_us_per_tick']:.1f} us a tick; "
                    f"{live['compiles']:.0f} compilations; caught up {behind:.1f} s after",
                    flush=True,
                )  # fmt: skip
        finally:
            stop_worker(worker)

        if args.single:  # the same worker code, fed one quote a message
            single = Settings(bootstrap=bootstrap, topic_prefix=run + "-1", app_id=run + "-1")
            asyncio.run(ensure_topics(single))
            port = free_port()
            worker = start_worker(single, state_dir, tmp / "worker-1.log", port)
            try:
                wait_warm(port, worker, tmp / "worker-1.log")
                ticks = simulator(13).columns(time.time() - 3600, 50_000.0, count=args.single)
                seen, total_single = asyncio.run(drain(single, ticks, batch=1))
            finally:
                stop_worker(worker)
            record["single_quotes"] = one = measure_backlog(seen, total_single)
            print(f"worker, single-quote messages: {one['ticks_per_s']:,.0f} ticks/s", flush=True)

        measure_costs(args, bootstrap, run, state_dir, tmp, record)
        peer_topic = dataclasses.replace(settings, topic_prefix=run + "-naive")
        asyncio.run(ensure_topics(peer_topic))
        peer = naive(settings, config, total, args.peer_seconds, peer_topic.topics["params"])
        record["naive"] = peer
        print(
            f"naive aiokafka + per-row Python + QuantLib, same backlog, trigger rules and warm "
            f"starts: "
            f"{peer['ticks_per_s']:,.0f} ticks/s ({peer['fits_per_s']:,.1f} fits/s, "
            f"{peer['ticks']:,} ticks in {peer['seconds']:.0f} s)",
            flush=True,
        )
    finally:
        if broker is not None:
            broker.stop()
    ratio = through["ticks_per_s"] / peer["ticks_per_s"]
    record["ratio_ticks_per_s"] = ratio
    print(
        f"ratio, backlog ticks/s, same ticks, trigger rules and warm starts: worker "
        f"{through['ticks_per_s']:,.0f} / naive {peer['ticks_per_s']:,.0f} = {ratio:.1f}x"
    )
    write_record(args.out, record)
    return record


if __name__ == "__main__":
    main()
