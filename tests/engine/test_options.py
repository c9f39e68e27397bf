"""Calibrators are varied by copying: replace() and with_spec() give a new calibrator, the
original and its specs untouched, and the copy fits as one built with those options does."""

import numpy as np
import pytest

from engine.heston import HestonCalibrator, HestonPricing
from engine.optimize import resolve_solver
from engine.options import Batching, Solving
from engine.sabr import SABRCalibrator


def test_replace_changes_the_options_and_nothing_of_the_original():
    cal = SABRCalibrator(0.7, max_steps=300)
    cal.parameter_specs["nu"].init = 0.8  # the seed's door: set on its own calibrator
    more = cal.replace(max_steps=900, optimizer="lbfgs")
    assert (more.solving.max_steps, cal.solving.max_steps) == (900, 300)
    assert more.solving.solver is resolve_solver("lbfgs")
    assert cal.solving.solver is resolve_solver("lm")
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


def test_options_come_in_frozen_groups_varied_by_field_or_by_group():
    cal = HestonCalibrator(max_steps=50, nodes=96, max_batch=16)
    assert cal.solving == Solving("lm", 50, 1e-8) and cal.pricing.nodes == 96
    assert cal.batching == Batching(1, 16, 2) and cal.batching.rows(5) == 8
    with pytest.raises(AttributeError):
        cal.solving.max_steps = 7  # type: ignore[misc]  # frozen: vary by replace
    by_group = cal.replace(solving=Solving("lbfgs", 400), pricing=HestonPricing(nodes=64))
    by_field = cal.replace(optimizer="lbfgs", max_steps=400, nodes=64)
    for other in (by_group, by_field):
        assert other.solving == Solving("lbfgs", 400, 1e-8) and other.pricing.nodes == 64
        assert other.batching == cal.batching and cal.solving.max_steps == 50
    for bad, why in ((dict(max_steps=0), "max_steps must be >= 1"),
                     (dict(optimizer="newton"), "optimizer must be"),
                     (dict(residual="logs"), "residual")):  # fmt: skip
        with pytest.raises(ValueError, match=why):
            HestonCalibrator(**bad)
