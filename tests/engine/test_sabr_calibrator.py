"""SABRCalibrator: recovery, QuantLib's optimum, warm starts, solvers, sensitivities, errors."""

import numpy as np
import pytest

from bench.quantlib_peer import quantlib_sabr_fit
from bench.smiles import fx_smiles
from engine.optimize import Status, optimistix_lm
from engine.sabr import SABRCalibrator, atm_weights, hagan_vol
from engine.sabr import calibrator as sabr_calibrator

FREE = ("alpha", "rho", "nu")


@pytest.fixture(scope="module")
def clean():
    return fx_smiles(48, seed=5)


@pytest.fixture(scope="module")
def noisy():
    return fx_smiles(24, seed=9, noise=0.002)


def _fit(cal, d, **kw):
    return cal.calibrate_batch(d["forward"], d["expiry"], d["strikes"], d["vols"], **kw)


def test_recovers_known_parameters_from_far_starts_batched(clean):
    p = clean["params"]
    far = {"alpha": 2.5 * p["alpha"], "rho": np.where(p["rho"] < 0, 0.6, -0.6), "nu": 3.0 * p["nu"]}
    res = _fit(SABRCalibrator(beta=0.5), clean, init=far)
    assert res.converged.all()
    for name in FREE:
        np.testing.assert_allclose(res.params[name], p[name], rtol=0, atol=1e-6)
    assert (res.rmse < 1e-9).all()


def _quantlib_fit(f, t, strikes, vols, beta):
    params, fitted = quantlib_sabr_fit(f, t, strikes, vols, beta=beta, max_steps=2000, tol=1e-12)
    return np.sum((fitted - vols) ** 2), params


def test_quantlib_sabr_interpolation_finds_the_same_optimum_or_worse(noisy):
    res = _fit(SABRCalibrator(beta=0.5, tol=1e-12), noisy)
    assert res.converged.all()
    ours = np.nansum(res.residuals**2, axis=1)
    for i in range(len(noisy["forward"])):
        sse, params = _quantlib_fit(
            noisy["forward"][i], noisy["expiry"][i], noisy["strikes"][i], noisy["vols"][i], 0.5
        )
        assert ours[i] <= sse * (1 + 1e-9) + 1e-16, f"smile {i}: {ours[i]} vs QuantLib {sse}"
        if sse <= ours[i] * (1 + 1e-6):  # QuantLib reached the optimum too: same parameters
            np.testing.assert_allclose([res.params[n][i] for n in FREE], params, rtol=1e-4)


def test_warm_start_takes_fewer_steps_to_the_same_optimum(clean):
    rng = np.random.default_rng(2)
    cal = SABRCalibrator(tol=1e-10)
    base = _fit(cal, clean)
    moved = dict(clean)
    bumped = {n: clean["params"][n] * (1 + 0.01 * rng.standard_normal(48)) for n in FREE}
    moved["vols"] = np.asarray(
        hagan_vol(
            clean["strikes"],
            clean["forward"][:, None],
            clean["expiry"][:, None],
            bumped["alpha"][:, None],
            0.5,
            bumped["rho"][:, None],
            bumped["nu"][:, None],
        )
    )
    cold = _fit(cal, moved)
    warm = _fit(cal, moved, init={n: base.params[n] for n in FREE})
    assert warm.converged.all() and cold.converged.all()
    assert warm.warm.all() and not cold.warm.any()
    assert (
        warm.iterations.mean() < cold.iterations.mean()
    )  # cold starts from the smile's own skew and curvature
    assert np.median(warm.iterations) <= np.median(cold.iterations)
    for n in FREE:
        np.testing.assert_allclose(warm.params[n], cold.params[n], atol=1e-8)


def test_nan_in_init_means_cold_start_for_that_smile(clean):
    cal = SABRCalibrator()
    base = _fit(cal, clean)
    init = {n: np.where(np.arange(48) % 2 == 0, base.params[n], np.nan) for n in FREE}
    res = _fit(cal, clean, init=init)
    assert res.warm.tolist() == [i % 2 == 0 for i in range(48)]
    assert res.converged.all()


