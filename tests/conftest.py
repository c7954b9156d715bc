"""Shared fixtures: run numeric tests in float32 and in float64."""

import contextlib
import gc
import os

import jax
import pytest

# `coromix fit` / `coromix demo` run in-process by the tests leave JAX's persistent compilation
# cache off (no writes to the user's ~/.cache); set COROMIX_CACHE_DIR to a folder to use one.
os.environ.setdefault("COROMIX_CACHE_DIR", "off")

_enable_x64 = jax.enable_x64
_DEFAULT_X64 = bool(jax.config.jax_enable_x64)


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


def _set_default_x64(value: bool) -> None:
    """Make ``value`` the default precision, collecting garbage first when it changes (as above).

    A full collection costs about a second late in the session, so the precision is switched only
    when the next test needs another one: the float64 cases of a parametrized test run one after
    another and share one switch in and one switch out.
    """
    if bool(jax.config.jax_enable_x64) != value:
        gc.collect()
        jax.config.update("jax_enable_x64", value)


def pytest_collection_finish(session):
    """Exempt what collection built (modules, their constants: alive all session) from the
    collections above, which then only scan what the tests create."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """After a test (and its fixtures): back to the default precision unless the next test sets
    its own (including before the doctests, outside this folder, and at the end)."""
    names = getattr(nextitem, "fixturenames", ())
    if not ("precision" in names or "x64" in names):
        _set_default_x64(_DEFAULT_X64)


@pytest.fixture(params=["float32", "float64"])
def precision(request):
    """Yields the dtype name; inside the test JAX uses that float precision by default."""
    _set_default_x64(request.param == "float64")
    yield request.param


@pytest.fixture
def x64():
    """Inside the test JAX uses float64 by default."""
    _set_default_x64(True)
