"""Calibrators are varied by copying: replace() and with_spec() give a new calibrator, the
original and its specs untouched, and the copy fits as one built with those options does."""

import numpy as np
import pytest

from engine.heston import HestonCalibrator
from engine.optimize import resolve_solver
from engine.sabr import SABRCalibrator


def test_replace_changes_the_options_and_nothing_of_the_original():
    cal = SABRCalibrator(0.7, max_steps=300)
    cal.parameter_specs["nu"].init = 0.8  # the seed's door: set on its own calibrator
    more = cal.replace(max_steps=900, optimizer="lbfgs")
    assert (more.max_steps, cal.max_steps) == (900, 300)
    assert more.solver is resolve_solver("lbfgs") and cal.solver is resolve_solver("lm")
    assert more.parameter_specs["beta"].init == 0.7  # positional options carry over too
    assert more.parameter_specs["nu"].init == 0.8  # a start set since is kept ...
    assert more.parameter_specs["nu"] is not cal.parameter_specs["nu"]  # ... as a copy
    assert cal.options["max_steps"] == 300 and more.options["optimizer"] == "lbfgs"
    with pytest.raises(TypeError, match="no option \\['max_step'\\]"):
        cal.replace(max_step=1)


def test_a_changed_option_that_sets_a_spec_wins_over_the_old_default():
    free = SABRCalibrator(None).replace(beta=0.3)
    assert free.parameter_specs["beta"].fixed and free.parameter_specs["beta"].init == 0.3
    assert free.free_params == ("alpha", "rho", "nu")


def test_with_spec_holds_a_parameter_on_a_copy_and_fits_as_a_held_calibrator():
    cal = HestonCalibrator()
    held = cal.with_spec("kappa", init=1.5, fixed=True)
    assert not cal.parameter_specs["kappa"].fixed and held.parameter_specs["kappa"].fixed
    assert "kappa" not in held.free_params
    built = HestonCalibrator()
    built.parameter_specs["kappa"].init, built.parameter_specs["kappa"].fixed = 1.5, True
    from tests.engine.test_heston_calibrator import surface

    data = surface(noise=0.002, seed=4)
    a, b = held.calibrate(data), built.calibrate(data)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    with pytest.raises(ValueError, match="no parameter 'kapa'"):
        cal.with_spec("kapa", init=1.0)
