"""Rolling surfaces: event-time triggers, ageing, outliers, snapshots."""

import datetime as dt
import math

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
    assert snap.key == "USDJPY|2027-11-25"


def eq(strike, expiry, ts, spot=5000.0, vol=None, price=None, call=None, underlying="SPX"):
    return Quote(
        ts=ts,
        underlying=underlying,
        asset_class="equity",
        expiry=expiry,
        strike=strike,
        source="t",
        seq=0,
        spot=spot,
        rate=0.04,
        dividend=0.01,
        mid_vol=vol,
        mid_price=price,
        call=call,
        open_interest=500.0 if price else None,
    )


EXPIRIES = ("2026-12-25", "2027-03-25", "2027-11-25")
GRID = [(e, k) for e in EXPIRIES for k in (4500.0, 4750.0, 5000.0, 5250.0, 5500.0)]


def test_an_index_is_one_surface_of_every_expiry_calibrated_together():
    book = SurfaceBook(SurfaceConfig(surface_min_quotes=15, surface_ticks=4, forward_move=1e-3))
    opening = [
        book.on_quote(eq(k, e, T0 + i, price=100.0 + i, call=k >= 5000), 7.0)
        for i, (e, k) in enumerate(GRID)
    ]
    assert opening[:14] == [None] * 14 and opening[14] is not None
    snap = opening[14]
    assert snap.key == "SPX|surface" and snap.shape == (3, 5) and len(book) == 1
    assert snap.expiries == tuple(e for e, _ in GRID) and snap.strikes == tuple(k for _, k in GRID)
    assert snap.times[0] == pytest.approx(time_to_expiry(T0 + 14, EXPIRIES[0]))
    assert snap.prices[3] == 103.0 and math.isnan(snap.vols[3]) and snap.calls[3] is True
    assert snap.rates == (0.04,) * 15 and snap.open_interest == (500.0,) * 15
    # the surface ticks trigger (4 here), and a spot move; each price keeps the spot it was
    # quoted against while the surface moves on
    later = [book.on_quote(eq(4500.0, EXPIRIES[1], T0 + 20 + i, vol=0.2), 8.0) for i in range(4)]
    assert later[:3] == [None] * 3 and later[3] is not None
    moved = book.on_quote(eq(4750.0, EXPIRIES[1], T0 + 30, spot=5006.0, vol=0.21), 9.0)
    assert moved is not None and moved.spot == 5006.0
    i = moved.strikes.index(4750.0, 5)
    assert moved.vols[i] == 0.21 and moved.calls[i] is None and moved.quote_spots[0] == 5000.0


def test_surface_outliers_by_expiry_and_expired_options_leave():
    book = SurfaceBook(SurfaceConfig(surface_min_quotes=10, surface_ticks=1))
    for i, (e, k) in enumerate(GRID):
        vol = 0.6 if (e, k) == (EXPIRIES[2], 5000.0) else 0.2
        snap = book.on_quote(eq(k, e, T0 + i, vol=vol), 0.0)
    assert snap.dropped == 1 and 0.6 not in snap.vols and len(snap.strikes) == 14
    # a week on, the first expiry is gone (and its quotes aged out of the book)
    week = book.on_quote(eq(5000.0, EXPIRIES[1], T0 + 8 * 86400, vol=0.2), 0.0)
    assert week is None  # 300 s ageing leaves one quote: too few
    assert EXPIRIES[0] not in {e for e, _ in book._books["SPX|surface"].quotes}
