"""Rolling surfaces as arrays: epochs of event time, triggers, ageing, outliers, snapshots."""

import datetime as dt
import math
import statistics

import numpy as np
import pytest

from engine.sabr import hagan_vol
from schemas import Params, Quote, QuoteColumns, time_to_expiry
from streams.book.surfaces import SurfaceBook, SurfaceConfig, _outliers
from streams.feed.simulate import TickSimulator

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
SECOND = {"epoch": 1.0, "min_interval": 0.0}  # one-second epochs keep these tests readable


def feed(book, quotes, partition=0, received=0.0):
    """The snapshots ``quotes``, sent as one message, close."""
    return book.ingest(QuoteColumns.from_quotes(quotes), partition, received)


def test_a_smile_is_snapshotted_when_its_epoch_closes_with_enough_quotes():
    book = SurfaceBook(SurfaceConfig(min_quotes=5, **SECOND))
    # one quote a second: each closes the previous second's epoch, too few quotes until the 5th
    assert feed(book, [q(k, ts=T0 + i) for i, k in enumerate(STRIKES[:5])], received=100.0) == []
    (snap,) = book.flush()  # the stream went quiet: the open epoch closes
    assert snap.strikes == tuple(STRIKES[:5]) and snap.received_at == 100.0
    assert snap.time_to_expiry == pytest.approx(time_to_expiry(T0 + 4, "2027-11-25"))
    assert snap.window_start == T0 and snap.window_end == T0 + 4
    assert snap.epoch == math.floor((T0 + 4) / 1.0)
    # three ticks in one epoch: one snapshot, from the latest quote of each strike
    again = [q(1.0, 0.11, ts=T0 + 10), q(1.0, 0.12, ts=T0 + 10.5), q(0.9, ts=T0 + 10.2)]
    assert feed(book, again, received=200.0) == []
    (snap,) = feed(book, [q(1.1, ts=T0 + 11)])  # the next second closes it
    assert snap.received_at == 200.0  # the first tick since the last snapshot
    assert dict(zip(snap.strikes, snap.vols))[1.0] == 0.12 and snap.window_end == T0 + 10.5


def test_ticks_within_an_epoch_are_coalesced_into_one_calibration():
    book = SurfaceBook(SurfaceConfig(min_quotes=5, epoch=0.05, min_interval=0.0))
    ticks = [q(STRIKES[i % 6], 0.1 + i * 1e-4, ts=T0 + 5e-4 + i * 1e-3) for i in range(200)]
    snaps = feed(book, ticks) + book.flush()
    assert len(snaps) == 4  # 200 ticks over four 50 ms epochs
    assert [s.window_end for s in snaps] == [ticks[i].ts for i in (49, 99, 149, 199)]


SABR = {"alpha": 0.1, "beta": 0.5, "rho": -0.2, "nu": 0.5}


def fit_as(book, snaps, params):
    """Take ``params`` as the fit of each of ``snaps`` (what the worker's calibration does)."""
    book.fitted(snaps, [
        Params(s.underlying, s.expiry, "sabr", params, s.forward, s.time_to_expiry, True, "ok",
               False, 1, 0.0, {}, {}, s.window_start, s.window_end, len(s.strikes), 0.0, 0.0)
        for s in snaps
    ])  # fmt: skip


def model(strike, forward, ts):
    t = time_to_expiry(ts, "2027-11-25")
    return float(hagan_vol(strike, forward, t, *SABR.values()))


def quoted(strike, forward, ts, off=0.0, half=3e-4):
    """A quote ``off`` from the model's vol, ``half`` its half spread."""
    vol = model(strike, forward, ts) + off
    base = q(strike, ts=ts, forward=forward)
    return Quote(**{**base.__dict__, "mid_vol": None, "bid_vol": vol - half, "ask_vol": vol + half})