@pytest.mark.parametrize("solver", ["optimistix", "lbfgs"])
def test_other_solvers_reach_the_lm_optimum(noisy, solver):
    lm = _fit(SABRCalibrator(tol=1e-12), noisy)
    # optimistix's own step/function test needs a looser tol to certify the same optimum
    tol = 1e-6 if solver == "optimistix" else 1e-8
    other = _fit(SABRCalibrator(tol=tol, optimizer=solver, max_steps=3000), noisy)
    assert other.converged.all(), other.status_message
    assert (lm.loss <= other.loss * (1 + 1e-10)).all()  # ours is at least as good
    atol = 1e-5 if solver == "optimistix" else 1e-4
    for n in FREE:
        np.testing.assert_allclose(other.params[n], lm.params[n], atol=atol)


def test_adam_reports_its_status_honestly(noisy):
    res = _fit(SABRCalibrator(optimizer="adam", max_steps=50), noisy)
    assert not res.converged.any()
    assert (res.status == Status.MAX_STEPS).all()
    assert (res.iterations == 50).all()


def test_unconverged_is_never_marked_converged(noisy):
    p = noisy["params"]  # far starts: two steps cannot get there
    far = {"alpha": 2.5 * p["alpha"], "rho": np.where(p["rho"] < 0, 0.6, -0.6), "nu": 3.0 * p["nu"]}
    res = _fit(SABRCalibrator(max_steps=2), noisy, init=far)
    retried = res.diagnostics["cold_retry"]  # the smile's own start may get there in two
    assert np.array_equal(res.converged, retried) and (res.rmse[retried] < 0.005).all()
    assert set(res.status[~retried].tolist()) == {Status.MAX_STEPS}
    assert not res.gates_passed[~retried].any()


def test_a_warm_start_that_fails_is_retried_cold(noisy):
    p = noisy["params"]
    warm = {"alpha": p["alpha"] * 1.01, "rho": p["rho"], "nu": p["nu"] * 0.99}
    bad = {k: v.copy() for k, v in warm.items()}
    bad["rho"][:4], bad["nu"][:4] = 0.9999995, 40.0  # a corner: rho on its bound
    cal = SABRCalibrator(tol=1e-12)  # noisy smiles: flat optima, so a tight tolerance
    res, reference = _fit(cal, noisy, init=bad), _fit(cal, noisy, init=warm)
    assert res.diagnostics["cold_retry"][:4].all() and not res.diagnostics["cold_retry"][4:].any()
    assert res.good[:4].all()
    for name in FREE:
        np.testing.assert_allclose(res.params[name], reference.params[name], rtol=1e-5, atol=1e-7)


def test_sensitivities_match_finite_differences_of_recalibration(noisy):
    cal = SABRCalibrator(tol=1e-13, max_steps=2000)
    d = {k: v[:3] for k, v in noisy.items() if k != "params"}
    res = _fit(cal, d, sensitivities=True)
    assert res.sensitivity_params == FREE
    h = 1e-6
    for j in (0, 5, 7, 14):
        up, dn = (dict(d, vols=d["vols"].copy()) for _ in range(2))
        up["vols"][:, j] += h
        dn["vols"][:, j] -= h
        r_up, r_dn = _fit(cal, up), _fit(cal, dn)
        for p, name in enumerate(FREE):
            fd = (r_up.params[name] - r_dn.params[name]) / (2 * h)
            np.testing.assert_allclose(res.sensitivities[:, p, j], fd, rtol=1e-4, atol=1e-6)


def test_atm_weights_are_the_playbook_gaussian(clean):
    d = {k: v[:4] for k, v in clean.items() if k != "params"}
    d["vols"] = d["vols"] + 0.003 * np.sin(np.arange(15))  # a misfit for weights to matter
    cal = SABRCalibrator()
    by_name = _fit(cal, d, weights="atm")
    explicit = _fit(
        cal, d, weights=np.exp(-(np.log(d["strikes"] / d["forward"][:, None]) ** 2) / 0.05)
    )
    unweighted = _fit(cal, d)
    np.testing.assert_allclose(by_name.params["nu"], explicit.params["nu"], rtol=1e-12)
    assert np.abs(by_name.params["nu"] - unweighted.params["nu"]).max() > 1e-4
    np.testing.assert_allclose(
        atm_weights(np.array([1.0, 1.2]), 1.0), [1.0, np.exp(-(np.log(1.2) ** 2) / 0.05)]
    )


