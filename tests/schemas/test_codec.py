"""Wire formats: round trips, every rejection reason, and properties of the codec."""

import dataclasses
import datetime as dt
import math

import msgpack
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from schemas import (
    DEAD_LETTER_KEEP,
    MAX_MESSAGE_BYTES,
    Alert,
    DeadLetter,
    Decision,
    KeyHealth,
    Params,
    Quote,
    SchemaError,
    decode,
    encode,
    time_to_expiry,
)
from schemas.bounds import price_bounds
from schemas.messages import _plain_quote

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC).timestamp()


def quote(**kw) -> Quote:
    base = dict(
        ts=NOW,
        underlying="EURUSD",
        asset_class="fx",
        expiry="2027-11-25",
        strike=1.1,
        source="test",
        seq=1,
        forward=1.09,
        bid_vol=0.08,
        ask_vol=0.09,
    )
    base.update(kw)
    return Quote(**base)


def equity(**kw) -> Quote:
    base = dict(underlying="SPX", asset_class="equity", strike=4800.0, forward=None)
    base |= dict(bid_vol=None, ask_vol=None, spot=5000.0, rate=0.04, dividend=0.015)
    return quote(**base | kw)


def surface_params() -> Params:
    return dataclasses.replace(
        params(),
        underlying="SPX",
        model="heston",
        params={"v0": 0.04, "kappa": 1.5, "theta": 0.05, "sigma": 0.6, "rho": -0.7},
        spot=5000.0,
        expiries=("2026-12-18", "2027-11-25"),
    )


def params() -> Params:
    return Params(
        underlying="EURUSD",
        expiry="2027-11-25",
        model="sabr",
        params={"alpha": 0.08, "beta": 0.5, "rho": -0.1, "nu": 0.6},
        forward=1.09,
        time_to_expiry=0.998,
        converged=True,
        status="converged",
        warm=True,
        iterations=3,
        rmse=1e-4,
        gates={
            "rmse": {"verdict": "pass", "value": 1e-4, "threshold": 0.005},
            "feller": {"verdict": "n/a", "value": None, "threshold": None},
        },
        diagnostics={"condition_number": 12.0, "stability": None},
        window_start=NOW - 60,
        window_end=NOW,
        n_quotes=15,
        received_at=NOW + 0.01,
        published_at=NOW + 0.02,
    )


def raw(message, **changes) -> bytes:
    obj = {"type": message.TYPE, "v": message.VERSION, **message.to_wire()}
    for k, v in changes.items():
        if v is ...:
            obj.pop(k)
        else:
            obj[k] = v
    return msgpack.packb(obj, use_bin_type=True)


HEALTH = KeyHealth("sabr", {"alpha": (0.1, 0.11), "rho": (-0.2, -0.21)}, (1e-4, 2e-4),
                   (False, True), NOW, {"alpha": 0.11, "rho": -0.21}, ("drift",))  # fmt: skip


@pytest.mark.parametrize(
    "message",
    [
        quote(),
        equity(mid_vol=0.2, open_interest=500.0),
        equity(bid_price=3.1, ask_price=3.3, call=False, rate=-0.005),
        params(),
        surface_params(),
        Alert(
            ts=NOW,
            severity="critical",
            rule="not_converged",
            subject="EURUSD 2027-11-25",
            message="calibration failed",
            figures={"iterations": 500.0},
        ),
        Alert(
            NOW,
            "warning",
            "drift",
            "EURUSD 2027-11-25 sabr",
            "alpha z=4.1",
            {"alpha.z": 4.1},
            "EURUSD|2027-11-25",
            "resolved",
            "Parameter Drift Alert Response",
        ),
        HEALTH,
        KeyHealth("heston"),
        Decision(NOW, "SPX|surface", 3, "ab" * 32, "approved", "alice", "ok", "cd" * 32, "ef" * 64),
        DeadLetter(
            ts=NOW,
            reason="crossed_quote",
            detail="bid > ask",
            original=b"\x01\x02",
            original_size=2,
            topic="volstream.quotes",
            partition=1,
            offset=42,
        ),
    ],
)
def test_round_trip(message):
    assert decode(encode(message), type(message)) == message
    assert decode(encode(message)) == message


def test_params_good_means_converged_and_no_failed_gate():
    p = params()
    assert p.good
    failed = Params(
        **{**p.__dict__, "gates": {"rmse": {"verdict": "fail", "value": 0.01, "threshold": 0.005}}}
    )
    assert not failed.good
    assert not Params(**{**p.__dict__, "converged": False}).good


