"""Batched calibration of snapshots: engine-equal results, rounds, warm state, determinism, flags."""

import dataclasses

import numpy as np
import pytest

from bench.smiles import fx_smiles
from engine.sabr import SABRCalibrator
from schemas import QuoteColumns, WarmState, decode, encode
from streams.book.calibrations import Calibrations, rounds
from streams.book.surfaces import SmileSnapshot, SurfaceBook, SurfaceConfig
from streams.feed.simulate import TickSimulator


def snapshots(n=6, seed=3, n_strikes=15, noise=0.0, underlying="EURUSD"):
    d = fx_smiles(n, n_strikes=n_strikes, seed=seed, noise=noise)
    return [
        SmileSnapshot(
            underlying=underlying,
            asset_class="fx",
            expiry=str(np.datetime64("2027-01-01") + i),
            forward=float(d["forward"][i]),
            time_to_expiry=float(d["expiry"][i]),
            strikes=tuple(d["strikes"][i]),
            vols=tuple(d["vols"][i]),
            window_start=1.7e9,
            window_end=1.7e9 + 5,
            dropped=0,
            received_at=1.0,
        )
        for i in range(n)
    ], d


def test_params_equal_a_direct_engine_calibration_and_warm_state_follows():
    snaps, d = snapshots()
    cal = Calibrations(clock=lambda: 42.0)
    out = cal.run(snaps)
    direct = SABRCalibrator(beta=0.5).calibrate_batch(
        d["forward"], d["expiry"], d["strikes"], d["vols"]
    )
    for i, p in enumerate(out):
        assert p.good and not p.warm and p.published_at == 42.0 and p.n_quotes == 15
        for name in ("alpha", "rho", "nu"):
            assert p.params[name] == pytest.approx(float(direct.params[name][i]), rel=1e-12)
        assert cal.state[snaps[i].key].warm == p.params | {}  # good fits become warm starts
    later = [dataclasses.replace(s, window_end=s.window_end + 1, epoch=1) for s in snaps]
    again = cal.run(later)
    assert all(p.warm for p in again)
    assert all(p.gates["stability"]["verdict"] == "pass" for p in again)
    assert sum(p.iterations for p in again) < sum(p.iterations for p in out)


def test_bad_fits_are_flagged_and_never_become_warm_starts():
    snaps, _ = snapshots(2)
    zigzag = tuple(v * (1.3 if i % 2 else 0.7) for i, v in enumerate(snaps[0].vols))
    bad = snaps[0].__class__(**{**snaps[0].__dict__, "vols": zigzag})
    cal = Calibrations()
    (p,) = cal.run([bad])
    assert not p.good and p.gates["rmse"]["verdict"] == "fail"
    assert cal.state[bad.key].warm is None and cal.state[bad.key].prior is not None


@pytest.mark.parametrize("noise", [0.0, 0.002])
def test_batch_composition_does_not_change_a_single_bit(noise):
    snaps, _ = snapshots(12, noise=noise)
    short, _ = snapshots(3, seed=8, n_strikes=7, underlying="USDJPY")
    alone = [Calibrations().run([s])[0] for s in snaps]
    crowd = [dataclasses.replace(s, expiry=f"{s.expiry}-{k}") for k in range(25) for s in snaps]
    in_crowd = Calibrations().run(crowd + snaps)[-12:]  # a batch of 312 smiles
    assert [(p.params, p.rmse, p.iterations) for p in in_crowd] == [
        (p.params, p.rmse, p.iterations) for p in alone
    ]
    rng = np.random.default_rng(1)
    for _ in range(3):
        order = rng.permutation(12)
        together = Calibrations().run(short[:1] + [snaps[i] for i in order] + short[1:])
        for pos, i in enumerate(order, start=1):
            a, b = alone[i], together[pos]
            assert (a.params, a.rmse, a.iterations) == (b.params, b.rmse, b.iterations)


def test_rounds_hold_each_smiles_snapshots_in_arrival_order():
    s = lambda key: dataclasses.replace(snapshots(1)[0][0], expiry=key)  # noqa: E731
    snaps = [s("a"), s("b"), s("a"), s("a"), s("c"), s("b")]
    assert rounds(snaps) == [[0, 1, 4], [2, 5], [3]]


def test_a_backlog_in_one_call_equals_snapshot_by_snapshot_and_warm_starts_per_epoch():
    base, _ = snapshots(3, noise=0.001)
    steps = [  # each smile re-quoted every 0.4 s, vols drifting, some with fewer strikes
        dataclasses.replace(
            b,
            window_end=b.window_end + 0.4 * k,
            epoch=k,
            strikes=b.strikes[: 7 if k % 3 == 1 else 15],  # another strike bucket
            vols=tuple(v * (1 + 0.002 * k) for v in b.vols)[: 7 if k % 3 == 1 else 15],
        )
        for k in range(8)
        for b in base
    ]
    one_by_one = Calibrations()
    expected = [one_by_one.run([s])[0] for s in steps]
    together = Calibrations().run(steps)
    assert [(p.params, p.warm, p.iterations) for p in together] == [
        (p.params, p.warm, p.iterations) for p in expected
    ]
    assert [p.warm for p in together] == [s.epoch > 0 for s in steps]  # warm from the second
    with pytest.raises(ValueError, match="epoch"):
        SurfaceConfig(epoch=0)


