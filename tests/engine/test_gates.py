"""Each validation gate passes on a clean smile and fails on a case built to fail it."""

import numpy as np
import pytest

from bench.smiles import fx_smiles
from engine.blackscholes import black_price
from engine.sabr import SABRCalibrator, hagan_vol


def _one(strikes, vols, forward=1.0, expiry=1.0, cal=None, **kw):
    cal = cal or SABRCalibrator()
    return cal.calibrate_batch([forward], [expiry], [strikes], [vols], **kw).smile(0)


def _clean_smile():
    d = fx_smiles(1, seed=21)
    return d["strikes"][0], d["vols"][0], d["forward"][0], d["expiry"][0], d["params"]


def test_clean_smile_passes_every_applicable_gate():
    k, v, f, t, p = _clean_smile()
    prior = {n: p[n] * 1.05 for n in ("alpha", "rho", "nu")}
    res = _one(k, v, f, t, prior=prior)
    assert res.gate_verdicts() == {
        "converged": "pass",
        "rmse": "pass",
        "stability": "pass",
        "no_arbitrage": "pass",
        "identifiability": "pass",
        "feller": "n/a",
    }
    assert bool(res.gates_passed)


def test_stability_is_not_applicable_without_a_prior_and_feller_never_for_sabr():
    k, v, f, t, _ = _clean_smile()
    verdicts = _one(k, v, f, t).gate_verdicts()
    assert verdicts["stability"] == "n/a" and verdicts["feller"] == "n/a"


def test_rmse_gate_fails_on_a_noisy_smile():
    k, v, f, t, _ = _clean_smile()
    noisy = v * (1 + 0.15 * np.where(np.arange(v.size) % 2, 1, -1))
    res = _one(k, noisy, f, t)
    assert bool(res.converged)
    assert res.gate_verdicts()["rmse"] == "fail"
    assert (
        float(res.gates["rmse"].value) == pytest.approx(float(res.rmse)) and float(res.rmse) > 0.005
    )


def test_stability_gate_fails_on_a_big_drift():
    k, v, f, t, p = _clean_smile()
    prior = {"alpha": p["alpha"] * 1.4, "rho": p["rho"], "nu": p["nu"]}
    res = _one(k, v, f, t, prior=prior)
    assert res.gate_verdicts()["stability"] == "fail"
    assert float(res.gates["stability"].value) == pytest.approx(0.4 / 1.4, rel=1e-5)


def test_arbitrage_gate_fails_where_hagan_density_goes_negative():
    forward, expiry = 1.0, 10.0
    strikes = np.exp(np.linspace(-2.5, 1.5, 15))
    vols = np.asarray(hagan_vol(strikes, forward, expiry, 0.15, 0.5, -0.6, 1.2))
    res = _one(strikes, vols, forward, expiry)
    assert bool(res.converged) and res.gate_verdicts()["no_arbitrage"] == "fail"
    # independent check: a finite-difference butterfly at the reported strike is negative
    k, h = float(res.diagnostics["arbitrage_strike"]), 1e-3
    fly = [
        float(black_price(forward, x, expiry, hagan_vol(x, forward, expiry, 0.15, 0.5, -0.6, 1.2)))
        for x in (k - h, k, k + h)
    ]
    assert fly[0] - 2 * fly[1] + fly[2] < 0


def test_identifiability_gate_fails_when_strikes_cannot_separate_parameters():
    strikes = np.linspace(0.999, 1.001, 5)  # +-10 bp of moneyness: curvature is invisible
    vols = np.asarray(hagan_vol(strikes, 1.0, 1.0, 0.1, 0.5, -0.3, 0.5))
    res = _one(strikes, vols)
    assert res.gate_verdicts()["identifiability"] == "fail"
    assert float(res.diagnostics["condition_number"]) > 5000


def test_condition_number_equals_numpy_svd_of_scaled_jacobian():
    k, v, f, t, _ = _clean_smile()
    res = _one(k, v, f, t)
    a, r, n = (float(res.params[x]) for x in ("alpha", "rho", "nu"))
    h = 1e-7
    cols = []
    for i, scale in ((0, a), (1, 1.0), (2, n)):
        up, dn = [a, r, n], [a, r, n]
        up[i] += h
        dn[i] -= h
        fd = (
            np.asarray(hagan_vol(k, f, t, up[0], 0.5, up[1], up[2]))
            - np.asarray(hagan_vol(k, f, t, dn[0], 0.5, dn[1], dn[2]))
        ) / (2 * h)
        cols.append(fd * scale)
    s = np.linalg.svd(np.stack(cols, axis=1), compute_uv=False)
    assert float(res.diagnostics["condition_number"]) == pytest.approx(s[0] / s[-1], rel=1e-5)


def test_a_gate_says_the_threshold_it_was_decided_on():
    from engine.sabr import SABRThresholds

    k, v, f, t, p = _clean_smile()
    strict = SABRThresholds(rmse=1e-12, stability=0.05, condition=30.0)
    res = _one(k, v, f, t, cal=SABRCalibrator(thresholds=strict), prior=p)
    assert res.gates["rmse"].description == "RMSE of vols below 1e-08 bp"
    assert res.gates["rmse"].threshold == 1e-12
    assert "below 5%" in res.gates["stability"].description
    assert "below 30" in res.gates["identifiability"].description
    default = _one(k, v, f, t)
    assert default.gates["rmse"].description == "RMSE of vols below 50 bp"
