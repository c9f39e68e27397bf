"""Recovery sweeps: hundreds of random parameter sets over realistic ranges, exact quotes on
realistic grids, fitted in batches from the default starts and from user starts.

Where the identifiability gate passes at the truth, the fit must recover it (1e-4 relative for
scale parameters, 1e-4 absolute for rho and beta, whose scale is absolute); wherever a fit
misses, it must be flagged (``result.good`` False), never published as good.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.blackscholes import forward_price
from engine.diagnostics import compute_identifiability_metrics
from engine.heston import PARAM_NAMES, HestonCalibrator, heston_price
from engine.sabr import SABRCalibrator, hagan_vol

HESTON_SETS = 256  # two batches of 128: no padding
HESTON_EXPIRIES = np.array([7 / 365, 1 / 12, 0.25, 1.0, 2.0, 5.0])  # 1 week to 5 years
Z = np.linspace(-3, 3, 7)  # +-3 standard deviations


def _draw_heston(rng, n):
    return {
        "v0": rng.uniform(0.005, 0.25, n),
        "kappa": np.exp(rng.uniform(np.log(0.2), np.log(8.0), n)),
        "theta": rng.uniform(0.01, 0.25, n),
        "sigma": rng.uniform(0.1, 1.5, n),
        "rho": rng.uniform(-0.95, 0.3, n),
    }


def _heston_surface(p, rng, kind):
    """Exact prices of calls (kind 0), puts (1) or a random mix (2) of the options whose time
    value a market would quote; priced at QuantLib-grade precision (512 nodes) and fitted on
    the calibrator's own nodes."""
    rate, dividend = rng.uniform(0.0, 0.05), rng.uniform(0.0, 0.03)
    t = np.repeat(HESTON_EXPIRIES, Z.size)
    kt = p[1] * t
    variance = p[2] + (p[0] - p[2]) * -np.expm1(-kt) / kt
    k = np.asarray(forward_price(100.0, rate, dividend, t)) * np.exp(
        np.tile(Z, HESTON_EXPIRIES.size) * np.sqrt(variance * t)
    )
    forward = np.asarray(forward_price(100.0, rate, dividend, t))
    # calls and puts of every option at once: one shape for every set, so one compiled pricer
    call, put = (
        np.asarray(heston_price(100.0, k, t, rate, dividend, *p, c)) for c in (True, False)
    )
    quoted = np.where(k >= forward, call, put) >= 1e-3  # a tenth of a cent's time value on 100
    k, t = k[quoted], t[quoted]
    calls = [np.ones(t.size, bool), np.zeros(t.size, bool), rng.random(t.size) < 0.5][kind]
    prices = np.where(calls, call[quoted], put[quoted])
    return {"spot": 100.0, "strikes": k, "maturities": t, "rate": rate, "dividend": dividend,
            "target_prices": prices, "call": calls}  # fmt: skip


def _missed(fitted: dict, truth: dict, absolute=("rho", "beta")) -> np.ndarray:
    miss = np.zeros(len(truth[next(iter(truth))]), bool)
    for name, value in truth.items():
        gap = np.abs(np.asarray(fitted[name]) - value)
        miss |= gap > (1e-4 if name in absolute else 1e-4 * np.abs(value))
    return miss


@pytest.fixture(scope="module")
def heston_sweep():
    rng = np.random.default_rng(2026)
    truth = _draw_heston(rng, HESTON_SETS)
    params = np.stack([truth[n] for n in PARAM_NAMES], -1)
    surfaces = [_heston_surface(p, rng, i % 3) for i, p in enumerate(params)]
    cal = HestonCalibrator(min_batch=64)  # every program of the sweep in one batch shape
    condition = np.array([
        float(compute_identifiability_metrics(cal, dict(zip(PARAM_NAMES, p)), s).condition_number)
        for p, s in zip(params, surfaces)
    ])  # fmt: skip
    cold, user = np.arange(0, HESTON_SETS, 2), np.arange(1, HESTON_SETS, 2)
    starts = _draw_heston(rng, user.size)  # a user's own (poor) guesses
    results = {
        "default starts": (cold, cal.calibrate_batch([surfaces[i] for i in cold])),
        "user starts": (user, cal.calibrate_batch([surfaces[i] for i in user], init=starts)),
    }
    return truth, condition, results


@pytest.mark.parametrize("start", ["default starts", "user starts"])
def test_heston_recovers_every_identifiable_truth_and_flags_every_miss(heston_sweep, start):
    truth, condition, results = heston_sweep
    rows, result = results[start]
    identifiable = condition[rows] < HestonCalibrator().thresholds.condition
    assert identifiable.mean() > 0.8  # the sweep tests recovery, not only flagging
    missed = _missed(result.params, {n: v[rows] for n, v in truth.items()})
    assert not np.any(missed & identifiable), rows[missed & identifiable]
    assert not np.any(missed & result.good), rows[missed & result.good]


SABR_SETS = 400


@pytest.mark.parametrize("beta_free", [False, True])
def test_sabr_recovers_every_identifiable_truth_and_flags_every_miss(beta_free):
    rng = np.random.default_rng(7 + beta_free)
    n = SABR_SETS
    t = np.exp(rng.uniform(np.log(7 / 365), np.log(5.0), n))
    forward = np.exp(rng.uniform(np.log(0.5), np.log(150.0), n))
    beta = rng.uniform(0.0, 1.0, n) if beta_free else np.full(n, 0.5)
    atm = rng.uniform(0.05, 0.4, n)
    truth = {
        "alpha": atm * forward ** (1 - beta),
        "rho": rng.uniform(-0.9, 0.9, n),
        "nu": rng.uniform(0.1, 2.0, n) / np.maximum(t, 0.25) ** 0.25,
    }
    if beta_free:
        truth["beta"] = beta
    strikes = forward[:, None] * np.exp(
        np.linspace(-3, 3, 11)[None] * atm[:, None] * np.sqrt(t)[:, None]
    )
    vols = np.asarray(hagan_vol(strikes, forward[:, None], t[:, None], truth["alpha"][:, None],
                                beta[:, None], truth["rho"][:, None], truth["nu"][:, None]))  # fmt: skip
    cal = SABRCalibrator(beta=None if beta_free else 0.5)
    full = {"beta": beta} | truth
    condition = np.array([
        float(compute_identifiability_metrics(
            cal, {k: v[i] for k, v in full.items()},
            {"forward": forward[i], "strikes": strikes[i], "maturities": t[i], "target_vols": vols[i]},
        ).condition_number)
        for i in range(n)
    ])  # fmt: skip
    identifiable = condition < cal.thresholds.condition
    user = {k: v * rng.uniform(0.5, 1.5, n) if k != "rho" else rng.uniform(-0.9, 0.9, n)
            for k, v in truth.items()}  # fmt: skip
    if beta_free:
        user["beta"] = np.clip(user["beta"], 0.0, 1.0)
    for init in (None, user):
        result = cal.calibrate_batch(forward, t, strikes, vols, init=init)
        missed = _missed(result.params, truth)
        assert identifiable.mean() > (0.3 if beta_free else 0.9)
        assert not np.any(missed & identifiable), np.flatnonzero(missed & identifiable)[:10]
        assert not np.any(missed & result.good), np.flatnonzero(missed & result.good)[:10]
