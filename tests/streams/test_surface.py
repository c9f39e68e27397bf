"""Rolling surfaces: event-time triggers, ageing, outliers, snapshots."""

import datetime as dt

import pytest

from schemas import Quote, time_to_expiry
from streams.surface import SurfaceBook, SurfaceConfig

T0 = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC).timestamp()


def q(strike, vol=0.1, ts=T0, forward=1.0, expiry="2027-11-25", underlying="EURUSD"):
    return Quote(
        ts=ts,
        underlying=underlying,
        asset_class="fx",
        expiry=expiry,
        strike=strike,
        source="t",
        seq=0,
        forward=forward,
        mid_vol=vol,
    )


STRIKES = [0.9, 0.95, 1.0, 1.05, 1.1, 1.15]


def test_first_snapshot_when_enough_quotes_then_every_n_ticks():
    book = SurfaceBook(SurfaceConfig(min_quotes=5, ticks=3))
    out = [book.on_quote(q(k, ts=T0 + i), received_at=100.0 + i) for i, k in enumerate(STRIKES[:5])]
    assert out[:4] == [None] * 4 and out[4] is not None
    snap = out[4]
    assert snap.strikes == tuple(STRIKES[:5]) and snap.received_at == 100.0
    assert snap.time_to_expiry == pytest.approx(time_to_expiry(T0 + 4, "2027-11-25"))
    assert snap.window_start == T0 and snap.window_end == T0 + 4
    again = [book.on_quote(q(1.0, 0.11, ts=T0 + 10 + i), received_at=200.0 + i) for i in range(3)]
    assert again[:2] == [None, None] and again[2] is not None
    assert again[2].received_at == 200.0  # first tick since the last snapshot
    assert dict(zip(again[2].strikes, again[2].vols))[1.0] == 0.11  # latest quote per strike


def test_forward_move_and_max_age_trigger_in_event_time():
    book = SurfaceBook(SurfaceConfig(min_quotes=5, ticks=100, forward_move=1e-3, max_age=30))
    for i, k in enumerate(STRIKES[:5]):
        book.on_quote(q(k, ts=T0 + i), 0.0)
    assert book.on_quote(q(1.0, forward=1.0005, ts=T0 + 6), 0.0) is None
    assert book.on_quote(q(1.0, forward=1.0011, ts=T0 + 7), 0.0) is not None  # moved 11 bp
    assert book.on_quote(q(1.0, forward=1.0011, ts=T0 + 20), 0.0) is None
    assert book.on_quote(q(1.0, forward=1.0011, ts=T0 + 38), 0.0) is not None  # 31 s later


def test_stale_quotes_age_out_and_outliers_are_dropped():
    book = SurfaceBook(SurfaceConfig(min_quotes=4, ticks=1, max_quote_age=60))
    for i, k in enumerate(STRIKES):
        book.on_quote(q(k, ts=T0 + i), 0.0)
    for i, k in enumerate(STRIKES[1:]):  # everything but 0.9 refreshed two minutes later
        snap = book.on_quote(q(k, vol=0.5 if k == 1.05 else 0.1, ts=T0 + 120 + i), 0.0)
    assert 0.9 not in snap.strikes  # aged out
    assert 1.05 not in snap.strikes and snap.dropped == 1  # 0.5 among 0.1s
    assert snap.strikes == (0.95, 1.0, 1.1, 1.15)


def test_too_few_quotes_after_filtering_gives_no_snapshot():
    book = SurfaceBook(SurfaceConfig(min_quotes=5, ticks=1))
    out = [
        book.on_quote(q(k, vol=0.5 if i == 2 else 0.1, ts=T0 + i), 0.0)
        for i, k in enumerate(STRIKES[:5])
    ]
    assert out[-1] is None  # one outlier leaves four


def test_smiles_are_independent_per_underlying_and_expiry():
    book = SurfaceBook(SurfaceConfig(min_quotes=5))
    for i, k in enumerate(STRIKES[:4]):
        book.on_quote(q(k, ts=T0 + i), 0.0)
        book.on_quote(q(k, ts=T0 + i, underlying="USDJPY"), 0.0)
        book.on_quote(q(k, ts=T0 + i, expiry="2027-05-25"), 0.0)
    assert len(book) == 3
    snap = book.on_quote(q(1.2, ts=T0 + 9, underlying="USDJPY"), 0.0)
    assert snap.key == ("USDJPY", "2027-11-25")