def test_a_tick_out_of_tolerance_makes_its_smile_due_and_a_forward_move_alone_does_not():
    book = SurfaceBook(SurfaceConfig(min_quotes=5, max_age=30, **SECOND | {"min_interval": 2.0}))
    feed(book, [quoted(k, 1.0, T0 + i * 0.1) for i, k in enumerate(STRIKES)])
    fit_as(book, book.flush(), SABR)  # never fitted: due at once
    assert book.coverage(0).event_time == T0 + 0.5 and book.coverage(0).pending == 0
    assert book.ticks_out == len(STRIKES)  # each needed a fit: none existed
    # inside the spread, the forward 2% away (the model moves with it): nothing is due
    calm = [quoted(k, 1.02, T0 + 3 + i * 0.1, off=2.5e-4) for i, k in enumerate(STRIKES)]
    assert feed(book, calm) + book.flush() == []
    assert book.coverage(0).event_time == calm[-1].ts
    # half-spread 3 bp, 4 bp off: below the 5 bp floor; 6 bp off: due
    assert feed(book, [quoted(1.0, 1.02, T0 + 5, off=4e-4)]) + book.flush() == []
    jump = quoted(1.05, 1.02, T0 + 6, off=-6e-4)
    assert feed(book, [jump, quoted(1.1, 1.02, T0 + 6.5)]) == []
    assert book.ticks_out == len(STRIKES) + 1  # the jump alone: calm ticks needed no fit
    cover = book.coverage(0)  # the jump holds the watermark back until its smile is fitted
    assert cover.event_time < jump.ts and cover.event_time > T0 + 5 and cover.pending == 1
    (snap,) = feed(book, [quoted(1.0, 1.02, T0 + 7)])  # the next epoch closes the due one
    assert snap.window_end == T0 + 6.5
    fit_as(book, [snap], SABR)
    assert book.coverage(0).event_time == T0 + 7
    # the minimum interval: a smile fitted at 6.5 s is not fitted again before 8.5 s
    assert feed(book, [quoted(1.0, 1.02, T0 + 7.2, off=1e-3), quoted(1.1, 1.02, T0 + 8)]) == []
    assert book.coverage(0).pending == 1
    assert feed(book, [quoted(1.1, 1.02, T0 + 9)]) == []  # closes 8 s: 1.5 s on
    (snap,) = feed(book, [quoted(1.1, 1.02, T0 + 10)])  # closes 9 s: 2.5 s on
    fit_as(book, [snap], SABR)
    # within tolerance but 30 s after the fit: due by age
    assert feed(book, [quoted(1.0, 1.02, T0 + 38)]) + book.flush() == []
    assert len(feed(book, [quoted(1.0, 1.02, T0 + 40)]) + book.flush()) == 1


def test_a_smile_too_thin_to_fit_is_named_and_does_not_hold_the_watermark():
    book = SurfaceBook(SurfaceConfig(min_quotes=5, **SECOND))
    feed(book, [q(k, ts=T0 + i) for i, k in enumerate(STRIKES[:3])])
    assert book.flush() == []
    cover = book.coverage(0)
    assert cover == (T0 + 2, 0, ("EURUSD|2027-11-25",))


def test_stale_quotes_age_out_and_outliers_are_dropped():
    book = SurfaceBook(SurfaceConfig(min_quotes=4, max_quote_age=60, **SECOND))
    feed(book, [q(k, ts=T0 + i) for i, k in enumerate(STRIKES)])
    book.flush()
    later = [
        q(k, vol=0.5 if k == 1.05 else 0.1, ts=T0 + 120 + i * 0.1)
        for i, k in enumerate(STRIKES[1:])
    ]
    (snap,) = feed(book, later) + book.flush()  # everything but 0.9 refreshed two minutes on
    assert 0.9 not in snap.strikes  # aged out
    assert 1.05 not in snap.strikes and snap.dropped == 1  # 0.5 among 0.1s
    assert snap.strikes == (0.95, 1.0, 1.1, 1.15)


def test_too_few_quotes_after_filtering_gives_no_snapshot():
    book = SurfaceBook(SurfaceConfig(min_quotes=5, **SECOND))
    out = feed(book, [q(k, vol=0.5 if i == 2 else 0.1, ts=T0) for i, k in enumerate(STRIKES[:5])])
    assert out + book.flush() == []  # one outlier leaves four


def test_smiles_are_independent_per_underlying_and_expiry():
    book = SurfaceBook(SurfaceConfig(min_quotes=5, **SECOND))
    ticks = []
    for i, k in enumerate(STRIKES[:4]):
        ticks += [
            q(k, ts=T0 + i),
            q(k, ts=T0 + i, underlying="USDJPY"),
            q(k, ts=T0 + i, expiry="2027-05-25"),
        ]
    feed(book, ticks)
    assert len(book) == 3 and book.flush() == []
    (snap,) = feed(book, [q(1.2, ts=T0 + 9, underlying="USDJPY")]) + book.flush()
    assert snap.key == "USDJPY|2027-11-25"


