"""The pipeline with an in-memory sink: dead letters, warm epochs, flags, state records."""

import asyncio
import math

import msgpack

from schemas import Alert, DeadLetter, Params, Quote, decode, encode
from streams.pipeline import Pipeline, Record
from streams.settings import Settings
from streams.simulate import TickSimulator
from streams.surface import SurfaceConfig

T0 = 1.795e9


class Memory:
    def __init__(self):
        self.sent: dict[str, list[tuple[bytes, bytes]]] = {}

    async def send(self, topic, key, value):
        self.sent.setdefault(topic, []).append((key, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def run(records, settings=None):
    sink = Memory()
    pipe = Pipeline(settings or Settings(topic_prefix="t"), sink, clock=lambda: T0 + 100)
    for batch in records:
        asyncio.run(pipe.process(batch))
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
    # warm from the second warm epoch (1 s of event time) on, cold within the first
    first = math.floor(params[0].window_end)
    assert [p.warm for p in params] == [math.floor(p.window_end) > first for p in params]
    assert any(p.warm for p in params)
    (state,) = [msgpack.unpackb(v) for _, v in sink.sent["t.state"]]  # one per smile and batch
    assert state["warm"] == params[-1].params and state["epoch"] == math.floor(
        params[-1].window_end
    )
    assert pipe.counters.calibrations == len(params)


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
    settings = Settings(topic_prefix="t", surface=SurfaceConfig(outlier=10.0))  # keep the zigzag
    _, sink = run(
        [[Record(encode(q), "t.quotes", 0, i, T0) for i, q in enumerate(zigzag)]], settings
    )
    params = [decode(v, Params) for _, v in sink.sent["t.params"]]
    assert params and not any(p.good for p in params)
    alerts = [decode(v, Alert) for _, v in sink.sent["t.alerts"]]
    assert {a.rule for a in alerts} >= {"gate.rmse"}
    state = msgpack.unpackb(sink.sent["t.state"][-1][1])
    assert state["warm"] is None  # flagged fits never become warm starts
    converged = [p.params for p in params if p.converged]
    assert state["prior"] == (converged[-1] if converged else None)


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