@pytest.mark.parametrize(
    ("payload", "reason", "text"),
    [
        (raw(quote(), v=2), "unknown_version", "version 2"),
        (raw(quote(), type="trade"), "unknown_type", "'trade'"),
        (raw(quote(), strike=...), "missing_field", "'strike'"),
        (raw(quote(), strike="1.1"), "wrong_type", "'strike' must be a number"),
        (raw(quote(), seq=True), "wrong_type", "'seq' must be an integer"),
        (raw(quote(), seq=-1), "out_of_range", "'seq' must not be negative, got -1"),
        (raw(quote(), seq=2**63), "out_of_range", "'seq' must fit in 64 bits"),  # a column's
        (raw(quote(), ts=math.nan), "not_finite", "'ts'"),
        (raw(quote(), ts=2.0**63), "out_of_range", "'ts' must be below"),
        (raw(quote(), bid_vol=math.inf), "not_finite", "'bid_vol'"),
        (raw(quote(), strike=-1.0), "out_of_range", "'strike' must be positive"),
        (raw(quote(), bid_vol=-0.01), "out_of_range", "'bid_vol' must be positive"),
        (raw(quote(), bid_vol=0.10, ask_vol=0.09), "crossed_quote", "bid_vol 0.1 > ask_vol 0.09"),
        (raw(quote(), expiry="2026-11-25"), "expired", "2026-11-25"),
        (raw(quote(), expiry="25/11/2027"), "wrong_type", "ISO date"),
        (raw(quote(), bid_vol=..., ask_vol=...), "missing_field", "mid_vol"),
        (raw(quote(), forward=...), "missing_field", "forward"),
        (raw(quote(), asset_class="rates"), "out_of_range", "'asset_class'"),
        (raw(quote(), underlying="EUR USD"), "out_of_range", "valid name"),
        (raw(quote(), bid_vol=..., ask_vol=..., mid_price=1.0), "missing_field", "mid_vol"),
        (raw(equity(mid_vol=0.2), spot=...), "missing_field", "needs spot"),
        (raw(equity(mid_vol=0.2), rate=..., dividend=...), "missing_field", "needs rate, dividend"),
        (raw(equity(mid_vol=0.2), rate=4.5), "out_of_range", "decimal rate"),
        (raw(equity(mid_vol=0.2), mid_price=3.0, call=True), "missing_field", "not both"),
        (raw(equity(mid_price=3.0)), "missing_field", "needs call"),
        (raw(equity(mid_price=3.0), call="yes"), "wrong_type", "'call' must be true or false"),
        (raw(equity(bid_price=3.3, ask_price=3.1, call=True)), "crossed_quote", "bid_price 3.3"),
        (raw(surface_params(), expiries=["soon"]), "wrong_type", "ISO date"),
        (raw(surface_params(), expiries=[]), "wrong_type", "non-empty list"),
        (raw(quote(), colour="red"), "unknown_field", "colour"),
        (raw(params(), params={"alpha": math.nan}), "not_finite", "'params'"),
        (raw(params(), gates={"rmse": {"verdict": "maybe"}}), "out_of_range", "verdict"),
        (raw(HEALTH, windows={"alpha": [0.1, "x"]}), "wrong_type", "in field 'alpha'"),
        (raw(HEALTH, windows=[0.1]), "wrong_type", "map of names to lists"),
        (raw(HEALTH, failed=[0, 1]), "wrong_type", "'failed' must be a list of booleans"),
        (raw(HEALTH, rmse=[1e-4] * 1025), "out_of_range", "more than 1024"),
        (raw(HEALTH, firing="drift"), "wrong_type", "'firing'"),
        (raw(Decision(NOW, "k", 0, "", "maybe", "a", "", "")), "out_of_range", "'decision'"),
        (b"\xc1\xff garbage", "not_msgpack", "msgpack"),
        (msgpack.packb([1, 2, 3]), "wrong_type", "map"),
        (b"\x00" * (MAX_MESSAGE_BYTES + 1), "oversized", "exceeds"),
    ],
)
def test_rejections_name_the_reason_and_field(payload, reason, text):
    with pytest.raises(SchemaError) as err:
        decode(payload)
    assert err.value.reason == reason
    assert text in str(err.value)


def test_expect_a_type():
    with pytest.raises(SchemaError, match="expected a params message"):
        decode(encode(quote()), Params)


def test_dead_letter_keep_is_below_the_message_limit():
    assert DEAD_LETTER_KEEP < MAX_MESSAGE_BYTES


def test_quote_time_to_expiry_is_act365f_to_midnight_utc():
    q = quote(expiry="2026-11-26")  # 12 hours after NOW
    assert q.time_to_expiry == pytest.approx(0.5 / 365, rel=1e-12)
    assert quote(mid_vol=0.2, bid_vol=None, ask_vol=None).vol == 0.2
    assert quote().vol == pytest.approx(0.085)
    assert quote().price is None and equity(bid_price=2.0, ask_price=3.0).price == 2.5


def test_params_keys_name_the_smile_or_the_surface():
    assert (params().key, params().subject) == ("EURUSD|2027-11-25", "EURUSD 2027-11-25 sabr")
    surface = surface_params()
    assert (surface.key, surface.subject) == ("SPX|surface", "SPX surface heston")
    assert "expiries" not in msgpack.unpackb(encode(params()))  # a smile's bytes are unchanged