def test_a_late_tick_joins_the_open_epoch_and_a_stale_one_is_ignored():
    book = SurfaceBook(SurfaceConfig(min_quotes=5, max_quote_age=60, **SECOND))
    feed(book, [q(k, ts=T0 + 100) for k in STRIKES[:5]])
    (first,) = book.flush()
    # 0.5 s late: joins; older than the strike's quote: loses to it; 70 s late: ignored
    late = [q(1.15, ts=T0 + 99.5), q(1.0, 0.2, ts=T0 + 99.8), q(0.8, ts=T0 + 30)]
    (snap,) = feed(book, late) + book.flush()
    assert snap.strikes == (0.9, 0.95, 1.0, 1.05, 1.1, 1.15) and snap.vols[2] == 0.1
    assert snap.window_end == T0 + 100 == first.window_end  # the book's time does not go back


def test_snapshots_depend_on_each_partitions_ticks_not_on_message_or_batch_cuts():
    sim = TickSimulator(pairs=2, indices=1, seed=11)
    ticks = list(sim.ticks(1.795e9, rate=3000, count=6000))
    parts = {
        p: QuoteColumns.from_quotes([t for t in ticks if (t.underlying == "SPX") == p])
        for p in (0, 1)
    }

    def run(size: int, order: str):
        book = SurfaceBook(SurfaceConfig(epoch=0.02, min_interval=0.0))
        cuts = {
            p: [c.take(slice(i, i + size)) for i in range(0, c.n, size)] for p, c in parts.items()
        }
        messages = [(p, m) for p in (0, 1) for m in cuts[p]]
        if order == "interleaved":
            messages = [(p, m) for pair in zip(cuts[0], cuts[1]) for p, m in zip((0, 1), pair)]
            shorter = min(len(cuts[0]), len(cuts[1]))
            messages += [(p, m) for p in (0, 1) for m in cuts[p][shorter:]]
        out = [s for p, m in messages for s in book.ingest(m, p, 0.0)] + book.flush()
        return {key: [repr(s) for s in out if s.key == key] for key in {s.key for s in out}}

    reference = run(8192, "in turn")
    assert sum(map(len, reference.values())) > 500 and "SPX|surface" in reference
    for size, order in ((1, "in turn"), (37, "interleaved"), (1000, "interleaved")):
        assert run(size, order) == reference, (size, order)


def test_outliers_of_every_group_at_once_equal_window_medians_one_by_one():
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(40), rng.integers(1, 12, 40))
    vols = 0.1 * np.exp(0.3 * rng.standard_normal(groups.size))
    flags = _outliers(vols, groups, 0.25)
    expected = []
    for g in np.unique(groups):
        v = vols[groups == g].tolist()
        for i, x in enumerate(v):
            m = statistics.median(v[max(0, i - 2) : i + 3])
            expected.append(len(v) >= 3 and abs(x / m - 1.0) > 0.25)
    assert flags.tolist() == expected and 0 < flags.sum() < flags.size


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
    book = SurfaceBook(SurfaceConfig(surface_min_quotes=15, **SECOND))
    opening = [
        eq(k, e, T0 + i * 0.01, price=100.0 + i, call=k >= 5000) for i, (e, k) in enumerate(GRID)
    ]
    assert feed(book, opening, received=7.0) == []
    (snap,) = book.flush()
    assert snap.key == "SPX|surface" and snap.shape == (3, 5) and len(book) == 1
    assert snap.expiries == tuple(e for e, _ in GRID) and snap.strikes == tuple(k for _, k in GRID)
    assert snap.times[0] == pytest.approx(time_to_expiry(T0 + 0.14, EXPIRIES[0]))
    assert snap.prices[3] == 103.0 and math.isnan(snap.vols[3]) and snap.calls[3] is True
    assert snap.rates == (0.04,) * 15 and snap.open_interest == (500.0,) * 15
    # with no fit yet, any tick makes the surface due: ticks of one epoch give one snapshot;
    # each price keeps the spot it was quoted against while the surface moves on
    ticks = [eq(4500.0, EXPIRIES[1], T0 + 20 + i * 0.1, vol=0.2) for i in range(3)]
    assert len(feed(book, ticks) + book.flush()) == 1
    (moved,) = (
        feed(book, [eq(4750.0, EXPIRIES[1], T0 + 30, spot=5006.0, vol=0.21)], received=9.0)
        + book.flush()
    )
    assert moved.spot == 5006.0
    i = moved.strikes.index(4750.0, 5)
    assert moved.vols[i] == 0.21 and moved.calls[i] is None and moved.quote_spots[0] == 5000.0


