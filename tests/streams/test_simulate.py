"""The simulated market: event-time drift, scheduled jumps, quotes around the model, seeds."""

import datetime as dt

import numpy as np
import pytest

from engine.heston import heston_price
from schemas.daycount import time_to_expiry
from streams.cli.main import build_parser
from streams.feed.simulate import INDICES, TENOR_DAYS, YEAR, Jump, TickSimulator

T0 = 1.795e9


def run(
    sim: TickSimulator,
    rate: float,
    count: int,
    chunk: int = 4096,
    opening: bool = True,
    start: float = T0,
):
    """Every tick's columns, truth and underlying, concatenated over the chunks."""
    out = list(sim.columns_and_truth(start, rate, count=count, chunk=chunk, opening=opening))
    numbers = {k: np.concatenate([c.numbers[k] for c, _ in out]) for k in out[0][0].numbers}
    truth = type(out[0][1])(*(np.concatenate(col) for col in zip(*(t for _, t in out))))
    text = {k: np.concatenate([c.text[k].decoded() for c, _ in out]) for k in out[0][0].text}
    return numbers, truth, text


def realised_variance(ts, values) -> float:
    """Sum of squared log moves per year of event time."""
    return float(np.sum(np.diff(np.log(values)) ** 2) / ((ts[-1] - ts[0]) / YEAR))


@pytest.mark.parametrize("rate", [20.0, 2000.0])
def test_fx_walks_move_per_event_time_whatever_the_tick_rate(rate):
    sim = TickSimulator(pairs=1, tenors=(91,), seed=2, forward_vol=0.3, vol_vol=1.5)
    span = 600.0  # event seconds: 12000 or 1.2 million moves of one smile
    numbers, truth, _ = run(sim, rate, count=int(rate * span), chunk=8192, opening=False)
    assert realised_variance(numbers["ts"], truth.vol) == pytest.approx(1.5**2, rel=0.08)
    # forwards are quoted to 6 decimals: at 2000 ticks/s rounding dominates tick-to-tick moves
    sampled = np.searchsorted(numbers["ts"], T0 + np.arange(1.0, span - 10, 1.0)) - 1
    rv = realised_variance(numbers["ts"][sampled], truth.level[sampled])
    assert rv == pytest.approx(0.3**2, rel=0.2)


@pytest.mark.parametrize("rate", [20.0, 2000.0])
def test_index_walks_move_per_event_time_whatever_the_tick_rate(rate):
    sim = TickSimulator(
        pairs=0, indices=1, index_tenors=(91,), seed=4, spot_vol=0.5, vol_vol=1.5, index_clock=0.25
    )
    span = 300.0  # at most 1200 states of the index
    numbers, truth, _ = run(sim, rate, count=int(rate * span), chunk=8192, opening=False)
    assert np.array_equal(numbers["spot"], truth.level)
    assert realised_variance(numbers["ts"], truth.atm) == pytest.approx(1.5**2, rel=0.15)
    assert realised_variance(numbers["ts"], truth.level) == pytest.approx(0.5**2, rel=0.15)


def test_a_smiles_spread_after_the_same_event_time_does_not_depend_on_the_tick_rate():
    span, seeds, sigma = 30.0, 40, 1.0  # the forward's log-move after 30 s: sd 1.0 sqrt(30 s)
    spreads = {}
    for rate in (10.0, 1000.0):
        moves = []
        for seed in range(seeds):
            sim = TickSimulator(pairs=1, tenors=(91,), seed=seed, forward_vol=sigma)
            numbers, truth, _ = run(sim, rate, count=int(rate * span * 1.2), opening=False)
            at = np.searchsorted(numbers["ts"], T0 + span) - 1  # the last tick by then
            moves.append(np.log(truth.level[at] / 1.085))
        spreads[rate] = np.std(moves)
    expected = sigma * np.sqrt(span / YEAR)
    assert spreads[10.0] == pytest.approx(expected, rel=0.35)
    assert spreads[1000.0] == pytest.approx(expected, rel=0.35)
    assert 0.6 < spreads[1000.0] / spreads[10.0] < 1.6  # per tick, it would be 10


