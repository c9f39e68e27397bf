"""Realistic synthetic FX smiles from known SABR parameters (shared by bench/ and tests/)."""

from __future__ import annotations

import numpy as np

from engine.sabr import hagan_vol

EXPIRIES = np.array([1 / 52, 1 / 12, 0.25, 0.5, 1.0, 2.0])


def fx_smiles(n: int, n_strikes: int = 15, beta: float = 0.5, seed: int = 0, noise: float = 0.0):
    """``n`` smiles: forwards 0.6-1.6 (and JPY-like 80-160), ATM vols 5-18%, rho -0.5..0.3,
    nu 0.2-1.5; strikes spanning +-2.2 ATM standard deviations. Returns a dict of arrays."""
    rng = np.random.default_rng(seed)
    forward = np.where(rng.random(n) < 0.2, rng.uniform(80, 160, n), rng.uniform(0.6, 1.6, n))
    expiry = rng.choice(EXPIRIES, n)
    atm = rng.uniform(0.05, 0.18, n)
    params = {
        "alpha": atm * forward ** (1 - beta),
        "beta": np.full(n, beta),
        "rho": rng.uniform(-0.5, 0.3, n),
        "nu": rng.uniform(0.2, 1.5, n) / np.sqrt(np.maximum(expiry, 0.25)) ** 0.5,
    }
    x = np.linspace(-2.2, 2.2, n_strikes)
    strikes = forward[:, None] * np.exp(atm[:, None] * np.sqrt(expiry)[:, None] * x[None, :])
    vols = np.asarray(
        hagan_vol(
            strikes,
            forward[:, None],
            expiry[:, None],
            *(params[k][:, None] for k in ("alpha", "beta", "rho", "nu")),
        )
    )
    vols = vols + noise * rng.standard_normal(vols.shape)
    return {
        "forward": forward,
        "expiry": expiry,
        "strikes": strikes,
        "vols": vols,
        "params": params,
    }
