"""Model comparison and selection: information criteria on one measure, out of sample,
the recommendation."""

from dataclasses import replace

import numpy as np
import pytest

from engine.blackscholes import implied_vol
from engine.crossval import CrossValidation
from engine.heston import HestonCalibrator, heston_price
from engine.sabr import SABRCalibrator
from engine.sabr.hagan import hagan_vol
from engine.selection import (
    OutOfSample,
    compare_models,
    evaluate_out_of_sample,
    generate_model_recommendation,
)

T = np.repeat([0.25, 0.5, 1.0, 2.0], 9)
K = 100.0 * np.exp(np.tile(np.linspace(-0.3, 0.3, 9), 4) * np.sqrt(T))
F = 100.0 * np.exp(0.02 * T)


def heston_surface(v0=0.04, noise=5e-4, seed=1):
    calls = K >= F
    price = np.asarray(heston_price(100.0, K, T, 0.02, 0.0, v0, 2.0, 0.05, 0.5, -0.7, calls))
    vols = np.asarray(implied_vol(price * np.exp(0.02 * T), F, K, T, calls))
    vols = vols + noise * np.random.default_rng(seed).standard_normal(T.size)
    return {"spot": 100.0, "strikes": K, "maturities": T, "rate": 0.02, "target_vols": vols}


def sabr_surface():
    """Each expiry its own smile, one Heston cannot tie together (rho flips sign)."""
    rows = [
        (0.3, 0.5, 0.6, 1.2),
        (0.3, 0.5, -0.6, 0.4),
        (0.3, 0.5, 0.5, 0.9),
        (0.3, 0.5, -0.5, 0.3),
    ]
    vols = np.concatenate(
        [hagan_vol(K[t == T], F[t == T][0], t, *rows[i]) for i, t in enumerate(np.unique(T))]
    )
    return {"spot": 100.0, "strikes": K, "maturities": T, "rate": 0.02, "target_vols": vols}


def test_scores_are_the_gaussian_likelihood_of_implied_vol_errors():
    data = heston_surface()
    sabr, heston = SABRCalibrator().calibrate(data), HestonCalibrator().calibrate(data)
    comparison = compare_models([("SABR", sabr, data), ("Heston", heston, data)])
    # independently: Heston's vols at its fitted parameters, priced and inverted here
    p = [float(heston.params[n]) for n in ("v0", "kappa", "theta", "sigma", "rho")]
    calls = K >= F
    price = np.asarray(heston_price(100.0, K, T, 0.02, 0.0, *p, calls)) * np.exp(0.02 * T)
    sse = float(np.sum((np.asarray(implied_vol(price, F, K, T, calls)) - data["target_vols"]) ** 2))
    score = comparison.score("Heston")
    assert score.sse == pytest.approx(sse, rel=1e-9) and (score.n_options, score.n_free) == (36, 5)
    n = 36
    ll = -n / 2 * (np.log(2 * np.pi * sse / n) + 1)
    assert score.log_likelihood == pytest.approx(ll, rel=1e-9)
    assert score.aic == pytest.approx(2 * 6 - 2 * ll) and score.bic == pytest.approx(
        6 * np.log(n) - 2 * ll
    )
    assert comparison.score("SABR").n_free == 12  # alpha, rho, nu on each of 4 expiries
    # Heston generated the data: its 5 parameters beat SABR's 12 on both criteria
    assert comparison.best_by_aic == comparison.best_by_bic == "Heston"

    independent = sabr_surface()
    fits = [(n, c.calibrate(independent), independent) for n, c in
            (("SABR", SABRCalibrator()), ("Heston", HestonCalibrator()))]  # fmt: skip
    assert compare_models(fits).best_by_bic == "SABR"  # smiles Heston cannot tie together

    with pytest.raises(ValueError, match="different options"):
        short = {k: (v[:27] if np.ndim(v) else v) for k, v in data.items()}
        compare_models([("SABR", sabr, data), ("SABR9", SABRCalibrator().calibrate(short), short)])


def test_out_of_sample_errors_grow_on_other_dates():
    data = heston_surface()
    cal = HestonCalibrator()
    fit = cal.calibrate(data)
    same = evaluate_out_of_sample(cal, fit, [data], data)
    assert same.degradation == pytest.approx(1.0)
    moved = evaluate_out_of_sample(cal, fit, [heston_surface(v0=0.05, seed=2)], data)
    assert moved.degradation > 3 and moved.rmse.shape == (1,)
    with pytest.raises(ValueError, match="at least one"):
        evaluate_out_of_sample(cal, fit, [], data)


def test_the_recommendation_weighs_every_criterion_it_has_figures_for():
    data = heston_surface()
    sabr, heston = SABRCalibrator().calibrate(data), HestonCalibrator().calibrate(data)
    comparison = compare_models([("SABR", sabr, data), ("Heston", heston, data)])
    cv = {"SABR": CrossValidation(0.004, 0.002, np.zeros(5)),
          "Heston": CrossValidation(0.002, 0.0004, np.zeros(5))}  # fmt: skip
    oos = {"SABR": OutOfSample(np.array([0.004]), 0.002),
           "Heston": OutOfSample(np.array([0.003]), 0.002)}  # fmt: skip
    rec = generate_model_recommendation(comparison, cv, oos, seconds={"SABR": 0.01, "Heston": 0.5})
    assert rec.model == "Heston"
    assert rec.ranks["speed"] == {"SABR": 1, "Heston": 2}
    assert rec.ranks["stability"] == {"SABR": 2, "Heston": 1}
    assert any(r.startswith("identifiability: not weighed") for r in rec.reasons)
    # a model that did not converge is last on speed and convergence, however fast
    failed = replace(
        comparison, scores=(comparison.scores[0], comparison.scores[1]._replace(converged=False))
    )
    slow = generate_model_recommendation(failed, cv, oos, seconds={"SABR": 1.0, "Heston": 0.1})
    assert slow.ranks["speed"]["Heston"] == 2
    assert "recommended: " in rec.summary()
