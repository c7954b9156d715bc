"""``cm.factor`` / ``tfd.Factor``: any term added to the log density (Stan's ``target +=``).

References: hand-written densities with scipy, brute force over components and regime paths,
and, for NUTS on a factor-only target, exact draws of the same banana density.
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


def penalized():
    mu = yield tfd.Normal(0.0, 2.0)
    sigma = yield tfd.HalfNormal(1.0)
    yield cm.factor(-0.5 * (mu - 1.0) ** 2 / 0.3, name="soft")  # a soft constraint on mu
    yield tfd.Normal(jnp.broadcast_to(mu, (5,)), sigma, name="x")


X = np.array([0.3, -0.4, 1.2, 0.8, 0.1])


def penalized_reference(mu, sigma):
    return (
        stats.norm(0, 2).logpdf(mu)
        + stats.halfnorm(scale=1).logpdf(sigma)
        - 0.5 * (mu - 1.0) ** 2 / 0.3
        + stats.norm(mu, sigma).logpdf(X).sum()
    )


def test_factor_adds_its_term_under_jit_and_grad():
    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(penalized)
        f = jax.jit(lambda mu, s: jd.log_prob(mu=mu, sigma=s, x=jnp.asarray(X)))
        for mu, s in [(0.2, 0.7), (-1.0, 1.5)]:
            np.testing.assert_allclose(f(mu, s), penalized_reference(mu, s), atol=1e-10)
        grad = jax.grad(f)(0.2, 0.7)
        # d/dmu: -mu/4 - (mu - 1)/0.3 + sum(x - mu)/sigma^2
        expected = -0.2 / 4 - (0.2 - 1.0) / 0.3 + np.sum(X - 0.2) / 0.7**2
        np.testing.assert_allclose(grad, expected, rtol=1e-10)


def test_a_factor_is_not_a_variable():
    jd = tfd.JointDistributionCoroutine(penalized)
    assert jd.variable_names == ["mu", "sigma", "x"]
    assert list(jd.sample(3, seed=0)) == ["mu", "sigma", "x"]
    posterior = jd.pin(x=jnp.asarray(X))
    assert list(posterior.parameter_shapes) == ["mu", "sigma"]
    # the prior that SMC tempers from is the density sampling draws from: no factor in it
    u = {"mu": jnp.asarray(0.2), "sigma": jnp.log(0.7)}
    prior, joint = posterior.unconstrained_log_prior_and_prob(u)
    ref_prior = stats.norm(0, 2).logpdf(0.2) + stats.halfnorm().logpdf(0.7) + np.log(0.7)
    np.testing.assert_allclose(prior, ref_prior, rtol=1e-5)
    np.testing.assert_allclose(joint, penalized_reference(0.2, 0.7) + np.log(0.7), rtol=1e-5)


def test_pointwise_log_likelihood_shows_the_factor_only_when_asked():
    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(penalized)
        values = {"mu": 0.2, "sigma": 0.7, "x": jnp.asarray(X)}
        plain = jd.pointwise_log_likelihood(values, ["x"])
        assert list(plain) == ["x"]
        both = jd.pointwise_log_likelihood(values, ["x", "soft"])
        np.testing.assert_allclose(both["soft"], -0.5 * (0.2 - 1.0) ** 2 / 0.3, rtol=1e-12)


def test_factor_on_a_plate_variable_is_summed_out_with_it():
    """A factor that depends on the component of each point: brute force per point."""
    w, mu, bonus = np.array([0.3, 0.7]), np.array([-1.0, 2.0]), np.array([0.4, -0.3])
    x = np.array([-0.8, 1.9, 0.5, 2.4])

    def model():
        z = yield tfd.Categorical(probs=jnp.broadcast_to(jnp.asarray(w), (4, 2)), name="z")
        yield cm.factor(jnp.asarray(bonus)[z], name="bonus")
        yield tfd.Normal(jnp.asarray(mu)[z], 1.0, name="x")

    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(model)
        lw = np.log(w) + bonus + stats.norm(mu, 1.0).logpdf(x[:, None])
        np.testing.assert_allclose(
            jd.log_prob(x=jnp.asarray(x)), logsumexp(lw, 1).sum(), atol=1e-10
        )
        post = jd.discrete_posterior(x=jnp.asarray(x))["z"]
        np.testing.assert_allclose(post, np.exp(lw - logsumexp(lw, 1, keepdims=True)), atol=1e-10)


def test_factor_in_a_regime_step_equals_brute_force_over_paths():
    T = 4
    y = np.array([0.1, 1.8, 2.2, -0.3])
    trans = np.array([[0.9, 0.1], [0.2, 0.8]])
    mu, c = np.array([0.0, 2.0]), np.array([0.0, -0.7])

    def model():
        def step(prev, inputs):
            if prev is None:
                s = yield tfd.Categorical(probs=jnp.array([0.5, 0.5]))
            else:
                s = yield tfd.Categorical(probs=jnp.asarray(trans)[prev.s])
            yield cm.factor(jnp.asarray(c)[s], name="cost")
            yield tfd.Normal(jnp.asarray(mu)[s], 1.0, name="y")

        yield tfd.RegimeSwitching(step, num_steps=T, name="series")

    total = []
    for path in itertools.product(range(2), repeat=T):
        lp = np.log(0.5) + sum(np.log(trans[path[t - 1], path[t]]) for t in range(1, T))
        lp += sum(c[s] + stats.norm(mu[s], 1.0).logpdf(y[t]) for t, s in enumerate(path))
        total.append(lp)
    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(model)
        np.testing.assert_allclose(jd.log_prob(series=jnp.asarray(y)), logsumexp(total), atol=1e-10)
        assert jd.sample(seed=0)["series"].shape == (T,)  # sampling ignores the factor


def banana_draws(n, b, seed):
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    return np.stack([x1, rng.normal(b * (x1**2 - 1.0), 1.0)], axis=1)


@pytest.mark.slow
def test_nuts_on_a_factor_only_banana_matches_exact_draws():
    """Target: x1 ~ N(0, 1), x2 | x1 ~ N(b (x1^2 - 1), 1), given entirely by a factor over a
    broad Normal whose own density the factor cancels.  NUTS means and sds against exact draws,
    within 5 Monte Carlo standard errors (from ArviZ's ESS)."""
    b = 0.5

    def banana():
        x = yield tfd.Normal(jnp.zeros(2), 10.0)
        log_target = jax.scipy.stats.norm.logpdf(x[0]) + jax.scipy.stats.norm.logpdf(
            x[1], b * (x[0] ** 2 - 1.0), 1.0
        )
        yield cm.factor(log_target - jnp.sum(jax.scipy.stats.norm.logpdf(x, 0.0, 10.0)))

    post = cm.nuts(banana, {}, num_chains=4, num_warmup=500, num_samples=1000, seed=1)
    draws = np.asarray(post.samples["x"]).reshape(-1, 2)
    exact = banana_draws(200_000, b, seed=2)
    summary = post.summary()
    for i in range(2):
        ess = float(summary["ess_bulk"].iloc[i])
        sd = exact[:, i].std()
        assert abs(draws[:, i].mean() - exact[:, i].mean()) < 5 * sd / np.sqrt(ess)
        # sd of the sample sd ~ sd * sqrt((kurtosis - 1) / (4 n)); kurtosis <= 6 here
        assert abs(draws[:, i].std() - sd) < 5 * sd * np.sqrt(5 / (4 * ess))
