"""Every solver on a shared list of least-squares problems with known optima."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from engine.optimize import SOLVERS, Status, levenberg_marquardt, solve_batch

_T = jnp.linspace(0.0, 1.0, 20)


def _rosenbrock(x, _):
    return jnp.array([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def _exp_decay(x, t):  # zero residual at (2, 1.3, 0.1)
    return x[0] * jnp.exp(-x[1] * t) + x[2] - (2.0 * jnp.exp(-1.3 * t) + 0.1)


def _line_with_noise(x, t):  # non-zero residual; optimum from the normal equations
    y = 0.5 + 2.0 * t + 0.05 * jnp.sin(17.0 * t)
    return x[0] + x[1] * t - y


def _line_optimum():
    t = np.asarray(_T)
    y = 0.5 + 2.0 * t + 0.05 * np.sin(17.0 * t)
    return np.linalg.lstsq(np.stack([np.ones_like(t), t], 1), y, rcond=None)[0]


PROBLEMS = {
    "rosenbrock": (_rosenbrock, None, [-1.2, 1.0], [1.0, 1.0]),
    "exp_decay": (_exp_decay, _T, [1.0, 0.5, 0.0], [2.0, 1.3, 0.1]),
    "line_with_noise": (_line_with_noise, _T, [0.0, 0.0], None),
}
TOLERANCE = {"lm": 1e-8, "optimistix": 1e-6, "lbfgs": 1e-5}


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("name", ["lm", "optimistix", "lbfgs"])
def test_solver_reaches_the_known_optimum(name, problem):
    fn, args, x0, optimum = PROBLEMS[problem]
    optimum = _line_optimum() if optimum is None else np.asarray(optimum)
    solve = jax.jit(lambda x: SOLVERS[name](fn, x, args, max_steps=5000, tol=1e-10))
    out = solve(jnp.asarray(x0, jnp.float64))
    assert out.x.dtype == jnp.float64
    assert int(out.status) == Status.CONVERGED
    np.testing.assert_allclose(out.x, optimum, atol=TOLERANCE[name])


@pytest.mark.parametrize("name", list(SOLVERS))
def test_solvers_vmap_and_report_per_problem_status(name):
    starts = jnp.array([[1.0, 0.5, 0.0], [jnp.nan, 0.5, 0.0], [3.0, 2.0, 1.0]])
    out = jax.jit(jax.vmap(lambda x: SOLVERS[name](_exp_decay, x, _T, max_steps=30, tol=1e-10)))(
        starts
    )
    assert out.status.shape == (3,)
    assert int(out.status[1]) == Status.NONFINITE  # a NaN start never reads as converged
    assert bool(jnp.all(jnp.isfinite(out.cost[jnp.array([0, 2])])))


def test_lm_history_is_monotone_and_stops_at_the_iteration_count():
    out = SOLVERS["lm"](
        _rosenbrock, jnp.array([-1.2, 1.0]), None, max_steps=100, record_history=True
    )
    hist = np.asarray(out.loss_history)[: int(out.iterations) + 1]
    assert np.all(np.diff(hist) <= 0)
    assert np.isnan(np.asarray(out.loss_history)[int(out.iterations) + 1 :]).all()


def test_lm_warm_start_at_the_optimum_takes_no_step():
    out = SOLVERS["lm"](_exp_decay, jnp.array([2.0, 1.3, 0.1]), _T, max_steps=50, tol=1e-8)
    assert int(out.iterations) == 0 and int(out.status) == Status.CONVERGED


def test_lm_reports_max_steps():
    out = SOLVERS["lm"](_rosenbrock, jnp.array([-1.2, 1.0]), None, max_steps=3)
    assert int(out.status) == Status.MAX_STEPS and int(out.iterations) == 3


def _shifted_rosenbrock(x, shift):  # optimum at (shift, shift**2)
    return jnp.array([10.0 * (x[1] - x[0] ** 2), shift - x[0]])


def _batch_solve(x0, shift, **kw):
    run = jax.jit(
        lambda x, a: solve_batch(
            levenberg_marquardt, _shifted_rosenbrock, x, a, max_steps=200, tol=1e-10, **kw
        )
    )
    return run(jnp.asarray(x0), jnp.asarray(shift))


def test_solve_batch_finishes_the_slow_few_and_each_result_is_its_own():
    rng = np.random.default_rng(0)
    shift = rng.uniform(0.5, 1.5, 16)
    near = np.stack([shift * 1.001, shift**2 * 1.001], 1)  # done in the first round
    far = np.stack([-1.2 * np.ones(16), np.ones(16)], 1)  # Rosenbrock's valley: many steps
    few = near.copy()
    few[:2] = far[:2]  # 2 of 16 unfinished after 10 steps: compacted into 8 lanes
    many = far.copy()  # all unfinished: two chunks of 8
    compact = _batch_solve(few, shift, first_steps=10, record_history=True)
    every = _batch_solve(many, shift, first_steps=10, record_history=True)
    plain = jax.vmap(
        lambda x, a: levenberg_marquardt(_shifted_rosenbrock, x, a, max_steps=200, tol=1e-10)
    )(jnp.asarray(few), jnp.asarray(shift))
    for out in (compact, every):
        assert (np.asarray(out.status) == Status.CONVERGED).all()
        np.testing.assert_allclose(out.x[:, 0], shift, rtol=1e-8)
        np.testing.assert_allclose(out.x[:, 1], shift**2, rtol=1e-8)
    # rows 0 and 1 took the same path either way: results never depend on batch mates
    for field in ("x", "iterations", "cost", "loss_history"):
        np.testing.assert_array_equal(
            np.asarray(getattr(compact, field))[:2], np.asarray(getattr(every, field))[:2]
        )
    assert (np.asarray(compact.iterations)[:2] > 10).all()
    np.testing.assert_array_equal(compact.iterations[2:], plain.iterations[2:])  # one round
    history = np.asarray(compact.loss_history)  # one history across the rounds
    steps = np.asarray(compact.iterations)
    for row in range(16):
        assert np.isfinite(history[row, : steps[row] + 1]).all()
        assert np.isnan(history[row, steps[row] + 1 :]).all()
        assert history[row, steps[row]] == pytest.approx(float(compact.cost[row]))