def test_ragged_smiles_in_one_batch_match_separate_fits(clean):
    cal = SABRCalibrator(tol=1e-12)
    keep = [slice(0, 15), slice(3, 12), slice(1, 9)]
    strikes = [clean["strikes"][i, s] for i, s in enumerate(keep)]
    vols = [clean["vols"][i, s] for i, s in enumerate(keep)]
    batch = cal.calibrate_batch(clean["forward"][:3], clean["expiry"][:3], strikes, vols)
    assert batch.residuals.shape == (3, 15)
    assert np.isnan(batch.residuals[2, 8:]).all()
    for i in range(3):
        alone = cal.calibrate_batch(
            clean["forward"][i : i + 1], clean["expiry"][i : i + 1], [strikes[i]], [vols[i]]
        )
        for n in FREE:
            assert batch.params[n][i] == pytest.approx(alone.params[n][0], abs=1e-9)


def test_bucketed_shapes_do_not_recompile(clean):
    cal = SABRCalibrator(max_steps=77)  # a config no other test compiles
    cache = sabr_calibrator._calibrate_batch
    _fit(cal, {k: v[:5] for k, v in clean.items() if k != "params"})
    compiled = cache._cache_size()
    for b, n in ((6, 15), (7, 11), (8, 9), (5, 16)):
        d = {k: v[:b] for k, v in clean.items() if k != "params"}
        d["strikes"], d["vols"] = d["strikes"][:, :n], d["vols"][:, :n]
        _fit(cal, d)
    assert cache._cache_size() == compiled


def test_playbook_market_data_dict_single_and_multi_expiry(clean):
    cal = SABRCalibrator(max_steps=500, tol=1e-8)
    cal.parameter_specs["nu"].init = 0.8
    one = cal.calibrate(
        {
            "forward": clean["forward"][0],
            "strikes": clean["strikes"][0],
            "maturities": clean["expiry"][0],
            "target_vols": clean["vols"][0],
            "weights": "atm",
        }
    )
    assert one.batch_size is None and bool(one.converged)
    assert one.loss_history.shape == (int(one.iterations) + 1,)
    assert np.all(np.diff(one.loss_history) <= 0)  # LM only accepts descending steps
    assert float(one.params["alpha"]) == pytest.approx(clean["params"]["alpha"][0], abs=1e-6)
    i, j = np.flatnonzero(np.diff(clean["expiry"]))[0:1][0], 0  # two smiles, distinct expiries
    i = i + 1
    two = cal.calibrate(
        {
            "forward": np.repeat(clean["forward"][[i, j]], 15),
            "strikes": clean["strikes"][[i, j]].ravel(),
            "maturities": np.repeat(clean["expiry"][[i, j]], 15),
            "target_vols": clean["vols"][[i, j]].ravel(),
        }
    )
    assert two.batch_size == 2
    order = np.argsort(clean["expiry"][[i, j]])
    np.testing.assert_array_equal(two.diagnostics["expiry"], np.sort(clean["expiry"][[i, j]]))
    np.testing.assert_allclose(two.params["nu"], clean["params"]["nu"][[i, j]][order], atol=1e-6)


