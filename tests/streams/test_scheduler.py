"""The micro-batching scheduler: engine-equal results, warm epochs, determinism, flags."""

import dataclasses

import numpy as np
import pytest

from bench.smiles import fx_smiles
from engine.sabr import SABRCalibrator
from streams.scheduler import Calibrations, epochs
from streams.surface import SmileSnapshot


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
    assert all(not p.warm for p in cal.run(snaps))  # same warm epoch: same (cold) start
    later = [dataclasses.replace(s, window_end=s.window_end + 1) for s in snaps]
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


def test_epochs_split_each_smiles_snapshots_by_warm_epoch_in_arrival_order():
    s = lambda key, t: dataclasses.replace(snapshots(1)[0][0], expiry=key, window_end=t)  # noqa: E731
    snaps = [s("a", 0.1), s("b", 0.5), s("a", 0.7), s("a", 1.2), s("b", 3.0), s("a", 1.9)]
    assert epochs(snaps, 1.0) == [[0, 1, 2], [3, 4, 5]]
    assert epochs(snaps, 0.5) == [[0, 1], [2, 4], [3], [5]]


def test_a_backlog_in_one_call_equals_snapshot_by_snapshot_and_warm_starts_per_epoch():
    base, _ = snapshots(3, noise=0.001)
    steps = [  # each smile re-quoted every 0.4 s, vols drifting, some with fewer strikes
        dataclasses.replace(
            b,
            window_end=b.window_end + 0.4 * k,
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
    epoch = [int(np.floor(s.window_end)) for s in steps]
    assert [p.warm for p in together] == [e > epoch[0] for e in epoch]
    with pytest.raises(ValueError, match="warm_epoch"):
        Calibrations(warm_epoch=0)


def test_betas_per_underlying():
    snaps, _ = snapshots(2)
    cal = Calibrations(betas={"EURUSD": 0.7})
    assert {p.params["beta"] for p in cal.run(snaps)} == {0.7}


def test_state_export_round_trip():
    snaps, _ = snapshots(2)
    cal = Calibrations()
    cal.run(snaps)
    fresh = Calibrations()
    fresh.import_state(cal.export_state())
    assert fresh.state == cal.state
    later = [dataclasses.replace(s, window_end=s.window_end + 1) for s in snaps]
    assert [p.params for p in fresh.run(later)] == [p.params for p in cal.run(later)]
    assert all(p.warm for p in fresh.run(later))
