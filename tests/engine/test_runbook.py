"""The failure runbook, automated: each step on a case built to need it."""

import numpy as np
import pytest

from engine.heston import HestonCalibrator
from engine.optimize import levenberg_marquardt
from engine.runbook import RUNBOOK_STEPS, run_failure_runbook
from engine.sabr import SABRCalibrator
from engine.sabr.hagan import hagan_vol
from tests.engine.test_heston_calibrator import surface

STRIKES = np.array([0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15])
SMILE = {"forward": 1.0, "maturities": 1.0, "strikes": STRIKES,
         "target_vols": np.asarray(hagan_vol(STRIKES, 1.0, 1.0, 0.1, 0.5, -0.3, 0.6))}  # fmt: skip


# five strikes within 0.5% of the forward, 1 bp of noise: rho and nu cannot both be told apart
_NARROW_K = np.array([0.995, 0.998, 1.0, 1.002, 1.005])
NARROW = {"forward": 1.0, "maturities": 1.0, "strikes": _NARROW_K,
          "target_vols": np.asarray(hagan_vol(_NARROW_K, 1.0, 1.0, 0.1, 0.5, -0.3, 0.6))
          + 1e-4 * np.array([1, -1, 0, 1, -1])}  # fmt: skip


def test_a_good_fit_needs_no_runbook():
    outcome = run_failure_runbook(SABRCalibrator(), SMILE)
    assert outcome.step == "initial" and len(outcome.attempts) == 1 and not outcome.escalate


def test_far_starts_are_fixed_by_adjusted_starts():
    # test_heston_calibrator's multi-start case: Feller holds, so the truth passes every gate
    truth = {"v0": 0.0438, "kappa": 9.5347, "theta": 0.0316, "sigma": 0.6082, "rho": -0.7704}
    data = surface(truth)  # exact prices: the optimum is the truth
    outcome = run_failure_runbook(HestonCalibrator(v0_starts=(2.0,)), data)
    assert outcome.attempts[0].good is False  # from v0 = 2 the fit ends at the bounds
    assert outcome.step == "adjusted_starts" and outcome.step_index == 1
    assert float(outcome.result.params["kappa"]) == pytest.approx(truth["kappa"], rel=1e-4)


def test_too_few_steps_are_fixed_by_more_steps():
    outcome = run_failure_runbook(SABRCalibrator(max_steps=2), SMILE)
    assert outcome.step == "more_steps"
    assert [a.step for a in outcome.attempts[:4]] == ["initial"] + ["adjusted_starts"] * 3
    assert float(outcome.result.params["rho"]) == pytest.approx(-0.3, abs=1e-6)


def _one_step(fn, x0, args, *, max_steps, tol, record_history):
    """A configured solver that never gets anywhere: one LM step, whatever it is told."""
    return levenberg_marquardt(fn, x0, args, max_steps=1, tol=tol, record_history=record_history)


def test_a_failing_solver_is_replaced_by_the_alternative_optimizer():
    outcome = run_failure_runbook(SABRCalibrator(optimizer=_one_step), SMILE)
    assert outcome.step == "alternative_optimizer"
    assert outcome.attempts[-1].detail.startswith("lbfgs")
    assert "more_steps" in [a.step for a in outcome.attempts]  # tried first, still one step
    assert float(outcome.result.params["nu"]) == pytest.approx(0.6, rel=1e-3)


def test_an_unidentifiable_smile_is_fitted_by_a_simpler_model():
    data = NARROW
    first = SABRCalibrator().calibrate(data)
    assert first.gate_verdicts()["identifiability"] == "fail"
    outcome = run_failure_runbook(SABRCalibrator(), data, first)
    assert outcome.step == "simpler_model" and outcome.step_index == len(RUNBOOK_STEPS) - 1
    assert outcome.attempts[-1].detail.startswith("nu held")
    assert outcome.result.gate_verdicts()["identifiability"] == "pass"
    assert "fixed by simpler_model" in outcome.summary()
