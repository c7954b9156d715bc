"""A regime step with several observations (``u`` then ``v`` given the regime) in a joint model.

The value of such a ``RegimeSwitching`` variable is a mapping name -> series; every operation of
the joint model takes and returns it.  References: brute force over the ``K^T`` regime paths.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import coromix as cm
import coromix.distributions as tfd

T = 4
TRANS = np.array([[0.9, 0.1], [0.2, 0.8]])


def two_observation_model():
    mu = yield tfd.Normal(jnp.zeros(2), 3.0)

    def step(prev, inputs):
        if prev is None:
            s = yield tfd.Categorical(probs=jnp.array([0.5, 0.5]))
        else:
            s = yield tfd.Categorical(probs=jnp.asarray(TRANS)[prev.s])
        u = yield tfd.Normal(mu[s], 1.0)
        v = yield tfd.Normal(-mu[s], 2.0)

    obs = yield tfd.RegimeSwitching(step, num_steps=T)


def paths_table(mu, u, v):
    out = {}
    for path in itertools.product(range(2), repeat=T):
        lp = np.log(0.5) + sum(np.log(TRANS[path[t - 1], path[t]]) for t in range(1, T))
        for t, s in enumerate(path):
            lp += stats.norm(mu[s], 1.0).logpdf(u[t]) + stats.norm(-mu[s], 2.0).logpdf(v[t])
        out[path] = lp
    return out


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    return np.array([-1.0, 1.5]), rng.normal(size=T), rng.normal(size=T)


def test_log_prob_and_discrete_posterior_equal_brute_force(case):
    mu, u, v = case
    table = paths_table(mu, u, v)
    lp = np.array(list(table.values()))
    prior = stats.norm(0, 3).logpdf(mu).sum()
    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(two_observation_model)
        obs = {"u": jnp.asarray(u), "v": jnp.asarray(v)}
        np.testing.assert_allclose(
            jd.log_prob(mu=jnp.asarray(mu), obs=obs), prior + logsumexp(lp), atol=1e-10
        )
        post = jd.discrete_posterior(mu=jnp.asarray(mu), obs=obs)["obs_s"]
        p = np.exp(lp - logsumexp(lp))
        ref = np.zeros((T, 2))
        for path, w in zip(table, p):
            ref[np.arange(T), path] += w
        np.testing.assert_allclose(post, ref, atol=1e-10)
        mode = jd.discrete_mode(mu=jnp.asarray(mu), obs=obs)["obs_s"]
        np.testing.assert_array_equal(mode, list(table)[int(np.argmax(lp))])


def test_sample_pin_and_batched_values():
    jd = tfd.JointDistributionCoroutine(two_observation_model)
    one = jd.sample(seed=0)
    assert set(one["obs"]) == {"u", "v"} and one["obs"]["u"].shape == (T,)
    many = jd.sample(3, seed=1)
    assert many["obs"]["v"].shape == (3, T) and many["mu"].shape == (3, 2)
    # batched values: one log density per draw, each equal to its own evaluation
    batch = jd.log_prob(many)
    assert batch.shape == (3,)
    first = jd.log_prob({"mu": many["mu"][0], "obs": {k: x[0] for k, x in many["obs"].items()}})
    np.testing.assert_allclose(batch[0], first, rtol=1e-6)
    posterior = jd.pin(obs=one["obs"])
    assert list(posterior.parameter_shapes) == ["mu"]
    assert np.isfinite(posterior.unconstrained_log_prob({"mu": jnp.zeros(2)}))
    with pytest.raises(ValueError, match=r"value for 'obs' must be a mapping with the keys"):
        jd.log_prob(mu=jnp.zeros(2), obs=one["obs"]["u"])


@pytest.mark.slow
def test_nuts_posterior_predictive_with_two_observations():
    jd = tfd.JointDistributionCoroutine(two_observation_model)
    data = jd.sample(seed=3)["obs"]
    post = cm.nuts(jd, {"obs": data}, num_chains=2, num_warmup=200, num_samples=200, seed=0)
    assert post.samples["mu"].shape == (2, 200, 2)
    predictive = post.posterior_predictive(num_draws=50, seed=1)
    assert set(predictive["obs"]) == {"u", "v"}
    assert predictive["obs"]["u"].shape[-1] == T
    assert post.discrete_posterior()["obs_s"].shape[-2:] == (T, 2)
    idata = post.to_arviz()
    assert set(idata.observed_data) == {"obs.u", "obs.v"}


@pytest.mark.parametrize("history", [1, 2])
def test_one_step_series_is_the_first_step_mixture(history):
    """``num_steps=1``: no transition is scored; the density is the first step's mixture
    ``logsumexp_k log p(s_0 = k) + log N(y_0 | mu_k, 1)`` (a single step once broke the
    expanded-state layout: a reshape of an empty transition array)."""
    mu = jnp.array([-1.0, 2.0])
    init = jnp.array([0.3, 0.7])

    def step(prev, inputs):
        last = prev[0] if history > 1 and prev else prev
        s = yield tfd.Categorical(probs=init if not last else jnp.asarray(TRANS)[last.s], name="s")
        yield tfd.Normal(mu[s], 1.0, name="y")

    series = tfd.RegimeSwitching(step, num_steps=1, history=history)
    y = jnp.array([0.4])
    expected = logsumexp(np.log(init) + stats.norm(np.asarray(mu), 1.0).logpdf(0.4))
    np.testing.assert_allclose(series.log_prob(y), expected, rtol=1e-6)
    value, grad = jax.value_and_grad(lambda v: series.log_prob(v))(y)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
