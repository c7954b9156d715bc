"""Shared fixtures: run numeric tests in float32 and in float64."""

import contextlib
import gc

import jax
import pytest

_enable_x64 = jax.enable_x64


@contextlib.contextmanager
def _enable_x64_collecting(new_val: bool = True):
    """``jax.enable_x64`` that first frees unreachable jitted functions when the precision changes.

    jax 0.10 caches the device copy of a NumPy array captured as a constant by a live jitted
    function; converting the same NumPy object after switching to float64 then returns the cached
    float32 copy.  Tests share module-level NumPy constants across precisions, and models left
    over from earlier tests (held in reference cycles) keep their jitted functions alive until the
    cyclic garbage collector runs; collecting on each switch removes them.
    """
    switch = bool(new_val) != bool(jax.config.jax_enable_x64)
    if switch:
        gc.collect()
    with _enable_x64(new_val):
        yield
    if switch:
        gc.collect()


jax.enable_x64 = _enable_x64_collecting


@pytest.fixture(params=["float32", "float64"])
def precision(request):
    """Yields the dtype name; inside the test JAX uses that float precision by default."""
    with jax.enable_x64(request.param == "float64"):
        yield request.param
