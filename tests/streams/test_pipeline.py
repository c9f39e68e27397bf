"""The pipeline with an in-memory sink: dead letters, epochs, flags, warm-state records."""

import asyncio
from dataclasses import replace

import numpy as np

from alerts import AlertConfig
from audit import verify_chains
from engine.sabr import hagan_vol
from schemas import (
    Alert,
    CalibrationRecord,
    DeadLetter,
    KeyHealth,
    Params,
    Quote,
    WarmState,
    decode,
    encode,
)
from streams.book.surfaces import SurfaceConfig
from streams.feed.simulate import TickSimulator
from streams.settings import Settings
from streams.worker.audit import rerun_all
from streams.worker.health import history_of
from streams.worker.pipeline import Pipeline, Record
from tests.streams.memory import Memory
from tests.streams.watermarks import assert_watermarks_reflect

T0 = 1.795e9


def run(records, settings=None):
    """Each batch of ``records`` through a pipeline, then its open epochs flushed."""
    sink = Memory()
    pipe = Pipeline(settings or Settings(topic_prefix="t"), sink, clock=lambda: T0 + 100)

    async def go():
        for batch in records:
            await pipe.process(batch)
        await pipe.flush_idle(0.0)
        await pipe.runbooks_done()

    asyncio.run(go())
    return pipe, sink


