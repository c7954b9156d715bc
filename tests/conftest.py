"""Shared fixtures: run numeric tests in float32 and in float64."""

import jax
import pytest


@pytest.fixture(autouse=True)
def _fresh_jax_caches():
    """Clear JAX's caches after each test.

    Tests switch between float32 and float64 (``jax.enable_x64``); jax 0.10 can reuse a float32
    constant conversion in float64 mode after a jitted call made in float32 mode (seen with
    ``jnp.asarray(numpy_float64_array)`` returning float32), which would make float64 checks fail.
    """
    yield
    jax.clear_caches()


@pytest.fixture(params=["float32", "float64"])
def precision(request):
    """Yields the dtype name; inside the test JAX uses that float precision by default."""
    with jax.enable_x64(request.param == "float64"):
        yield request.param
