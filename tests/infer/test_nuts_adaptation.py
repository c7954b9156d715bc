"""cm.nuts's one-loop warmup against BlackJAX's own window adaptation followed by a NUTS loop."""

import importlib

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from blackjax.adaptation.base import get_filter_adapt_info_fn
from blackjax.adaptation.window_adaptation import build_schedule

nuts_module = importlib.import_module("coromix.infer.nuts")  # coromix.infer.nuts is the function

SCALES = jnp.array([0.1, 1.0, 5.0])


def logdensity(q):
    return -0.5 * jnp.sum((q["x"] / SCALES) ** 2)


def two_loops(key_data, position, *, num_warmup, num_samples, dense_mass):
    """What cm.nuts ran before: ``blackjax.window_adaptation(...).run``, then ``blackjax.nuts``."""
    _, warmup_key, sample_key = jax.random.split(jax.random.wrap_key_data(key_data), 3)
    flat, unravel = jax.flatten_util.ravel_pytree(position)

    def density(q):
        return logdensity(unravel(q))

    warmup = blackjax.window_adaptation(
        blackjax.nuts,
        density,
        is_mass_matrix_diagonal=not dense_mass,
        target_acceptance_rate=0.8,
        adaptation_info_fn=get_filter_adapt_info_fn(),
        max_num_doublings=10,
    )
    (state, parameters), _ = warmup.run(warmup_key, flat, num_warmup)
    sampler = blackjax.nuts(density, **parameters)

    def one_draw(state, key):
        state, _ = sampler.step(key, state)
        return state, state.position

    _, draws = jax.lax.scan(one_draw, state, jax.random.split(sample_key, num_samples))
    return draws, parameters["step_size"]


@pytest.mark.parametrize(
    "num_warmup, dense_mass",
    [(150, False), (30, True), (5, False)],
    ids=["stan-windows-diag", "resized-windows-dense", "too-short-for-windows"],
)
def test_one_loop_warmup_is_blackjax_window_adaptation(num_warmup, dense_mass):
    key_data = jax.random.key_data(jax.random.key(7))
    position = {"x": jnp.array([0.5, -1.0, 2.0])}
    chain = nuts_module._chain_program(
        lambda observed: logdensity,
        num_warmup=num_warmup,
        num_samples=20,
        dense_mass=dense_mass,
        target_accept=0.8,
        max_tree_depth=10,
    )

    @jax.jit
    def run_chain(key_data, position):
        # the steps in three calls, split anywhere: the same draws as one loop
        carry = chain.init(key_data, position, {})
        for begin, end in [(0, 3), (3, num_warmup + 7), (num_warmup + 7, num_warmup + 20)]:
            carry = chain.advance(carry, begin, end, {})
        draws, stats, _ = chain.finish(carry)
        return draws, stats

    draws, stats = run_chain(key_data, position)
    expected, step_size = jax.jit(
        lambda k, p: two_loops(k, p, num_warmup=num_warmup, num_samples=20, dense_mass=dense_mass)
    )(key_data, position)
    np.testing.assert_allclose(stats["step_size"], np.full(20, step_size), rtol=1e-5)
    np.testing.assert_allclose(draws["x"], expected, rtol=1e-4, atol=1e-5)


def test_schedule_is_stans_windows():
    stages = nuts_module._stages(1000, 3)
    assert np.all(stages[:75] == nuts_module._FAST)  # initial fast window
    ends = np.flatnonzero(stages == nuts_module._SLOW_END) + 1
    assert ends.tolist() == [100, 150, 250, 450, 950]  # slow windows of 25, 50, 100, 200, 500
    assert np.all(stages[950:1000] == nuts_module._FAST)  # final fast window
    assert np.all(stages[1000:] == nuts_module._FROZEN)
    expected = np.asarray(build_schedule(1000))
    np.testing.assert_array_equal(stages[:1000], expected[:, 0] + expected[:, 1])
    assert np.all(nuts_module._stages(19, 2)[:19] == nuts_module._FAST)  # too short for windows
    assert nuts_module._stages(0, 4).tolist() == [nuts_module._FROZEN] * 4


def test_given_first_metric_is_the_kernels_until_the_first_window():
    # without warmup steps the tuning stays as initialized: step size 1 and the given diagonal
    key_data = jax.random.key_data(jax.random.key(3))
    position = {"x": jnp.array([0.5, -1.0, 2.0])}
    variance = SCALES**2
    chain = nuts_module._chain_program(
        lambda observed: logdensity,
        num_warmup=0,
        num_samples=15,
        dense_mass=False,
        target_accept=0.8,
        max_tree_depth=10,
    )

    @jax.jit
    def run_chain(key_data, position):
        carry = chain.init(key_data, position, {}, variance)
        return chain.finish(chain.advance(carry, 0, 15, {}))[0]

    _, _, sample_key = jax.random.split(jax.random.wrap_key_data(key_data), 3)
    sampler = blackjax.nuts(lambda q: logdensity({"x": q}), 1.0, variance)

    def one_draw(state, key):
        state, _ = sampler.step(key, state)
        return state, state.position

    _, expected = jax.lax.scan(
        one_draw, sampler.init(position["x"]), jax.random.split(sample_key, 15)
    )
    np.testing.assert_allclose(run_chain(key_data, position)["x"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_mode_search_gives_the_posterior_scales_as_first_metric(dtype):
    # independent normals with scales 0.01 .. 5 (a location model with 2000 points has scales
    # near 0.02; a weakly identified one near 1-5): the probed curvature gives their variances,
    # where the L-BFGS climb alone saw only the directions it moved along
    import coromix as cm

    scales = np.array([0.01, 0.3, 1.0, 5.0])

    def model():
        yield cm.distributions.Normal(
            jnp.asarray([1.0, -2.0, 0.0, 3.0], dtype), scales.astype(dtype)
        )

    with jax.enable_x64(dtype == jnp.float64):
        posterior = nuts_module.pin_model(model, {})
        find = nuts_module._mode_finder(posterior, nuts_module._logdensity(posterior))
        positions, variance, _, search = jax.jit(find, static_argnums=1)(jax.random.key(0), 4)
    assert bool(search["found"])
    assert variance.dtype == dtype
    np.testing.assert_allclose(variance, scales**2, rtol=1e-2 if dtype == jnp.float32 else 1e-8)
    # the starts stay dispersed within the mode on its scale, at most 1
    spread = np.std(np.asarray(jax.tree.leaves(positions)[0]), axis=0)
    assert np.all(spread < 3 * np.minimum(scales, 1.0))