def test_each_jump_moves_every_expiry_of_one_underlying_at_its_time():
    tenors = (30, 91, 182, 365)
    sim = TickSimulator(
        pairs=2,
        indices=2,
        tenors=tenors,
        seed=7,
        jump_every=12.0,
        jump_bp=(20.0, 60.0),
        vol_vol=0.3,  # diffusion around a jump: < 0.1 bp
        index_clock=0.1,  # an index tick quotes its state at most 0.1 s old
    )
    numbers, truth, text = run(sim, 1000.0, count=80_000, chunk=8192)
    ts, names, expiries = numbers["ts"], text["underlying"], text["expiry"]
    assert [j.ts for j in sim.jumps] == [T0 + 12.0 * k for k in range(1, len(sim.jumps) + 1)]
    assert ts[-1] - 12.0 < sim.jumps[-1].ts <= ts[-1]
    assert len({j.underlying for j in sim.jumps}) >= 3
    assert all(20.0 <= abs(j.size_bp) <= 60.0 for j in sim.jumps)
    assert {np.sign(j.size_bp) for j in sim.jumps} == {-1.0, 1.0}
    inside = 0
    for jump in sim.jumps:
        for name in np.unique(names):
            n_expiries = len(np.unique(expiries[names == name]))
            assert n_expiries == len(tenors)
            for expiry in np.unique(expiries[names == name]):
                rows = np.flatnonzero((names == name) & (expiries == expiry))
                after = rows[np.searchsorted(ts[rows], jump.ts)]
                before = rows[np.searchsorted(ts[rows], jump.ts) - 1]
                assert ts[before] < jump.ts <= ts[after] < jump.ts + 1.0
                inside += after // 8192 == before // 8192  # both in one chunk
                moved_bp = (truth.atm[after] - truth.atm[before]) * 1e4
                expected = jump.size_bp if name == jump.underlying else 0.0
                assert moved_bp == pytest.approx(expected, abs=0.3), (jump, name, expiry)
    assert inside > len(sim.jumps)  # jumps land inside chunks, not only between them


def test_a_jump_moves_the_fx_quotes_mids_by_its_size():
    sim = TickSimulator(pairs=1, tenors=(91,), seed=3, jump_every=20.0, jump_bp=(50.0, 50.0))
    numbers, _, _ = run(sim, 200.0, count=8000, opening=False)
    ts, mid = numbers["ts"], (numbers["bid_vol"] + numbers["ask_vol"]) / 2
    atm_strike = np.median(numbers["strike"])  # the middle of the 15, the opening forward
    for jump in sim.jumps:
        near = numbers["strike"] == atm_strike
        before = near & (ts < jump.ts) & (ts > jump.ts - 5)
        after = near & (ts >= jump.ts) & (ts < jump.ts + 5)
        moved_bp = (mid[after].mean() - mid[before].mean()) * 1e4
        assert moved_bp == pytest.approx(jump.size_bp, abs=5.0)


def test_quotes_enclose_the_model_with_noise_inside_the_spread():
    sim = TickSimulator(pairs=3, indices=2, seed=11, jump_every=3.0)
    numbers, truth, text = run(sim, 500.0, count=20_000)
    fx = text["asset_class"] == "fx"
    bid = np.where(fx, numbers["bid_vol"], numbers["bid_price"])
    ask = np.where(fx, numbers["ask_vol"], numbers["ask_price"])
    assert np.isfinite(truth.model).all() and fx.any() and (~fx).any()
    assert (bid <= truth.model).all() and (truth.model <= ask).all()
    assert np.array_equal(numbers["forward"][fx], truth.level[fx])
    assert np.array_equal(numbers["spot"][~fx], truth.level[~fx])
    half = (ask - bid) / 2
    relative = half / truth.model
    assert relative[fx].min() > 0.0025 - 1e-5 and relative[fx].max() < 0.005 + 1e-5
    assert relative[~fx].min() > 0.005 - 1e-5 and relative[~fx].max() < 0.01 + 1e-5
    noise = ((bid + ask) / 2 - truth.model) / half  # uniform in +-0.5 of the half spread
    assert np.abs(noise).max() < 0.5 + 1e-3
    assert np.std(noise) == pytest.approx(1 / np.sqrt(12), rel=0.05)
    assert abs(np.mean(noise)) < 0.01


@pytest.mark.parametrize("hour", [0.5, 22.5])
def test_index_options_are_priced_to_the_time_left_to_their_expiry_dates(hour):
    """Late in the day an option has nearly a day less to run than its tenor: the model is
    priced at the ACT/365F years from the tick to 00:00 UTC of its expiry date, as the book
    counts them (pricing every tick at tenor/365 failed the weekly Heston playbook's 2% price
    gate on the stream's surfaces from mid-afternoon UTC)."""
    start = T0 - T0 % 86400 + 3600 * hour
    sim = TickSimulator(pairs=0, indices=1, seed=8, index_clock=1e-3)  # a state per tick
    numbers, truth, text = run(sim, 20.0, count=300, start=start)
    _, r, q, _, kappa, theta, sigma, rho = INDICES["SPX"]
    call = numbers["call"] == 1

    def priced(years):
        args = (numbers["strike"], years, r, q, truth.vol, kappa, theta, sigma, rho, call)
        return np.asarray(heston_price(truth.level, *args))

    left = np.array([time_to_expiry(ts, e) for ts, e in zip(numbers["ts"], text["expiry"])])
    assert priced(left) == pytest.approx(truth.model, rel=1e-8)
    today = dt.datetime.fromtimestamp(start, dt.UTC).date()
    tenors = np.array([(dt.date.fromisoformat(e) - today).days for e in text["expiry"]])
    assert set(tenors) == set(TENOR_DAYS)
    naive = np.max(np.abs(priced(tenors / 365.0) / truth.model - 1))  # at tenor/365
    assert naive > (0.05 if hour > 12 else 1e-3)  # measured: 0.25% at 00:30, 12% at 22:30