def test_bad_records_become_dead_letters_and_good_ones_calibrate():
    quotes = list(TickSimulator(pairs=1, tenors=(91,), seed=3).ticks(T0, rate=5, count=20))
    equity = Quote(**{**quotes[0].__dict__, "asset_class": "equity"})
    records = [Record(encode(q), "t.quotes", 0, i, T0) for i, q in enumerate(quotes)]
    records.insert(3, Record(b"junk", "t.quotes", 0, 99, T0))
    records.append(Record(encode(equity), "t.quotes", 0, 100, T0))
    pipe, sink = run([records])
    letters = [decode(v, DeadLetter) for _, v in sink.sent["t.dlq"]]
    assert [(d.reason, d.offset) for d in letters] == [("not_msgpack", 99), ("missing_field", 100)]
    assert pipe.counters.rejected == {"not_msgpack": 1, "missing_field": 1}
    params = [decode(v, Params) for _, v in sink.sent["t.params"]]
    assert params and all(p.good for p in params)
    assert params[0].published_at == T0 + 100 and params[0].received_at == T0
    # the opening quotes are fitted once; the updates that follow stay within their bid-ask
    # of that fit, so they need none, and the watermark claims every tick
    assert len(params) == 1 and not params[0].warm
    assert assert_watermarks_reflect({0: quotes}, sink.log, pipe.settings.surface) == len(quotes)
    states = [decode(v, WarmState) for _, v in sink.sent["t.state"]]  # one per smile and batch
    assert len(states) == 1  # one per smile and batch that fitted it
    assert states[-1].warm == params[-1].params
    assert states[-1].epoch == int(params[-1].window_end // Settings().surface.epoch)
    assert pipe.counters.calibrations == len(params)


def test_a_takeovers_rebuild_takes_the_book_and_counts_and_publishes_nothing():
    quotes = list(TickSimulator(pairs=1, tenors=(91,), seed=3).ticks(T0, rate=5, count=20))
    records = [Record(encode(q), "t.quotes", 0, i, T0) for i, q in enumerate(quotes)]
    sink = Memory()
    pipe = Pipeline(Settings(topic_prefix="t"), sink, clock=lambda: T0 + 100)
    assert pipe.rebuild(records[:-1]) == {quotes[0].underlying}
    assert pipe.book.ticks_out == 0 and sink.sent == {}  # the previous owner did both

    async def go():
        await pipe.process(records[-1:])
        await pipe.flush_idle(0.0)

    asyncio.run(go())
    # no current fit came with the book: the first new tick's epoch fits the smile once, on
    # every option the previous owner's book held, and the tick lies within that fit (the
    # rebuild's 35 ticks, which the previous owner counted, are not counted again)
    (params,) = [decode(v, Params) for _, v in sink.sent["t.params"]]
    assert params.n_quotes == len({q.strike for q in quotes}) > 1
    assert pipe.counters.ticks == 1 and pipe.counters.out_of_tolerance == 0


def test_failed_fits_are_flagged_with_alerts_and_no_warm_state():
    quotes = list(TickSimulator(pairs=1, tenors=(91,), seed=3).ticks(T0, rate=100, count=0))
    zigzag = [
        Quote(
            **{
                **q.__dict__,
                "bid_vol": q.bid_vol * (1.4 if i % 2 else 0.75),
                "ask_vol": q.ask_vol * (1.4 if i % 2 else 0.75),
            }
        )
        for i, q in enumerate(quotes)
    ]
    settings = Settings(  # keep the zigzag; no runbook (test_failed_fits_walk_the_runbook)
        topic_prefix="t", surface=SurfaceConfig(outlier=10.0), runbook_cooldown=0
    )
    _, sink = run(
        [[Record(encode(q), "t.quotes", 0, i, T0) for i, q in enumerate(zigzag)]], settings
    )
    params = [decode(v, Params) for _, v in sink.sent["t.params"]]
    assert params and not any(p.good for p in params)
    alerts = [decode(v, Alert) for _, v in sink.sent["t.alerts"]]
    assert {a.rule for a in alerts} >= {"gate.rmse"}
    state = decode(sink.sent["t.state"][-1][1], WarmState)
    assert state.warm is None  # flagged fits never become warm starts
    converged = [p.params for p in params if p.converged]
    assert state.prior == (converged[-1] if converged else None)


def test_stream_health_rules_fire_on_the_book_and_resolve():
    """A smile quoted within tolerance for longer than ``stale_after`` is stale; unread quotes
    past ``consumer_lag`` fire; both resolve once the cause is gone, each alert once."""
    quotes = list(TickSimulator(pairs=1, tenors=(91,), seed=3).ticks(T0, rate=5, count=40))
    assert quotes[-1].ts - quotes[0].ts > 5.0
    settings = Settings(topic_prefix="t", alerts=AlertConfig(stale_after=3.0, consumer_lag=100))
    sink = Memory()
    pipe = Pipeline(settings, sink, clock=lambda: T0 + 100)
    records = [Record(encode(q), "t.quotes", 0, i, T0) for i, q in enumerate(quotes)]

    async def go():
        await pipe.process(records)
        await pipe.flush_idle(0.0)
        await pipe.check_stream({0: len(records) + 500})  # 500 quotes wait unread
        await pipe.check_stream({0: len(records) + 500})  # still: no second alert
        latest = {q.strike: q for q in quotes}.values()  # the smile a vol point higher: refit
        moved = [Quote(**{**q.__dict__, "ts": quotes[-1].ts + 0.1, "bid_vol": q.bid_vol + 0.01,
                          "ask_vol": q.ask_vol + 0.01}) for q in latest]  # fmt: skip
        await pipe.process([Record(encode(q), "t.quotes", 0, len(records), T0) for q in moved])
        await pipe.flush_idle(0.0)
        await pipe.check_stream({0: len(records) + 1})

    asyncio.run(go())
    alerts = [decode(v, Alert) for _, v in sink.sent["t.alerts"]]
    assert [(a.rule, a.state, a.key) for a in alerts] == [
        ("consumer_lag", "firing", "t.quotes|0"),
        ("stale", "firing", "EURUSD|" + quotes[0].expiry),
        ("consumer_lag", "resolved", "t.quotes|0"),
        ("stale", "resolved", "EURUSD|" + quotes[0].expiry),
    ]
    assert alerts[0].figures["value"] == 500 and all(a.runbook for a in alerts)
    assert pipe.counters.alerts == 4


def test_the_health_rules_history_is_written_and_read_back():
    quotes = list(TickSimulator(pairs=1, tenors=(91,), seed=3).ticks(T0, rate=5, count=20))
    pipe, sink = run([[Record(encode(q), "t.quotes", 0, i, T0) for i, q in enumerate(quotes)]])
    (key, value), *_ = sink.sent["t.health"]  # a key's first fit is written at once
    history = pipe.health.keys[key.decode()]
    back = history_of(decode(value, KeyHealth))
    assert back == replace(history, quotes=None) and back.rmse and back.prior
    again = Pipeline(Settings(topic_prefix="t"), Memory())
    again.restore_health({key.decode(): back})
    assert again.health.keys[key.decode()].params == history.params


def test_every_fitted_keys_history_goes_with_its_batch():
    # the next owner of the partitions reads the health topic from the committed offsets on:
    # each batch's fits have their histories delivered with the batch, before it is acked
    quotes = list(TickSimulator(pairs=1, tenors=(91,), seed=3).ticks(T0, rate=20, count=300))
    records = [Record(encode(q), "t.quotes", 0, i, T0) for i, q in enumerate(quotes)]
    settings = Settings(topic_prefix="t", surface=SurfaceConfig(max_age=1.0))  # a fit a second
    batches = [records[i : i + 30] for i in range(0, 300, 30)]
    pipe, sink = run(batches, settings)  # one wall time for all
    fitted = [decode(v, Params).key for _, v in sink.sent["t.params"]]
    written = [k.decode() for k, _ in sink.sent["t.health"]]
    assert len(fitted) > 5 and set(written) == set(fitted) and len(written) <= len(fitted)
    (key,) = set(fitted)
    last = history_of(decode(sink.sent["t.health"][-1][1], KeyHealth))
    assert last == replace(pipe.health.keys[key], quotes=None)  # what the worker knows
    assert len(last.rmse) == len(fitted)
    asyncio.run(pipe.hand_over())  # nothing left to write
    assert len(sink.sent["t.health"]) == len(written)


def test_every_key_whose_alert_changes_in_a_batch_has_its_history_written_at_once():
    opening = list(TickSimulator(pairs=1, tenors=(30, 91, 182), seed=3).ticks(T0, 100, 0))
    expiries = sorted({q.expiry for q in opening})
    later = []  # in one epoch, later: two smiles zigzag (gates fail), the third as before
    for i, q in enumerate(opening):
        factor = (1.4 if i % 2 else 0.75) if q.expiry != expiries[1] else 1.0
        later.append(Quote(**{**q.__dict__, "ts": T0 + 2.0, "bid_vol": q.bid_vol * factor,
                              "ask_vol": q.ask_vol * factor}))  # fmt: skip
    settings = Settings(topic_prefix="t", surface=SurfaceConfig(outlier=10.0), runbook_cooldown=0)
    sink = Memory()
    pipe = Pipeline(settings, sink, clock=lambda: T0 + 100)  # one wall time: nothing is due

    async def go():
        for offset, batch in ((0, opening), (len(opening), later)):
            await pipe.process([Record(encode(q), "t.quotes", 0, offset + i, T0)
                                for i, q in enumerate(batch)])  # fmt: skip
            await pipe.flush_idle(0.0)

    asyncio.run(go())
    alerts = [decode(v, Alert) for _, v in sink.sent["t.alerts"]]
    changed = {a.key for a in alerts if a.state == "firing"}
    assert len(changed) == 2 and f"EURUSD|{expiries[1]}" not in changed
    written = [k.decode() for k, _ in sink.sent["t.health"]]
    assert set(written[:3]) == {f"EURUSD|{e}" for e in expiries}  # each key's first fit
    assert set(written[3:]) == changed  # then the keys whose alerts changed, all of them


def _one_quote_a_record() -> tuple[list[Quote], list[Record]]:
    quotes = list(TickSimulator(pairs=1, tenors=(91,), seed=3).ticks(T0, rate=100, count=40))
    return quotes, [Record(encode(q), "t.quotes", 0, i, T0) for i, q in enumerate(quotes)]


def _published(sink) -> list[dict]:
    """The parameters a run published, without the publication time."""
    params = (decode(v, Params).to_wire() for _, v in sink.sent["t.params"])
    return [{k: x for k, x in p.items() if k != "published_at"} for p in params]


def test_quote_batches_give_the_same_results_and_dead_letter_bad_items_alone():
    from schemas import QuoteBatch

    quotes, single = _one_quote_a_record()
    items = [encode(q) for q in quotes]
    items.insert(5, b"junk")
    batched = [
        Record(encode(QuoteBatch(tuple(items[i : i + 16]))), "t.quotes", 0, i, T0)
        for i in range(0, len(items), 16)
    ]
    _, alone = run([single])
    _, together = run([batched])
    assert _published(alone) == _published(together)
    (letter,) = [decode(v, DeadLetter) for _, v in together.sent["t.dlq"]]
    assert letter.reason == "not_msgpack" and letter.original == b"junk"
    assert letter.detail.startswith("item 5 of a quote batch")


def test_quote_columns_give_the_same_results_and_dead_letter_bad_rows_alone():
    from schemas import QuoteColumns

    quotes, single = _one_quote_a_record()
    bad = Quote(**{**quotes[5].__dict__, "strike": -1.0, "seq": 10_000})
    rows = [*quotes[:5], bad, *quotes[5:]]
    columns = [
        Record(encode(QuoteColumns.from_quotes(rows[i : i + 16])), "t.quotes", 0, i, T0)
        for i in range(0, len(rows), 16)
    ]
    _, alone = run([single])
    pipe, together = run([columns])
    assert _published(alone) == _published(together)
    (letter,) = [decode(v, DeadLetter) for _, v in together.sent["t.dlq"]]
    assert (letter.reason, letter.offset) == ("out_of_range", 0)
    assert letter.detail.startswith("row 5, field 'strike'")
    (row,) = decode(letter.original, QuoteColumns).quotes()  # the bad row, as a message alone
    assert row == bad
    assert pipe.counters.ticks == len(rows) and pipe.counters.rejected == {"out_of_range": 1}


def test_replays_cut_into_other_messages_and_batches_publish_identical_parameters():
    """The same ticks, one partition per underlying group, sent as single quotes, as columns
    of 50 or of 700 rows, taken in batches of one message or many: every Params the same."""
    from schemas import QuoteColumns

    quotes = list(TickSimulator(pairs=2, indices=1, seed=9).ticks(T0, rate=400, count=1500))
    parts = {p: [q for q in quotes if (q.underlying == "SPX") == p] for p in (0, 1)}

    def records(size: int) -> list[Record]:
        out = []
        for p, qs in parts.items():
            for i in range(0, len(qs), size):
                rows = qs[i : i + size]
                value = encode(rows[0]) if size == 1 else encode(QuoteColumns.from_quotes(rows))
                out.append(Record(value, "t.quotes", p, i, T0))
        return sorted(out, key=lambda r: (r.offset, r.partition))  # partitions interleaved

    # refitted with news every 0.1 s of event time at most: many fits, each from the last
    config = SurfaceConfig(max_age=0.1, min_interval=0.1)
    settings = Settings(topic_prefix="t", surface=config)

    def published(size: int, per_batch: int) -> dict[str, list[dict]]:
        rs = records(size)
        _, sink = run([rs[i : i + per_batch] for i in range(0, len(rs), per_batch)], settings)
        assert assert_watermarks_reflect(parts, sink.log, config) > 0.9 * len(quotes)
        out: dict[str, list[dict]] = {}
        for p in _published(sink):
            out.setdefault(f"{p['underlying']}|{p['expiry']}", []).append(p)
        return out

    reference = published(700, 1000)
    assert sum(map(len, reference.values())) > 100 and any("SPX" in k for k in reference)
    for size, per_batch in ((1, 1), (50, 3), (700, 1)):
        assert published(size, per_batch) == reference, (size, per_batch)


def test_a_failed_fit_walks_the_runbook_and_an_alert_names_the_step_and_the_fix():
    # one smile quoted at five strikes within 0.5% of the forward: rho and nu cannot be told
    # apart (the identifiability gate fails); the runbook's simpler model (nu held) fits it
    base = next(iter(TickSimulator(pairs=1, tenors=(91,), seed=3).ticks(T0, rate=100, count=1)))
    narrow = [(0.995, 1e-4), (0.998, -1e-4), (1.0, 0.0), (1.002, 1e-4), (1.005, -1e-4)]
    quotes = [
        Quote(**{**base.__dict__, "seq": i, "ts": T0 + 0.001 * i, "strike": base.forward * m,
                 "bid_vol": None, "ask_vol": None, "mid_vol": 0.1 + 0.05 * (m - 1) + e})
        for i, (m, e) in enumerate(narrow)
    ]  # fmt: skip
    pipe, sink = run([[Record(encode(q), "t.quotes", 0, i, T0) for i, q in enumerate(quotes)]])
    (first,) = [decode(v, Params) for _, v in sink.sent["t.params"]]  # one per snapshot, always
    assert not first.good and first.gates["identifiability"]["verdict"] == "fail"
    (alert,) = [a for a in map(lambda m: decode(m[1], Alert), sink.sent["t.alerts"])
                if a.rule == "runbook"]  # fmt: skip
    assert alert.severity == "info" and "fixed by simpler_model" in alert.message
    assert alert.figures["step"] == 4.0  # RUNBOOK_STEPS.index("simpler_model")
    assert alert.subject == first.subject
    assert alert.figures["fit.rho"] != first.params["rho"]  # the fix holds nu, refits the rest
    assert pipe.counters.runbooks == {"simpler_model": 1}
    state = decode(sink.sent["t.state"][-2][1], WarmState)  # the last: the runbook chain's
    assert state.warm is None  # a runbook's fit never becomes a warm start (replays)
    # the fix has a record of its own, on the key's runbook chain (the key's own chain keeps
    # one record per snapshot), which runs again to the same bits
    fit, fix = [decode(v, CalibrationRecord) for _, v in sink.sent["t.audit"]]
    assert (fit.key, fix.key, fix.seq) == (first.key, f"{first.key}|runbook", 0)
    assert fix.inputs["run"] == "runbook" and fix.parameters["rho"] == alert.figures["fit.rho"]
    assert verify_chains([fit, fix]) == [] and rerun_all([fit, fix], tolerance=0.0) == []
    head = decode(sink.sent["t.state"][-1][1], WarmState)
    assert sink.sent["t.state"][-1][0] == fix.key.encode() and head.audit_hash == fix.record_hash


def test_a_fit_flagged_by_stability_alone_is_reported_not_walked_through_the_runbook():
    # a smile quoted from SABR with nu 0.3, then (past the minimum interval) with nu 0.8: the
    # refit fits well but moved nu past the stability gate; the runbook's steps mend failed
    # fits, not a market that moved, so only the gate's alert says so
    base = next(iter(TickSimulator(pairs=1, tenors=(91,), seed=3).ticks(T0, rate=100, count=1)))
    t = base.time_to_expiry
    strikes = base.forward * np.exp(np.linspace(-0.15, 0.15, 9))
    quotes = [
        Quote(**{**base.__dict__, "seq": 100 * k + i, "ts": T0 + 2.0 * k + 0.001 * i,
                 "strike": float(K), "bid_vol": None, "ask_vol": None,
                 "mid_vol": float(hagan_vol(K, base.forward, t, 0.1, 0.5, -0.2, nu))})
        for k, nu in enumerate((0.3, 0.8)) for i, K in enumerate(strikes)
    ]  # fmt: skip
    pipe, sink = run([[Record(encode(q), "t.quotes", 0, i, T0) for i, q in enumerate(quotes)]])
    first, second = [decode(v, Params) for _, v in sink.sent["t.params"]]
    assert first.good and not second.good and second.converged
    failed = {name for name, g in second.gates.items() if g["verdict"] == "fail"}
    assert failed == {"stability"}
    rules = [decode(m, Alert).rule for _, m in sink.sent.get("t.alerts", [])]
    assert "gate.stability" in rules and "runbook" not in rules
    assert not pipe.counters.runbooks


def test_a_smile_no_longer_quoted_is_dropped_with_its_history_and_says_so(caplog):
    sim = TickSimulator(pairs=2, tenors=(91,), seed=3)
    first = list(sim.ticks(T0, rate=20, count=400))  # both pairs for 20 s
    gone = first[0].underlying
    kept = [q for q in sim.ticks(T0 + 20, rate=20, count=1600) if q.underlying != gone]
    quotes = first + kept  # the other alone for 80 s more
    settings = Settings(
        topic_prefix="t",
        surface=SurfaceConfig(max_quote_age=10.0, evict_after=30.0),
        alerts=AlertConfig(condition=1.0),  # every fit fires identifiability: it is resolved
    )
    records = [Record(encode(q), "t.quotes", 0, i, T0) for i, q in enumerate(quotes)]
    with caplog.at_level("WARNING", "streams.worker.pipeline"):
        pipe, sink = run([records[i : i + 100] for i in range(0, len(records), 100)], settings)
    (key,) = {p.key for p in map(lambda m: decode(m[1], Params), sink.sent["t.params"])
              if p.underlying == gone}  # fmt: skip
    assert pipe.counters.evicted == 1 and len(pipe.book) == 1
    assert key not in pipe.health.keys and key in pipe.calibrations.state  # warm start kept
    written = [v for k, v in sink.sent["t.health"] if k == key.encode()]
    assert written[-1] is None and None not in written[:-1]  # a tombstone: compacted away
    alerts = [decode(v, Alert) for _, v in sink.sent["t.alerts"] if decode(v, Alert).key == key]
    assert (alerts[-1].rule, alerts[-1].state, alerts[-1].severity) == (
        "identifiability", "resolved", "info")  # fmt: skip
    assert "no quote for 30 s of event time: dropped from the book" in alerts[-1].message
    assert f"dropped 1 smiles and surfaces with no quote for 30 s of event time ({key})" in (
        caplog.text)  # fmt: skip
    page = pipe.live.overview()
    assert [row["key"] for row in page["rows"]] == [k for k in pipe.calibrations.state if k != key]
    assert key.replace("|", " ") not in {a["subject"] for a in page["alerts"]}
