"""QuoteColumns: every row judged by every rule of a single quote, vectorised; malformed
messages refused whole."""

import math

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import MAX_BATCH_BYTES, Quote, QuoteColumns, SchemaError, decode, encode
from schemas.columns import FLOAT_FIELDS, MAX_COLUMN_ROWS
from tests.schemas.test_codec import equity_quotes, quotes

number = st.sampled_from([None, 1.1, 0.5, 2.0, 0.0, -0.3, math.inf, -math.inf, 1e12, 0.99])
small = st.sampled_from([None, 0.01, -0.02, 0.5, 1.5, -1.0, math.inf])
rows = st.fixed_dictionaries(
    {
        "ts": st.sampled_from([1.7e9, 1.8e9, None, -1.0, math.inf, 2e11]),
        "underlying": st.sampled_from(["EURUSD", "SPX", "EUR USD", "", "X" * 40]),
        "asset_class": st.sampled_from(["fx", "equity", "bond"]),
        "expiry": st.sampled_from(["2030-01-01", "20300101", "2027-02-30", "2020-01-01", "soon"]),
        "strike": number,
        "source": st.sampled_from(["sim", "", "s" * 70]),
        "seq": st.sampled_from([0, 7, -1]),
        "forward": number,
        "bid_vol": number,
        "ask_vol": number,
        "mid_vol": number,
        "size": number,
        "open_interest": number,
        "spot": number,
        "rate": small,
        "dividend": small,
        "bid_price": number,
        "ask_price": number,
        "mid_price": number,
        "call": st.sampled_from([None, True, False]),
    }
)


valid_rows = (quotes | equity_quotes).map(
    lambda q: (
        {k: getattr(q, k) for k in q.to_wire()}
        | {k: None for k in Quote.__dataclass_fields__ if getattr(q, k) is None}
    )
)


def _single(row: dict) -> Quote | SchemaError:
    try:
        return Quote.checked({k: v for k, v in row.items() if v is not None})  # None: absent
    except SchemaError as exc:
        return exc


def _columns(batch: list[dict]) -> QuoteColumns:
    columns = {k: [r[k] for r in batch] for k in batch[0]}
    for k in FLOAT_FIELDS:
        columns[k] = [math.nan if v is None else v for v in columns[k]]
    return QuoteColumns.of(**columns)


@settings(max_examples=300, deadline=None)
@given(st.lists(rows | valid_rows, min_size=1, max_size=12))
def test_property_every_row_gets_the_verdict_a_single_quote_gets(batch):
    message = decode(encode(_columns(batch)), QuoteColumns)
    ok, problems = message.problems()
    by_row = {p.row: p for p in problems}
    assert sorted(by_row) == np.flatnonzero(~ok).tolist()
    valid = message.quotes(ok)
    for i, row in enumerate(batch):
        single = _single(row)
        if isinstance(single, Quote):
            assert ok[i], by_row.get(i)
            assert valid.pop(0) == single  # the same quote, field for field
        else:
            assert not ok[i], single
            assert by_row[i].reason == single.reason, (by_row[i], single)
            assert by_row[i].field in str(single) or by_row[i].field in ("mid_vol", "call")
    assert not valid


def _fx(n: int) -> QuoteColumns:
    return QuoteColumns.of(
        ts=1.7e9 + np.arange(n) * 1e-3,
        underlying=np.where(np.arange(n) % 2, "EURUSD", "USDJPY"),
        asset_class=["fx"] * n,
        expiry=["2030-01-01"] * n,
        strike=np.linspace(0.9, 1.3, n),
        source=["sim"] * n,
        seq=np.arange(n),
        forward=np.full(n, 1.1),
        mid_vol=np.full(n, 0.1),
    )


def test_a_bad_row_is_refused_alone_with_its_row_field_and_reason():
    good = _fx(1000)
    strikes = good.numbers["strike"].copy()
    strikes[617] = -1.0
    message = QuoteColumns(good.n, good.numbers | {"strike": strikes}, good.text)
    ok, problems = decode(encode(message)).problems()
    assert ok.sum() == 999 and not ok[617]
    (problem,) = problems
    assert (problem.row, problem.reason, problem.field) == (617, "out_of_range", "strike")
    assert "row 617, field 'strike'" in str(problem.error())


