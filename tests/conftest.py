"""Shared fixtures: run numeric tests in float32 and in float64."""

import contextlib

import jax
import pytest

_enable_x64 = jax.enable_x64


@contextlib.contextmanager
def _enable_x64_with_fresh_caches(new_val: bool = True):
    """``jax.enable_x64`` that clears JAX's caches when the precision actually changes.

    jax 0.10 caches the device copy of a NumPy array captured as a constant by a live jitted
    function; converting the same NumPy object after switching to float64 then returns the cached
    float32 copy.  Tests share module-level NumPy constants across precisions, so each switch
    starts from clean caches.
    """
    switch = bool(new_val) != bool(jax.config.jax_enable_x64)
    if switch:
        jax.clear_caches()
    with _enable_x64(new_val):
        yield
    if switch:
        jax.clear_caches()


jax.enable_x64 = _enable_x64_with_fresh_caches


@pytest.fixture(params=["float32", "float64"])
def precision(request):
    """Yields the dtype name; inside the test JAX uses that float precision by default."""
    with jax.enable_x64(request.param == "float64"):
        yield request.param
