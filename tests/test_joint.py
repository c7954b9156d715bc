"""JointDistributionCoroutine on continuous models: sampling, log_prob, pin, jit/grad/vmap."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import coromix.distributions as tfd


def hierarchical():
    hyper_mu = yield tfd.Normal(loc=0.0, scale=10.0)
    hyper_sigma = yield tfd.HalfNormal(scale=5.0)
    mu1 = yield tfd.Normal(loc=hyper_mu, scale=hyper_sigma)
    sigma = yield tfd.HalfNormal(scale=2.0)
    observed_data = yield tfd.Normal(loc=mu1, scale=sigma)


def reference_log_prob(v):
    return (
        stats.norm.logpdf(v["hyper_mu"], 0, 10)
        + stats.halfnorm.logpdf(v["hyper_sigma"], 0, 5)
        + stats.norm.logpdf(v["mu1"], v["hyper_mu"], v["hyper_sigma"])
        + stats.halfnorm.logpdf(v["sigma"], 0, 2)
        + stats.norm.logpdf(v["observed_data"], v["mu1"], v["sigma"])
    )


def test_sample_is_a_named_mapping_in_model_order():
    jd = tfd.JointDistributionCoroutine(hierarchical)
    draws = jd.sample(1000, seed=0)
    assert list(draws) == ["hyper_mu", "hyper_sigma", "mu1", "sigma", "observed_data"]
    assert all(v.shape == (1000,) for v in draws.values())
    assert draws.mu1 is draws["mu1"]
    assert jd.sample(seed=1).mu1.shape == ()
    assert jd.sample((2, 3), seed=1).sigma.shape == (2, 3)
    assert np.all(draws.sigma > 0)


def test_sample_moments_follow_the_model():
    jd = tfd.JointDistributionCoroutine(hierarchical)
    draws = jd.sample(20000, seed=0)
    n = 20000
    assert abs(np.mean(draws.hyper_mu)) < 5 * 10 / np.sqrt(n)
    hn_mean, hn_sd = stats.halfnorm(0, 5).mean(), stats.halfnorm(0, 5).std()
    assert abs(np.mean(draws.hyper_sigma) - hn_mean) < 5 * hn_sd / np.sqrt(n)
    # mu1 - hyper_mu given hyper_sigma is N(0, hyper_sigma): standardized residuals are N(0, 1)
    resid = (draws.mu1 - draws.hyper_mu) / draws.hyper_sigma
    assert stats.kstest(np.asarray(resid), "norm").pvalue > 0.01


def test_sample_without_seed_works_and_varies():
    jd = tfd.JointDistributionCoroutine(hierarchical)
    a, b = jd.sample(5), jd.sample(5)
    assert not np.allclose(a.mu1, b.mu1)


def test_seed_reproducible():
    jd = tfd.JointDistributionCoroutine(hierarchical)
    # the first call runs eagerly and later ones compiled: equal up to float rounding (fused ops)
    first = jd.sample(7, seed=3).mu1
    np.testing.assert_allclose(first, jd.sample(7, seed=3).mu1, rtol=1e-6)
    np.testing.assert_array_equal(
        jd.sample(7, seed=3).mu1, jd.sample(7, seed=jax.random.key(3)).mu1
    )


def test_log_prob_matches_scipy_in_both_precisions(precision):
    jd = tfd.JointDistributionCoroutine(hierarchical)
    draws = jd.sample(100, seed=2)
    got = jd.log_prob(draws)
    assert got.shape == (100,) and got.dtype == jnp.dtype(precision)
    ref = reference_log_prob({k: np.asarray(v, np.float64) for k, v in draws.items()})
    np.testing.assert_allclose(got, ref, rtol=1e-5 if precision == "float32" else 1e-10)
    one = {k: v[0] for k, v in draws.items()}
    np.testing.assert_allclose(jd.log_prob(**one), ref[0], rtol=1e-5)


def test_sample_and_log_prob_under_jit():
    jd = tfd.JointDistributionCoroutine(hierarchical)
    draws = jax.jit(lambda key: jd.sample(1000, seed=key))(jax.random.key(0))
    assert draws.mu1.shape == (1000,)
    np.testing.assert_allclose(jax.jit(jd.log_prob)(draws), jd.log_prob(draws), rtol=1e-5)


def test_log_prob_errors_name_the_variable():
    jd = tfd.JointDistributionCoroutine(hierarchical)
    draws = jd.sample(seed=0)
    partial = {k: v for k, v in draws.items() if k != "mu1"}
    with pytest.raises(ValueError, match="continuous variable 'mu1'"):
        jd.log_prob(partial)
    with pytest.raises(ValueError, match=r"no variable named \['nope'\]"):
        jd.log_prob(**draws, nope=1.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        jd.log_prob({**draws, "sigma": jnp.ones((2,)), "mu1": jnp.ones((3,))})


def test_pinned_unconstrained_density_and_gradient():
    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(hierarchical)
        posterior = jd.pin(observed_data=1.5)
        assert list(posterior.parameter_shapes) == ["hyper_mu", "hyper_sigma", "mu1", "sigma"]
        u = posterior.init(seed=0)
        x = posterior.to_constrained(u)
        # log density on unconstrained space = log joint + log|Jacobian| of exp for the scales
        expected = reference_log_prob(
            {**{k: np.asarray(v) for k, v in x.items()}, "observed_data": 1.5}
        )
        expected += float(u["hyper_sigma"]) + float(u["sigma"])
        np.testing.assert_allclose(posterior.unconstrained_log_prob(u), expected, rtol=1e-10)
        for k, v in posterior.to_unconstrained(x).items():
            np.testing.assert_allclose(v, u[k], rtol=1e-10, atol=1e-12)

        grad = jax.jit(jax.grad(posterior.unconstrained_log_prob))(u)
        eps = 1e-6
        for name in u:
            up = {**u, name: u[name] + eps}
            down = {**u, name: u[name] - eps}
            fd = (posterior.unconstrained_log_prob(up) - posterior.unconstrained_log_prob(down)) / (
                2 * eps
            )
            np.testing.assert_allclose(grad[name], fd, rtol=1e-6, atol=1e-8)

        batch = jax.vmap(lambda s: posterior.init(seed=s))(jax.random.split(jax.random.key(1), 4))
        values = jax.vmap(posterior.unconstrained_log_prob)(batch)
        assert values.shape == (4,) and np.all(np.isfinite(values))


def test_pin_rejects_unknown_and_misshaped_values():
    jd = tfd.JointDistributionCoroutine(hierarchical)
    with pytest.raises(ValueError, match="no variable named"):
        jd.pin(y=1.0)
    with pytest.raises(ValueError, match="pin\\(\\) takes one draw's shape"):
        jd.pin(observed_data=jnp.ones(3))


def test_vector_model_with_data_closed_over():
    data = jnp.array([0.5, -1.0, 2.0, 0.3])

    def model():
        mu = yield tfd.Normal(0.0, 3.0)
        sigma = yield tfd.HalfNormal(1.0)
        y = yield tfd.Independent(tfd.Normal(jnp.broadcast_to(mu, data.shape), sigma), 1)

    jd = tfd.JointDistributionCoroutine(model)
    assert jd.sample(10, seed=0).y.shape == (10, 4)
    lp = jd.log_prob(mu=0.2, sigma=0.7, y=data)
    ref = (
        stats.norm.logpdf(0.2, 0, 3)
        + stats.halfnorm.logpdf(0.7, 0, 1)
        + stats.norm.logpdf(np.asarray(data), 0.2, 0.7).sum()
    )
    np.testing.assert_allclose(lp, ref, rtol=1e-5)
    with pytest.raises(ValueError, match=r"value for 'y' has shape \(3,\); expected shape \(4,\)"):
        jd.log_prob(mu=0.2, sigma=0.7, y=data[:3])


def test_mixture_as_an_observed_node():
    with jax.enable_x64(True):

        def model():
            loc = yield tfd.Normal(jnp.zeros(2), 3.0)
            x = yield tfd.MixtureSameFamily(
                tfd.Categorical(probs=jnp.array([0.3, 0.7])), tfd.Normal(loc, 1.0)
            )

        jd = tfd.JointDistributionCoroutine(model)
        loc = np.array([-1.0, 2.0])
        expected = stats.norm.logpdf(loc, 0, 3).sum() + np.log(
            0.3 * stats.norm.pdf(0.5, -1, 1) + 0.7 * stats.norm.pdf(0.5, 2, 1)
        )
        np.testing.assert_allclose(jd.log_prob(loc=loc, x=0.5), expected, rtol=1e-12)
        assert jd.sample(100, seed=0).x.shape == (100,)
        posterior = jd.pin(x=0.5)
        assert posterior.parameter_shapes == {"loc": (2,)}


def test_names_of_the_seed_step_model():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "seed_dynamic", Path(__file__).resolve().parents[1] / "examples" / "seed_dynamic_mixture.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    jd = tfd.JointDistributionCoroutine(module.dynamic_mixture_step(0.3))
    assert jd.variable_names == ["component_selection", "mu1", "mu2", "sigma", "observed_data"]


def test_hidden_markov_model_as_a_node_with_priors():
    with jax.enable_x64(True):
        y = jnp.asarray(np.random.default_rng(3).normal(size=50))

        def model():
            loc = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 3.0))
            stay = yield tfd.Beta(jnp.array([5.0, 5.0]), 1.0)
            P = jnp.stack([jnp.stack([stay[0], 1 - stay[0]]), jnp.stack([1 - stay[1], stay[1]])])
            obs = yield tfd.HiddenMarkovModel(
                tfd.Categorical(probs=jnp.array([0.5, 0.5])),
                tfd.Categorical(probs=P),
                tfd.Normal(loc, 1.0),
                num_steps=50,
            )

        jd = tfd.JointDistributionCoroutine(model)
        loc, stay = jnp.array([-1.0, 1.0]), jnp.array([0.9, 0.8])
        P = jnp.array([[0.9, 0.1], [0.2, 0.8]])
        hmm = tfd.HiddenMarkovModel(
            tfd.Categorical(probs=jnp.array([0.5, 0.5])),
            tfd.Categorical(probs=P),
            tfd.Normal(loc, 1.0),
            num_steps=50,
        )
        expected = (
            tfd.Ordered(tfd.Normal(jnp.zeros(2), 3.0)).log_prob(loc)
            + tfd.Beta(jnp.array([5.0, 5.0]), 1.0).log_prob(stay).sum()
            + hmm.log_prob(y)
        )
        np.testing.assert_allclose(jd.log_prob(loc=loc, stay=stay, obs=y), expected, rtol=1e-12)
        post = jd.discrete_posterior(loc=loc, stay=stay, obs=y)
        np.testing.assert_allclose(post.obs_states, hmm.posterior_marginals(y).probs, atol=1e-12)
        grad = jax.jit(jax.grad(jd.pin(obs=y).unconstrained_log_prob))(  # compiled: ~4x faster
            {"loc": jnp.zeros(2), "stay": jnp.zeros(2)}
        )
        assert all(np.all(np.isfinite(g)) for g in grad.values())
