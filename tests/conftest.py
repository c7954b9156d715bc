"""Shared fixtures: run numeric tests in float32 and in float64."""

import jax
import pytest


@pytest.fixture(params=["float32", "float64"])
def precision(request):
    """Yields the dtype name; inside the test JAX uses that float precision by default."""
    with jax.enable_x64(request.param == "float64"):
        yield request.param