def test_surface_outliers_by_expiry_and_expired_options_leave():
    book = SurfaceBook(SurfaceConfig(surface_min_quotes=10, **SECOND))
    grid = [eq(k, e, T0, vol=0.6 if (e, k) == (EXPIRIES[2], 5000.0) else 0.2) for e, k in GRID]
    (snap,) = feed(book, grid) + book.flush()
    assert snap.dropped == 1 and 0.6 not in snap.vols and len(snap.strikes) == 14
    # a week on, the first expiry is gone (and its quotes aged out of the book)
    week = feed(book, [eq(5000.0, EXPIRIES[1], T0 + 8 * 86400, vol=0.2)]) + book.flush()
    assert week == []  # 300 s ageing leaves one quote: too few
    assert book._b["live"][0] == 1


def test_current_reads_every_smile_without_resetting_its_triggers():
    """What a playbook job reads from the stream: every smile as it stands now; the next
    epoch's calibration is still due as if nobody had looked."""
    book = SurfaceBook(SurfaceConfig(min_quotes=5, **SECOND))
    feed(book, [q(k, ts=T0 + 0.1 * i) for i, k in enumerate(STRIKES[:5])])
    feed(book, [q(k, ts=T0 + 0.1 * i, expiry="2028-11-24") for i, k in enumerate(STRIKES[:4])])
    (now,) = book.current()  # the four-quote smile has too few quotes
    assert now.strikes == tuple(STRIKES[:5]) and now.expiry == "2027-11-25"
    assert book.current() == [now]  # reading twice changes nothing
    (due,) = feed(book, [q(1.1, ts=T0 + 1.5)])  # the epoch closes: still due
    assert due.strikes == now.strikes and due.vols == now.vols


def test_books_no_longer_quoted_are_dropped_at_the_same_ticks_however_they_are_batched():
    config = {"epoch": 1.0, "min_interval": 0.0, "max_quote_age": 300.0}
    old, kept = ("AUDUSD", "NZDUSD"), ("EURUSD", "GBPUSD")
    ticks = [q(k, 0.1 + 1e-3 * i, ts=T0 + i, underlying=u)
             for i in range(60) for u in old + kept for k in STRIKES[i % 6: i % 6 + 1]]  # fmt: skip
    # only the kept pairs after the first minute; AUDUSD again after 20 minutes
    ticks += [q(STRIKES[i % 6], 0.1, ts=T0 + 60 + i, underlying=u)
              for i in range(1200) for u in kept]  # fmt: skip
    ticks += [q(k, 0.2, ts=T0 + 1300, underlying="AUDUSD") for k in STRIKES]
    columns = QuoteColumns.from_quotes(ticks)

    def run(size: int, evict_after: float):
        book = SurfaceBook(SurfaceConfig(evict_after=evict_after, **config))
        out, evicted, sizes = [], [], []
        for i in range(0, columns.n, size):
            out += book.ingest(columns.take(slice(i, i + size)), 0, 0.0)
            evicted += book.evicted
            book.evicted = []
            sizes.append(len(book))
        return out + book.flush(), evicted, sizes

    snaps, evicted, sizes = run(columns.n, 600.0)
    assert evicted == ["AUDUSD|2027-11-25", "NZDUSD|2027-11-25"]
    assert len(SurfaceBook()) == 0 and sizes[-1] == 3  # AUDUSD is back, a book of its own
    for size in (1, 7, 500):  # the same drops at the same ticks, whatever the cuts
        again, dropped, _ = run(size, 600.0)
        assert [repr(s) for s in again] == [repr(s) for s in snaps] and dropped == evicted, size
    # what is still quoted is snapshotted as if nothing were ever dropped
    never, none, _ = run(columns.n, 1e9)
    assert none == [] and [repr(s) for s in never if s.underlying in kept] == [
        repr(s) for s in snaps if s.underlying in kept]  # fmt: skip
    (back,) = [s for s in snaps if s.underlying == "AUDUSD" and s.window_end == T0 + 1300]
    assert back.vols == (0.2,) * 6  # only its new quotes: the book started anew
    with pytest.raises(ValueError, match="evict_after"):
        SurfaceConfig(evict_after=60.0)
