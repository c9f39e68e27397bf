"""The calibration core: coordinates, starts given by name, the honest status of a stop, and
one name for each diagnostic across models."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from engine.core import given, settle
from engine.heston import HestonCalibrator, heston_price
from engine.optimize import Status
from engine.parameters import Free, ParameterSpec, Slots, to_constrained
from engine.sabr import SABRCalibrator

SPECS = {
    "level": ParameterSpec(0.2, 0.0),  # one-sided: never on a bound
    "rho": ParameterSpec(0.0, -1.0, 1.0, scale="absolute"),
    "held": ParameterSpec(3.0, fixed=True),
    "shift": ParameterSpec(0.0, scale="absolute"),
}
NAMES = tuple(SPECS)


def test_free_and_slots_of_one_row_are_the_same_map():
    free = Free.of(SPECS, NAMES)
    slots = Slots.of(SPECS, NAMES, lambda name: [(0,)])
    assert free.index == (0, 1, 3) and free.relative == (True, False, False)
    assert slots.bounds == free.bounds and slots.relative == free.relative
    x = jnp.array([-1.3, 0.7, 2.5])
    held = jnp.array([0.0, 0.0, 3.0, 0.0])
    p = free.fill(x, held)
    np.testing.assert_allclose(slots.fill(x, held[None])[0], p, rtol=0, atol=0)
    np.testing.assert_allclose(p, [math.exp(-1.3), float(to_constrained(0.7, -1, 1)), 3.0, 2.5])
    np.testing.assert_allclose(free.values(p), x, rtol=1e-12)
    np.testing.assert_allclose(slots.values(p[None]), x, rtol=1e-12)
    np.testing.assert_allclose(free.scales(p), [p[0], 1.0, 1.0])  # relative, absolute, absolute
    np.testing.assert_allclose(free.place(jnp.array([1.0, 0.5, -2.0]), held), [1, 0.5, 3, -2])


def test_a_stop_on_a_bound_or_not_finite_is_no_solution():
    free = Free.of(SPECS, NAMES)
    held = jnp.array([0.0, 0.0, 3.0, 0.0])
    converged = jnp.int32(Status.CONVERGED)
    inside = free.fill(jnp.array([0.1, 0.3, 1.0]), held)
    assert int(settle(free, inside, converged)) == Status.CONVERGED
    rho_at_one = free.fill(jnp.array([0.1, 40.0, 1.0]), held)
    assert int(settle(free, rho_at_one, converged)) == Status.AT_BOUND
    not_finite = free.fill(jnp.array([0.1, 0.3, jnp.nan]), held)
    assert int(settle(free, not_finite, converged)) == Status.NONFINITE
    # the model's own figure
    assert int(settle(free, inside, converged, finite=False)) == Status.NONFINITE
    assert int(settle(free, inside, jnp.int32(Status.MAX_STEPS))) == Status.MAX_STEPS
    assert float(inside[2]) == 3.0  # the held parameter kept


def test_starts_given_by_name_are_checked_against_the_bounds():
    out = given({"rho": [0.5, np.nan], "level": 0.1}, NAMES, SPECS, 2)
    np.testing.assert_array_equal(out[:, 0], [0.1, 0.1])
    np.testing.assert_array_equal(out[:, 1], [0.5, np.nan])
    assert np.isnan(out[:, 2:]).all()
    with pytest.raises(ValueError, match=r"rho values \[1.5\] outside \[-1.0, 1.0\]"):
        given({"rho": [0.5, 1.5]}, NAMES, SPECS, 2)
    with pytest.raises(ValueError, match=r"unknown parameters \['vol'\]"):
        given({"vol": 0.2}, NAMES, SPECS, 2)


def test_every_model_names_its_option_count_and_standard_errors_alike():
    """SABR and Heston results carry ``n_options`` (options fitted) and ``std_error_{name}``
    for every parameter (NaN where held), equal to the identifiability the calibrator reports
    at the fitted parameters."""
    strikes = np.array([0.9, 0.95, 1.0, 1.05, 1.1, 1.15])
    vols = np.array([0.112, 0.104, 0.1, 0.101, 0.105, 0.11])
    data = {"forward": 1.0, "maturities": 0.5, "strikes": strikes, "target_vols": vols}
    sabr = SABRCalibrator(beta=0.5)
    fit = sabr.calibrate(data)
    assert int(fit.diagnostics["n_options"]) == strikes.size
    assert math.isnan(fit.diagnostics["std_error_beta"])  # held
    at = sabr.identifiability(fit.params, data)
    std = [float(fit.diagnostics[f"std_error_{n}"]) for n in ("alpha", "rho", "nu")]
    np.testing.assert_allclose(std, at.std_errors, rtol=1e-5)

    k, t = np.tile([80.0, 90, 100, 110, 120], 3), np.repeat([0.25, 0.5, 1.0], 5)
    prices = heston_price(100.0, k, t, 0.02, 0.0, 0.05, 2.0, 0.06, 0.6, -0.7)
    surface = {"spot": 100.0, "strikes": k, "maturities": t, "rate": 0.02, "dividend": 0.0}
    heston = HestonCalibrator().with_spec("kappa", init=2.0, fixed=True)
    noisy = surface | {"target_prices": np.asarray(prices) * (1 + 1e-4 * np.sin(k))}
    fit = heston.calibrate(noisy)
    assert int(fit.diagnostics["n_options"]) == k.size
    assert math.isnan(fit.diagnostics["std_error_kappa"])
    at = heston.identifiability(fit.params, noisy)
    std = [float(fit.diagnostics[f"std_error_{n}"]) for n in ("v0", "theta", "sigma", "rho")]
    np.testing.assert_allclose(std, at.std_errors, rtol=1e-3)  # nodes fitted to start and end
