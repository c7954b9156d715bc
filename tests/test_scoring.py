"""The scoring core: scalar choices summed out along tensor dims, with the fallback to paths.

References are brute force over the choices (scipy densities, one term per value) and, for the
coal-mining change point, the closed-form marginal posterior of the switchpoint (Gamma-Poisson).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import gammaln, logsumexp

import coromix as cm
import coromix.distributions as tfd
from coromix import scoring
from coromix.enumerate import EnumerationError

YEARS = np.arange(111)


def coal_counts(seed=0, switch=40, early=3.0, late=1.0):
    rng = np.random.default_rng(seed)
    return rng.poisson(np.where(YEARS < switch, early, late)).astype(np.float64)


def make_coal_mining(calls=None):
    def coal_mining():
        if calls is not None:
            calls.append(1)
        switchpoint = yield tfd.Categorical(probs=jnp.full(111, 1 / 111))
        early = yield tfd.Exponential(1.0)
        late = yield tfd.Exponential(1.0)
        # the years made here, not the module's NumPy int64 array: JAX keeps one compiled
        # constant per array, which breaks when a test switches float64 off after it was made
        rate = jnp.where(jnp.arange(111) < switchpoint, early, late)
        disasters = yield tfd.Poisson(rate)

    return coal_mining


def coal_log_joint(s, early, late, y):
    """Brute force: log p(s, early, late, y) with scipy, for one switchpoint value."""
    rate = np.where(YEARS < s, early, late)
    return (
        -np.log(111)
        + stats.expon.logpdf(early)
        + stats.expon.logpdf(late)
        + stats.poisson.logpmf(y, rate).sum()
    )


def exact_switchpoint_posterior(y):
    """p(s | y) in closed form: each segment's rate (Exponential(1) = Gamma(1, 1)) integrated out.

    integral of lambda^c exp(-(n + 1) lambda) d lambda = Gamma(c + 1) / (n + 1)^(c + 1).
    """
    log_w = []
    for s in range(111):
        total = 0.0
        for seg in (y[:s], y[s:]):
            c, n = seg.sum(), len(seg)
            total += gammaln(c + 1) - (c + 1) * np.log(n + 1)
        log_w.append(total)
    log_w = np.asarray(log_w)
    return np.exp(log_w - logsumexp(log_w))


def test_scalar_choice_is_summed_out_in_one_vectorized_run():
    with jax.enable_x64(True):
        y = coal_counts()
        calls = []
        jd = tfd.JointDistributionCoroutine(make_coal_mining(calls))
        jd.event_shapes()  # one sampling run finds the variables' shapes
        calls.clear()
        got = jd.log_prob(early=2.5, late=1.2, disasters=y)
        expected = logsumexp([coal_log_joint(s, 2.5, 1.2, y) for s in range(111)])
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        # one run finds the choice, one vectorized run sums it out: not one run per value
        assert len(calls) == 2
        post = jd.discrete_posterior(early=2.5, late=1.2, disasters=y).switchpoint
        per_value = np.array([coal_log_joint(s, 2.5, 1.2, y) for s in range(111)])
        np.testing.assert_allclose(post, np.exp(per_value - logsumexp(per_value)), atol=1e-12)
        assert "switchpoint" not in scoring._path_choices(jd.model)


def test_gradient_through_a_tensor_choice_matches_finite_differences():
    with jax.enable_x64(True):
        y = coal_counts(seed=1)
        jd = tfd.JointDistributionCoroutine(make_coal_mining())

        def f(e, l):
            return logsumexp([coal_log_joint(s, e, l, y) for s in range(111)])

        grad = jax.jit(jax.grad(lambda e, l: jd.log_prob(early=e, late=l, disasters=y), (0, 1)))
        g = grad(2.0, 1.5)
        eps = 1e-6
        np.testing.assert_allclose(g[0], (f(2.0 + eps, 1.5) - f(2.0 - eps, 1.5)) / 2 / eps, 1e-6)
        np.testing.assert_allclose(g[1], (f(2.0, 1.5 + eps) - f(2.0, 1.5 - eps)) / 2 / eps, 1e-6)


def test_batched_values_and_sampling_with_a_tensor_choice(precision):
    jd = tfd.JointDistributionCoroutine(make_coal_mining())
    draws = jd.sample(400, seed=3)
    assert draws.switchpoint.shape == (400,) and draws.disasters.shape == (400, 111)
    # every draw's counts follow its own switchpoint: early years at the early rate
    s, e, l, y = (np.asarray(draws[k]) for k in ("switchpoint", "early", "late", "disasters"))
    expected = np.where(YEARS[None] < s[:, None], e[:, None], l[:, None])
    z = (y.sum(1) - expected.sum(1)) / np.sqrt(expected.sum(1))
    assert abs(z.mean()) < 4 / np.sqrt(400) and abs(z.std() - 1) < 0.15
    # the switchpoint is uniform over the 111 years (chi-square over 4 bins of ~28 years)
    counts = np.histogram(s, bins=[0, 28, 56, 84, 111])[0]
    assert stats.chisquare(counts, 400 * np.diff([0, 28, 56, 84, 111]) / 111).pvalue > 1e-3
    lp = jd.log_prob({k: v for k, v in draws.items() if k != "switchpoint"})
    rtol = 1e-5 if precision == "float32" else 1e-10
    for i in range(3):
        expected = logsumexp([coal_log_joint(t, e[i], l[i], y[i]) for t in range(111)])
        np.testing.assert_allclose(lp[i], expected, rtol=rtol)


def test_branching_on_one_choice_falls_back_to_paths_for_it_only():
    with jax.enable_x64(True):

        def model():
            wide = yield tfd.Bernoulli(probs=0.3)
            k = yield tfd.Categorical(probs=jnp.array([0.2, 0.5, 0.3]))
            mu = yield tfd.Normal(0.0, 3.0)
            scale = 3.0 if wide == 1 else 1.0
            x = yield tfd.Normal(mu + jnp.asarray([-2.0, 0.0, 2.0])[k], scale)

        jd = tfd.JointDistributionCoroutine(model)
        got = jd.log_prob(mu=0.4, x=1.1)
        expected = logsumexp(
            [
                np.log(pw)
                + np.log(pk)
                + stats.norm.logpdf(0.4, 0, 3)
                + stats.norm.logpdf(1.1, 0.4 + (-2.0, 0.0, 2.0)[k], 3.0 if w else 1.0)
                for w, pw in ((0, 0.7), (1, 0.3))
                for k, pk in enumerate((0.2, 0.5, 0.3))
            ]
        )
        np.testing.assert_allclose(got, expected, rtol=1e-12)
        assert scoring._path_choices(model) == {"wide"}
        post = jd.discrete_posterior(mu=0.4, x=1.1)
        assert post.wide.shape == (2,) and post.k.shape == (3,)
        np.testing.assert_allclose(post.wide.sum(), 1.0, rtol=1e-12)
        np.testing.assert_allclose(post.k.sum(), 1.0, rtol=1e-12)


def test_too_many_combinations_say_so():
    def model():
        a = yield tfd.Categorical(probs=jnp.full(40, 1 / 40))
        b = yield tfd.Categorical(probs=jnp.full(40, 1 / 40))
        x = yield tfd.Normal(a + b, 1.0)

    jd = tfd.JointDistributionCoroutine(model)
    with pytest.raises(EnumerationError, match=r"1600 combinations.*max_paths=1024"):
        jd.log_prob(x=3.0)
    assert np.isfinite(tfd.JointDistributionCoroutine(model, max_paths=2000).log_prob(x=3.0))


@pytest.mark.slow
def test_coal_mining_switchpoint_posterior_equals_the_closed_form():
    y = coal_counts(seed=0)
    post = cm.nuts(
        make_coal_mining(),
        observed={"disasters": y},
        num_chains=4,
        num_warmup=1000,
        num_samples=1000,
        seed=0,
    )
    assert post.summary()["r_hat"].max() < 1.01
    probs = np.asarray(post.discrete_posterior()["switchpoint"]).reshape(-1, 111).mean(0)
    tv = 0.5 * np.abs(probs - exact_switchpoint_posterior(y)).sum()
    assert tv <= 0.02, tv
