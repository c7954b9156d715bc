"""HiddenMarkovModel.forecast: regime probabilities filtered(T) @ A^h (NumPy matrix powers of the
filter at the last step, itself checked against brute force over all paths), regime and
observation draws against those probabilities (frequencies within 5 standard errors, a KS test of
the one-step predictive against the mixture CDF), batches, jit/vmap and errors."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from coromix.distributions import Categorical, Forecast, HiddenMarkovModel, Normal


def chain(rng, K):
    start = rng.dirichlet(np.full(K, 2.0))
    trans = 0.6 * rng.dirichlet(np.ones(K), size=K) + 0.4 * np.eye(K)
    return start, trans / trans.sum(1, keepdims=True)


def hmm(start, trans, loc, scale, T, **kw):
    return HiddenMarkovModel(
        Categorical(probs=start), Categorical(probs=trans), Normal(loc, scale), num_steps=T, **kw
    )


def brute_force_filtered_last(start, trans, loc, scale, y):
    """p(z_T | y_1..T) by enumerating all paths (float64 NumPy)."""
    T, K = len(y), len(start)
    lo = stats.norm.logpdf(np.asarray(y)[:, None], loc, scale)
    Z = np.array(list(itertools.product(range(K), repeat=T)))
    score = np.log(start)[Z[:, 0]] + lo[np.arange(T), Z].sum(1)
    score = score + np.log(trans)[Z[:, :-1], Z[:, 1:]].sum(1)
    w = np.exp(score - logsumexp(score))
    return np.bincount(Z[:, -1], weights=w, minlength=K)


def test_forecast_probs_are_filtered_times_matrix_powers(precision):
    rng = np.random.default_rng(0)
    K, T, h = 3, 6, 5
    start, trans = chain(rng, K)
    loc, scale = np.array([-2.0, 0.0, 2.0]), np.array([1.0, 0.5, 1.5])
    y = rng.normal(size=T) * 2
    ahead = hmm(start, trans, loc, scale, T).forecast(y, h, seed=0)
    assert isinstance(ahead, Forecast)
    assert ahead.probs.shape == (h, K) and ahead.regimes.shape == (h,)
    assert ahead.observations.shape == (h,) and ahead.regimes.dtype == jnp.int32
    assert ahead.probs.dtype == jnp.dtype(precision)
    last = brute_force_filtered_last(start, trans, loc, scale, y)
    expected = np.stack([last @ np.linalg.matrix_power(trans, j) for j in range(1, h + 1)])
    tol = 1e-12 if precision == "float64" else 1e-5
    np.testing.assert_allclose(np.asarray(ahead.probs), expected, atol=tol)


def test_forecast_over_batches_of_parameters_and_series(x64):
    rng = np.random.default_rng(1)
    K, T, h = 2, 8, 4
    starts, transes = zip(*[chain(rng, K) for _ in range(3)])
    start, trans = np.stack(starts), np.stack(transes)  # a batch of 3 chains
    loc = np.array([-1.0, 1.0])
    y = rng.normal(size=(2, 3, T))  # two series for each
    d = HiddenMarkovModel(
        Categorical(probs=start), Categorical(probs=trans), Normal(loc, 1.0), num_steps=T
    )
    ahead = d.forecast(y, h, seed=4)
    assert ahead.probs.shape == (2, 3, h, K)
    assert ahead.regimes.shape == (2, 3, h) and ahead.observations.shape == (2, 3, h)
    for s, b in itertools.product(range(2), range(3)):
        last = brute_force_filtered_last(start[b], trans[b], loc, 1.0, y[s, b])
        expected = np.stack([last @ np.linalg.matrix_power(trans[b], j) for j in range(1, h + 1)])
        np.testing.assert_allclose(np.asarray(ahead.probs[s, b]), expected, atol=1e-12)


def test_regime_and_observation_draws_follow_the_forecast(x64):
    """Over many keys: regime frequencies within 5 standard errors of probs at every horizon,
    the one-step predictive (a mixture of the regimes' normals) by a KS test, and observations
    given their drawn regime with that regime's mean."""
    rng = np.random.default_rng(2)
    K, T, h, n = 3, 10, 3, 20_000
    start, trans = chain(rng, K)
    loc, scale = np.array([-3.0, 0.0, 3.0]), np.array([1.0, 0.5, 2.0])
    y = rng.normal(size=T) * 2
    d = hmm(start, trans, loc, scale, T)
    keys = jax.random.split(jax.random.key(7), n)
    draws = jax.vmap(lambda k: d.forecast(y, h, seed=k))(keys)
    probs = np.asarray(d.forecast(y, h, seed=0).probs)
    regimes = np.asarray(draws.regimes)  # [n, h]
    for j in range(h):
        freq = np.bincount(regimes[:, j], minlength=K) / n
        se = np.sqrt(probs[j] * (1 - probs[j]) / n)
        assert np.all(np.abs(freq - probs[j]) < 5 * se), (j, freq, probs[j])
    x1 = np.asarray(draws.observations[:, 0])

    def mixture_cdf(x):
        return np.sum(probs[0] * stats.norm.cdf(x[:, None], loc, scale), axis=1)

    assert stats.kstest(x1, mixture_cdf).pvalue > 1e-3
    x = np.asarray(draws.observations)
    for k in range(K):
        given = x[regimes == k]
        assert abs(given.mean() - loc[k]) < 5 * scale[k] / np.sqrt(len(given))


def test_forecast_under_vmap_over_parameters_and_keys(x64):
    T, h = 5, 3
    y = jnp.array([0.1, -0.3, 2.9, 3.2, 0.4])

    def ahead(p_stay, key):
        trans = jnp.array([[p_stay, 1 - p_stay], [0.3, 0.7]])
        return hmm(jnp.array([0.5, 0.5]), trans, jnp.array([0.0, 3.0]), 1.0, T).forecast(
            y, h, seed=key
        )

    p = jnp.array([0.5, 0.8, 0.95])
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.jit(jax.vmap(ahead))(p, keys)
    assert batched.probs.shape == (3, h, 2) and batched.observations.shape == (3, h)
    tol = 1e-12
    for i in range(3):
        one = ahead(p[i], keys[i])
        np.testing.assert_allclose(np.asarray(batched.probs[i]), np.asarray(one.probs), atol=tol)
        np.testing.assert_array_equal(np.asarray(batched.regimes[i]), np.asarray(one.regimes))

    def last_prob(q):
        return ahead(q, keys[0]).probs[-1, 0]

    grad = float(jax.grad(last_prob)(0.8))
    step = 1e-3
    central = (float(last_prob(0.8 + step)) - float(last_prob(0.8 - step))) / (2 * step)
    np.testing.assert_allclose(grad, central, rtol=1e-6)


def test_forecast_after_a_masked_tail_runs_from_the_last_observation(x64):
    start, trans = np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.3, 0.7]])
    y = np.array([0.1, 2.8, 3.1, np.nan, np.nan])
    d = hmm(start, trans, np.array([0.0, 3.0]), 1.0, 5, mask=np.isnan(y))
    last = brute_force_filtered_last(start, trans, np.array([0.0, 3.0]), 1.0, y[:3])
    expected = np.stack([last @ np.linalg.matrix_power(trans, 2 + j) for j in range(1, 3)])
    np.testing.assert_allclose(np.asarray(d.forecast(y, 2, seed=0).probs), expected, atol=1e-12)


def test_forecast_errors():
    y = np.zeros(4)
    tv = HiddenMarkovModel(
        Categorical(probs=[0.5, 0.5]),
        Categorical(probs=np.full((3, 2, 2), 0.5)),
        Normal([0.0, 1.0], 1.0),
        num_steps=4,
        time_varying_transition=True,
    )
    with pytest.raises(ValueError, match=r"time-varying transition_distribution .*future"):
        tv.forecast(y, 2)
    plain = hmm([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [0.0, 1.0], 1.0, 4)
    with pytest.raises(ValueError, match=r"num_steps must be a positive int; got 0"):
        plain.forecast(y, 0)
    with pytest.raises(ValueError, match=r"NaN at step 2"):
        plain.forecast(np.where(np.arange(4) == 2, np.nan, 0.0), 2)
