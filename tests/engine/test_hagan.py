"""hagan_vol against QuantLib's sabrVolatility and a 50-digit mpmath evaluation."""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import QuantLib as ql

from engine.sabr import hagan_vol


def _random_grid(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    grid = {
        "forward": rng.uniform(0.3, 150.0, n),
        "expiry": rng.uniform(1 / 52, 10.0, n),
        "beta": rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n),
        "rho": rng.uniform(-0.95, 0.95, n),
        "nu": rng.uniform(0.0, 2.5, n),
    }
    # alpha from an ATM lognormal vol of 3% to 80%, as quoted
    grid["alpha"] = rng.uniform(0.03, 0.8, n) * grid["forward"] ** (1 - grid["beta"])
    moneyness = rng.uniform(-1.2, 1.2, n)
    edge = rng.integers(0, 6, n)
    moneyness[edge == 0] = 0.0  # K = F exactly
    grid["rho"][edge == 1] = 0.999 * rng.choice([-1.0, 1.0], (edge == 1).sum())
    grid["nu"][edge == 2] = 1e-9  # nu -> 0
    grid["strike"] = grid["forward"] * np.exp(moneyness)
    return grid


def _quantlib(g: dict[str, np.ndarray]) -> np.ndarray:
    return np.array(
        [
            ql.sabrVolatility(k, f, t, a, b, n, r)  # QuantLib orders nu before rho
            for k, f, t, a, b, r, n in zip(
                g["strike"], g["forward"], g["expiry"], g["alpha"], g["beta"], g["rho"], g["nu"]
            )
        ]
    )


def _ours(g: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(
        hagan_vol(g["strike"], g["forward"], g["expiry"], g["alpha"], g["beta"], g["rho"], g["nu"])
    )


def _z(g: dict[str, np.ndarray]) -> np.ndarray:
    fk = g["forward"] * g["strike"]
    return g["nu"] / g["alpha"] * fk ** ((1 - g["beta"]) / 2) * np.log(g["forward"] / g["strike"])


def test_equals_quantlib_to_1e12_where_its_formula_is_well_conditioned():
    g = _random_grid(20_000, seed=7)
    # QuantLib's log((sqrt(B)+z-rho)/(1-rho)) loses eps/|z| near the money and
    # eps*(z-rho)^2/(1-rho^2) far below it: compare where both losses stay under 1e-13
    # (and everywhere its own series branch applies, |z| tiny).
    z = _z(g)
    cancels = (z - g["rho"]) ** 2 / (1 - g["rho"] ** 2) > 100
    keep = ((np.abs(z) > 2e-3) | (np.abs(z) < 1e-9)) & ~cancels
    assert keep.sum() > 12_000
    assert (keep & (g["strike"] == g["forward"])).sum() > 1_000  # K = F
    assert (keep & (np.abs(g["rho"]) == 0.999)).sum() > 300  # rho near +-1
    assert (keep & (g["nu"] == 1e-9)).sum() > 1_000  # nu -> 0
    assert {0.0, 1.0} <= set(g["beta"][keep])
    ours, ref = _ours(g)[keep], _quantlib({k: v[keep] for k, v in g.items()})
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=0)


def _mp_hagan(k, f, t, a, b, r, n) -> float:
    k, f, t, a, b, r, n = (mpmath.mpf(float(x)) for x in (k, f, t, a, b, r, n))
    log_m = mpmath.log(f / k)
    big_a = (f * k) ** (1 - b)
    z = n / a * mpmath.sqrt(big_a) * log_m
    c = (1 - b) ** 2 * log_m**2
    d = mpmath.sqrt(big_a) * (1 + c / 24 + c * c / 1920)
    time_term = 1 + t * (
        (1 - b) ** 2 * a * a / (24 * big_a)
        + r * b * n * a / (4 * mpmath.sqrt(big_a))
        + (2 - 3 * r * r) * n * n / 24
    )
    ratio = 1 if z == 0 else z / mpmath.log((mpmath.sqrt(1 - 2 * r * z + z * z) + z - r) / (1 - r))
    return float(a / d * ratio * time_term)


def test_accurate_near_the_money_and_at_extreme_rho_against_50_digit_reference():
    rng = np.random.default_rng(3)
    n = 400
    g = _random_grid(n, seed=11)
    scale = rng.choice([1.0, 1e-3, 1e-6, 1e-8], n)  # walk K towards F
    g["strike"] = g["forward"] * np.exp(rng.uniform(-1, 1, n) * scale)
    g["rho"][: n // 4] = rng.choice([0.999999, -0.999999, 0.9999], n // 4)
    with mpmath.workdps(50):
        ref = np.array(
            [
                _mp_hagan(*row)
                for row in zip(
                    g["strike"], g["forward"], g["expiry"], g["alpha"], g["beta"], g["rho"], g["nu"]
                )
            ]
        )
    np.testing.assert_allclose(_ours(g), ref, rtol=5e-13)
    # ...where QuantLib's own formula is measurably off (documented, not a bug of ours).
    assert np.max(np.abs(_quantlib(g) / ref - 1)) > 1e-10


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_finite_and_smooth_through_the_money(beta):
    strikes = 1.25 * (1 + jnp.linspace(-1e-6, 1e-6, 41))
    vols = hagan_vol(strikes, 1.25, 2.0, 0.1, beta, -0.4, 0.7)
    grads = jax.vmap(jax.grad(hagan_vol, argnums=(0, 3, 5, 6)), in_axes=(0,) + (None,) * 6)(
        strikes, 1.25, 2.0, 0.1, beta, -0.4, 0.7
    )
    assert bool(jnp.all(jnp.isfinite(vols)))
    assert all(bool(jnp.all(jnp.isfinite(gr))) for gr in grads)
    # no kink or jump at K = F: second differences are rounding-level
    assert float(jnp.max(jnp.abs(jnp.diff(vols, n=2)))) < 1e-14


def test_atm_limit_matches_closed_form():
    """At K = F, z/x(z) = 1 and Hagan reduces to alpha/F^(1-beta) times the time term."""
    f, t, a, b, r, n = 0.9, 1.5, 0.2, 0.6, -0.2, 0.8
    closed = (
        a
        / f ** (1 - b)
        * (
            1
            + t
            * (
                (1 - b) ** 2 * a**2 / (24 * f ** (2 - 2 * b))
                + r * b * n * a / (4 * f ** (1 - b))
                + (2 - 3 * r**2) * n**2 / 24
            )
        )
    )
    assert float(hagan_vol(f, f, t, a, b, r, n)) == pytest.approx(closed, rel=1e-15)


def test_gradient_matches_finite_differences():
    args = (1.3, 1.2, 0.75, 0.15, 0.4, -0.35, 0.9)
    for i in (0, 3, 4, 5, 6):
        ad = float(jax.grad(hagan_vol, argnums=i)(*args))
        h = 1e-6
        up = list(args)
        dn = list(args)
        up[i] += h
        dn[i] -= h
        fd = (float(hagan_vol(*up)) - float(hagan_vol(*dn))) / (2 * h)
        assert ad == pytest.approx(fd, rel=1e-7, abs=1e-10)