def test_same_seed_same_ticks_whatever_the_chunks_and_another_seed_others():
    def ticks(seed, chunk):
        sim = TickSimulator(pairs=2, indices=1, seed=seed, jump_every=2.0)
        numbers, _, text = run(sim, 400.0, count=3000, chunk=chunk)
        return numbers, text, sim.jumps

    reference = ticks(5, 4096)
    for chunk in (4096, 1000, 97):
        numbers, text, jumps = ticks(5, chunk)
        assert jumps == reference[2] and len(jumps) >= 3
        for k, column in numbers.items():
            assert np.array_equal(column, reference[0][k], equal_nan=True), (chunk, k)
        for k, column in text.items():
            assert np.array_equal(column, reference[1][k]), (chunk, k)
    other, _, other_jumps = ticks(6, 4096)
    assert not np.array_equal(other["bid_vol"], reference[0]["bid_vol"], equal_nan=True)
    assert other_jumps != reference[2]


def test_each_columns_call_starts_the_market_afresh():
    sim = TickSimulator(pairs=1, indices=1, seed=1, jump_every=1.0)
    first = [q for c in sim.columns(T0, 100.0, count=500) for q in c.quotes()]
    jumps = list(sim.jumps)
    assert first == [q for c in sim.columns(T0, 100.0, count=500) for q in c.quotes()]
    assert sim.jumps == jumps and all(isinstance(j, Jump) for j in jumps)
    assert first[:50] == list(sim.ticks(T0, 100.0, count=500))[:50]


def test_a_resumed_call_goes_on_with_the_market_its_jumps_left():
    # a jump of 50 bp every 0.1 s for 3 s: a fresh market at T0 + 10 is back at the opening levels, a
    # resumed one keeps every jump's move (the quotes a worker fitted stay near the market)
    sim = TickSimulator(pairs=2, indices=1, seed=4, jump_every=0.1, jump_bp=(50.0, 50.0),
                        vol_vol=0.1, forward_vol=0.01, spot_vol=0.01)  # fmt: skip
    with pytest.raises(ValueError, match="earlier call"):
        next(sim.columns(T0, 1000.0, count=10, resume=True))
    before = list(sim.columns_and_truth(T0, 1000.0, count=3000, chunk=4096))
    jumps = sim.jumps
    after = list(sim.columns_and_truth(T0 + 10, 1000.0, count=3000, chunk=4096, opening=False,
                                       resume=True))  # fmt: skip
    fresh = list(TickSimulator(pairs=2, indices=1, seed=4).columns_and_truth(
        T0 + 10, 1000.0, count=3000, chunk=4096, opening=False))  # fmt: skip

    def atm(chunks, until=np.inf) -> dict[tuple[str, str], tuple[float, float]]:
        """Each smile's last tick before ``until``: its time and ATM vol."""
        out = {}
        for c, truth in chunks:
            for u, x, ts, a in zip(c.text["underlying"].decoded(), c.text["expiry"].decoded(),
                                   c.numbers["ts"], truth.atm):  # fmt: skip
                if ts < until:
                    out[(u, x)] = (ts, a)
        return out

    end, opened = atm(before), atm(fresh)
    resumed = atm(after, until=sim.jumps[0].ts)  # before the resumed call's own first jump
    moved = {j.underlying for j in jumps}
    assert len(jumps) > 20 and moved and sim.jumps[0].ts == pytest.approx(T0 + 10.1)
    fx = [k for k in resumed if k[0] in sim.pairs]  # (an index quotes a state of its clock)
    assert len(fx) == 8  # 2 pairs x 4 tenors, each quoted before the first resumed jump
    for key in fx:  # goes on where it stopped, with the jumps since
        a = resumed[key][1]
        since = sum(j.size_bp for j in jumps if j.underlying == key[0] and j.ts > end[key][0])
        assert a - end[key][1] == pytest.approx(1e-4 * since, abs=3e-4), key
    assert max(abs(end[k][1] - opened[k][1]) for k in end if k[0] in moved) > 40e-4  # fresh


def test_no_jumps_by_default_and_bad_settings_are_refused():
    sim = TickSimulator(pairs=1, seed=1)
    run(sim, 100.0, count=2000)
    assert sim.jumps == []
    for bad in ({"jump_every": -1.0}, {"jump_bp": (30, 10)}, {"vol_vol": -0.1}):
        with pytest.raises(ValueError):
            TickSimulator(**bad)


def test_the_simulate_verb_takes_drift_and_jump_settings():
    args = build_parser().parse_args(
        ["simulate", "--jump-every", "30", "--jump-bp", "10", "40", "--vol-vol", "0.8"]
    )
    assert (args.jump_every, args.jump_bp, args.vol_vol) == (30.0, [10.0, 40.0], 0.8)
    assert (args.forward_vol, args.spot_vol) == (0.08, 0.2)
    assert build_parser().parse_args(["simulate"]).jump_every is None
