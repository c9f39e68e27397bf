"""Shared test set-up: float64 JAX everywhere, as in production."""

import jax

jax.config.update("jax_enable_x64", True)