def test_a_price_outside_its_no_arbitrage_bounds_is_refused_in_a_row_or_alone():
    # SPX 5000, 1 year, r 4%, q 1.5%: a 4000 call's intrinsic value is 5000 e^-0.015 -
    # 4000 e^-0.04 = 1082.2; a 6000 put's upper bound is 6000 e^-0.04 = 5764.8
    base = dict(ts=1.8e9, underlying="SPX", asset_class="equity", expiry="2028-01-15",
                source="sim", seq=1, spot=5000.0, rate=0.04, dividend=0.015)  # fmt: skip
    cases = [
        (dict(strike=4000.0, mid_price=1082.0, call=True), "at or below its intrinsic value"),
        (dict(strike=4000.0, bid_price=900.0, ask_price=1000.0, call=True), "intrinsic value"),
        (dict(strike=6000.0, mid_price=5800.0, call=False), "at or above its upper bound"),
        (dict(strike=4000.0, mid_price=1200.0, call=True), None),  # time value: fine
    ]
    for row, says in cases:
        single = _single(base | row)
        if says is None:
            assert isinstance(single, Quote)
            continue
        assert single.reason == "arbitrage" and says in single.detail, single
        full = {k: None for k in Quote.__dataclass_fields__} | base | row
        ok, (problem,) = _columns([full]).problems()
        assert not ok[0] and (problem.reason, problem.field) == ("arbitrage", "mid_price")
        assert says in problem.detail


def test_columns_are_compact_and_decode_without_copying():
    message = _fx(4096)
    data = encode(message)
    assert len(data) / 4096 < 60  # ts, strike, forward, mid_vol, seq and 4 codes: 56 bytes
    assert len(data) < MAX_BATCH_BYTES
    back = decode(data, QuoteColumns)
    assert not back.numbers["strike"].flags.owndata  # a view of the message's bytes
    np.testing.assert_array_equal(back.numbers["strike"], message.numbers["strike"])
    assert back.quotes()[5] == message.quotes()[5]


def _raw(message: QuoteColumns, **change) -> bytes:
    wire = {"type": "quote_columns", "v": 1, **message.to_wire()}
    for key, value in change.items():
        target, name = key.split("__") if "__" in key else (None, key)
        if target is None:
            wire[name] = value
        elif value is None:
            del wire[target][name]
        else:
            wire[target][name] = value
    return msgpack.packb(wire, use_bin_type=True)


@pytest.mark.parametrize(
    ("change", "reason", "text"),
    [
        ({"numbers__strike": b"\0" * 7}, "wrong_type", "column 'strike' must be 2 float64"),
        ({"numbers__ts": None}, "missing_field", "column 'ts' is required"),
        ({"numbers__delta": b"\0" * 16}, "unknown_field", "unknown columns ['delta']"),
        ({"text__source": [["a"], b"\x05\0\0\0\0\0\0\0"]}, "out_of_range", "codes outside"),
        ({"text__underlying": [[1], b"\0" * 8]}, "wrong_type", "not strings"),
        ({"n": MAX_COLUMN_ROWS + 1}, "out_of_range", "holds 1 to"),
        ({"extra": 1}, "unknown_field", "unknown fields ['extra']"),
    ],
)
def test_a_malformed_message_is_refused_whole(change, reason, text):
    with pytest.raises(SchemaError) as err:
        decode(_raw(_fx(2), **change))
    assert err.value.reason == reason and text in str(err.value)


def test_messages_concatenate_and_cut_back_to_the_same_quotes():
    rows = _fx(30).quotes()
    rows[7] = Quote(**{**rows[7].__dict__, "underlying": "GBPUSD", "expiry": "2031-01-03"})
    parts = [QuoteColumns.from_quotes(rows[i : i + 11]) for i in range(0, 30, 11)]
    whole = QuoteColumns.concat(parts)
    assert whole.n == 30 and whole.quotes() == rows
    assert whole.problems()[1] == []
    first = whole.take(slice(0, 11))  # each text dictionary cut to the values its rows use
    assert first.quotes() == rows[:11] and len(first.text["underlying"].values) == 3
    assert len(whole.take(slice(11, 30)).text["underlying"].values) == 2
    assert len(whole.take(slice(11, 30)).text["expiry"].values) == 1