finite = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
quotes = st.builds(
    quote,
    ts=st.floats(min_value=1e9, max_value=1.7e9),
    underlying=st.from_regex(r"\A[A-Z][A-Z0-9._-]{0,10}\Z"),
    strike=finite,
    forward=finite,
    bid_vol=st.floats(min_value=0.001, max_value=1.0),
    ask_vol=st.floats(min_value=1.0, max_value=3.0),
    seq=st.integers(min_value=0, max_value=2**62),
    source=st.text(max_size=20),
    expiry=st.sampled_from(["2055-01-01", "2099-12-31"]),
)


def priced(within: float, **kw) -> Quote:
    """An equity price quote ``within`` (0-1) of the way between its no-arbitrage bounds."""
    t = time_to_expiry(kw["ts"], kw["expiry"])
    lower, upper = price_bounds(kw["spot"], kw["strike"], kw["rate"], kw["dividend"], t,
                                kw["call"])  # fmt: skip
    price = float(lower + within * (upper - lower))
    assume(lower < price < upper)  # bounds a float apart, or too close to hold a price
    return equity(**kw, mid_price=price)


equity_quotes = st.builds(
    priced,
    within=st.floats(min_value=0.01, max_value=0.99),
    ts=st.floats(min_value=1e9, max_value=1.7e9),
    strike=finite,
    spot=finite,
    rate=st.floats(min_value=-0.2, max_value=0.2),
    dividend=st.floats(min_value=-0.2, max_value=0.2),
    call=st.booleans(),
    open_interest=st.none() | st.floats(min_value=0, max_value=1e9),
    expiry=st.sampled_from(["2055-01-01", "2099-12-31"]),
)


@settings(max_examples=200, deadline=None)
@given(quotes | equity_quotes)
def test_property_valid_quotes_round_trip_exactly(q):
    assert decode(encode(q), Quote) == q


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_property_arbitrary_bytes_never_escape_as_other_errors(data):
    try:
        decode(data)
    except SchemaError as exc:
        assert exc.reason


@settings(max_examples=300, deadline=None)
@given(
    quotes,
    st.dictionaries(
        st.sampled_from(["ts", "strike", "seq", "expiry", "bid_vol", "v", "type", "forward"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(2**63), max_value=2**64 - 1),  # what msgpack packs
            st.floats(),
            st.text(max_size=5),
            st.binary(max_size=5),
        ),
        max_size=3,
    ),
)
def test_property_mutated_quotes_decode_valid_or_raise_schema_error(q, changes):
    payload = raw(q, **changes)
    try:
        out = decode(payload)
    except SchemaError as exc:
        assert exc.reason
    else:  # whatever got through is a fully valid quote
        assert isinstance(out, Quote) and out.strike > 0 and math.isfinite(out.ts)


@settings(max_examples=500, deadline=None)
@given(
    quotes,
    st.dictionaries(
        st.sampled_from(
            [
                "ts",
                "strike",
                "seq",
                "expiry",
                "bid_vol",
                "ask_vol",
                "mid_vol",
                "forward",
                "size",
                "underlying",
                "asset_class",
                "source",
                "open_interest",
                "spot",
                "mid_price",
                "call",
                "extra",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(2**63), max_value=2**64 - 1),
            st.floats(),
            st.sampled_from(["fx", "equity", "2030-01-01", "20300101", "1999-01-01", "A\n"]),
            st.text(max_size=70),
        ),
        max_size=4,
    ),
)
def test_property_the_fast_path_agrees_with_the_field_checks(q, changes):
    """The hot-path decoder takes a quote only when the full checks take the same quote."""
    data = msgpack.unpackb(raw(q, **changes))
    fast = _plain_quote(data)
    try:
        full = Quote.checked(data)
    except SchemaError:
        assert fast is None
    else:
        assert fast is None or fast == full


def test_quote_batches_round_trip_and_their_limits():
    from schemas import MAX_BATCH_BYTES, QuoteBatch

    batch = QuoteBatch(tuple(encode(quote(seq=i)) for i in range(400)))  # ~60 KB... and more
    assert decode(encode(batch), QuoteBatch) == batch
    big = QuoteBatch(tuple(encode(quote(seq=i)) for i in range(1000)))
    assert len(encode(big)) > MAX_MESSAGE_BYTES and decode(encode(big)) == big
    for items, reason in (
        ([], "out_of_range"),
        ([b"x"] * 1025, "out_of_range"),
        ([1, 2], "wrong_type"),
    ):
        with pytest.raises(SchemaError) as err:
            decode(msgpack.packb({"type": "quote_batch", "v": 1, "items": items}))
        assert err.value.reason == reason
    huge = msgpack.packb({"type": "quote_batch", "v": 1, "items": [b"x" * 2000] * 600})
    assert len(huge) > MAX_BATCH_BYTES
    with pytest.raises(SchemaError, match="oversized"):
        decode(huge)