def test_betas_per_underlying():
    snaps, _ = snapshots(2)
    cal = Calibrations(betas={"EURUSD": 0.7})
    assert {p.params["beta"] for p in cal.run(snaps)} == {0.7}


def test_warm_state_round_trips_through_its_message():
    snaps, _ = snapshots(2)
    cal = Calibrations()
    cal.run(snaps)
    fresh = Calibrations()
    fresh.import_state({k: decode(encode(v), WarmState) for k, v in cal.state.items()})
    assert fresh.state == cal.state and all(v.warm for v in fresh.state.values())
    later = [dataclasses.replace(s, window_end=s.window_end + 1, epoch=1) for s in snaps]
    assert [p.params for p in fresh.run(later)] == [p.params for p in cal.run(later)]
    assert all(p.warm for p in fresh.run(later))


def index_snapshots(count=150, seed=4, indices=2):
    """Surface snapshots of simulated indices (Heston prices, drifting spot and v0)."""
    sim = TickSimulator(pairs=0, indices=indices, seed=seed)
    snaps = book_snapshots(list(sim.ticks(1.795e9, rate=20, count=count)))
    return [s for s in snaps if s.shape[0] == 4]


def book_snapshots(quotes):
    """What a book with the default triggers snapshots of ``quotes``, one partition."""
    book = SurfaceBook(SurfaceConfig())
    return book.ingest(QuoteColumns.from_quotes(quotes)) + book.flush()


def test_surface_prices_become_the_implied_vols_quantlib_reprices_to_the_quote():
    import QuantLib as ql

    from streams.book.calibrations import snapshot_surface

    snap = index_snapshots(count=60, indices=1)[-1]
    data = snapshot_surface(snap)
    assert data.weights.all() and data.target == "vols"
    for i in range(len(snap.strikes)):
        t, r, q = snap.times[i], snap.rates[i], snap.dividends[i]
        forward = snap.quote_spots[i] * np.exp((r - q) * t)
        price = ql.blackFormula(
            ql.Option.Call if snap.calls[i] else ql.Option.Put,
            snap.strikes[i],
            forward,
            data.values[i] * np.sqrt(t),
            np.exp(-r * t),
        )
        assert price == pytest.approx(snap.prices[i], rel=1e-9)


def test_index_surfaces_calibrate_with_heston_cold_then_warm_and_recover_the_model():
    from streams.feed.simulate import INDICES

    snaps = index_snapshots()
    cal = Calibrations()
    out = cal.run(snaps)
    assert [p.model for p in out] == ["heston"] * len(out) and len(out) >= 4
    assert all(p.converged and p.good for p in out)
    for name in ("SPX", "SX5E"):
        mine = [p for p in out if p.underlying == name]
        # good fits warm-start the next
        assert not mine[0].warm and mine[-1].warm and sum(p.warm for p in mine) >= len(mine) - 2
        truth = dict(zip(("kappa", "theta", "sigma", "rho"), INDICES[name][4:]))
        for k, v in truth.items():  # the simulator's fixed parameters, through noise and drift
            assert mine[-1].params[k] == pytest.approx(v, rel=0.05), (name, k)
    assert cal.state["SPX|surface"].warm == next(
        p.params for p in reversed(out) if p.underlying == "SPX"
    )


def test_a_surface_fit_does_not_depend_on_its_batch_companions():
    snaps = index_snapshots()
    spx = next(s for s in snaps if s.underlying == "SPX")
    alone = Calibrations().run([spx])[0]
    crowd = [spx] + [dataclasses.replace(s, underlying=f"X{i}") for i, s in enumerate(snaps[:4])]
    together = Calibrations().run(crowd)[0]
    assert alone.params == together.params and alone.diagnostics == together.diagnostics


def test_after_warm_up_a_growing_index_surface_compiles_nothing():
    from engine.heston import calibrator

    quotes = TickSimulator(pairs=0, indices=1, seed=4).ticks(1.795e9, rate=20, count=60)
    snaps = book_snapshots(list(quotes))
    assert snaps[0].shape[0] < snaps[-1].shape[0] == 4  # opening quotes arrive expiry by expiry
    cal = Calibrations()
    cal.warmup_heston()
    compiled = calibrator._fit._cache_size()
    assert all(p.model == "heston" for p in cal.run(snaps))
    assert calibrator._fit._cache_size() == compiled
