"""volstream's numerics: pure JAX, float64, arrays in and arrays out; no I/O."""

import jax

jax.config.update("jax_enable_x64", True)