def test_beta_free_and_per_smile_fixed_beta(clean):
    d = {k: v[:4] for k, v in clean.items() if k != "params"}
    free = _fit(SABRCalibrator(beta=None, tol=1e-12, max_steps=3000), d)
    assert free.sensitivity_params == () and set(free.params) == {"alpha", "beta", "rho", "nu"}
    assert (np.nansum(free.residuals**2, axis=1) < 1e-16).all()  # exact fit exists at beta=0.5
    betas = np.array([0.0, 0.3, 0.7, 1.0])
    per_smile = _fit(SABRCalibrator(), d, beta=betas)
    np.testing.assert_array_equal(per_smile.params["beta"], betas)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vols": np.ones((3, 14))}, "same shape"),
        ({"forward": np.ones(2)}, "shape (B,)"),
        ({"vols_nan": True}, "vols not finite"),
        ({"strike_neg": True}, "strikes must be positive"),
        ({"vol_neg": True}, "vols must be positive"),
        ({"strikes": [[]], "vols": [[]], "forward": [1.0], "expiry": [1.0]}, "empty"),
        (
            {"strikes": [[1.0, 1.1]], "vols": [[0.1, 0.1]], "forward": [1.0], "expiry": [1.0]},
            "at least 3",
        ),
        ({"expiry": np.array([1.0, -1.0, 1.0])}, "expiry must be finite and positive"),
    ],
)
def test_bad_input_raises_a_clear_error(clean, change, message):
    d = {k: np.array(v[:3], copy=True) for k, v in clean.items() if k != "params"}
    if change.pop("vols_nan", False):
        d["vols"][1, 4] = np.nan
    if change.pop("strike_neg", False):
        d["strikes"][2, 0] = -1.0
    if change.pop("vol_neg", False):
        d["vols"][0, 3] = -0.1
    d.update(change)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _fit(SABRCalibrator(), d)


def test_bad_parameters_and_options_raise():
    with pytest.raises(ValueError, match="optimizer"):
        SABRCalibrator(optimizer="newton")
    with pytest.raises(ValueError, match="beta"):
        SABRCalibrator(beta=1.5)
    cal = SABRCalibrator()
    with pytest.raises(ValueError, match="rho values"):
        cal.calibrate_batch([1.0], [1.0], [[0.9, 1.0, 1.1]], [[0.1, 0.1, 0.1]], init={"rho": [1.5]})
    with pytest.raises(ValueError, match="unknown parameters"):
        cal.calibrate_batch(
            [1.0], [1.0], [[0.9, 1.0, 1.1]], [[0.1, 0.1, 0.1]], init={"sigma": [1.0]}
        )
    with pytest.raises(ValueError, match="lacks"):
        cal.calibrate({"forward": 1.0, "strikes": [1.0]})


def test_the_solver_is_any_callable_of_the_common_signature(noisy):
    def optimistix_loose(residual_fn, x0, args, *, max_steps, tol, record_history):
        return optimistix_lm(
            residual_fn, x0, args, max_steps=max_steps, tol=tol, record_history=record_history
        )

    named = _fit(SABRCalibrator(optimizer="optimistix", tol=1e-10, max_steps=3000), noisy)
    own = _fit(SABRCalibrator(optimizer=optimistix_loose, tol=1e-10, max_steps=3000), noisy)
    lm = _fit(SABRCalibrator(tol=1e-10), noisy)
    for name in FREE:
        np.testing.assert_array_equal(own.params[name], named.params[name])
        np.testing.assert_allclose(own.params[name], lm.params[name], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="callable"):
        SABRCalibrator(optimizer=3)


def test_a_smiles_fit_does_not_depend_on_its_batch_to_the_bit():
    d = fx_smiles(64, seed=3, noise=0.003)  # 10 of 64 take 7 to 42 steps: a second round
    cal = SABRCalibrator(min_batch=8, batch_growth=4)  # the stream's batch shapes: 8, 32, 128
    whole = _fit(cal, d)
    slow = np.flatnonzero(whole.iterations > 6)
    fast = np.flatnonzero(whole.iterations <= 6)
    assert slow.size >= 8
    # a slow smile alone in its second round, with two, and among all of them
    for rows in [[i, *fast[:7]] for i in slow] + [[*slow[:2], *fast[:6]], [*slow, *fast[:22]]]:
        part = cal.calibrate_batch(*(d[k][rows] for k in ("forward", "expiry", "strikes", "vols")))
        for name in FREE:
            np.testing.assert_array_equal(part.params[name], whole.params[name][rows])
