"""Quantities a Posterior derives per draw: pointwise log-likelihood, predictive, discrete mode.

The draws are made here (not by NUTS), so each check is exact and fast: the per-draw machinery
of ``Posterior`` against scipy and against the model's own one-draw methods.
"""

import warnings

import arviz as az
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from scipy.special import logsumexp

import coromix as cm
from coromix import per_draw
from coromix.results import Posterior

tfd = cm.distributions
RNG = np.random.default_rng(7)
N = 40
X = np.concatenate([RNG.normal(-2.0, 1.0, N // 2), RNG.normal(2.5, 0.7, N // 2)])


def gmm():
    w = yield tfd.Dirichlet(jnp.ones(2))
    mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 5.0))
    sigma = yield tfd.HalfNormal(jnp.ones(2))
    z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (N, 2)))
    x = yield tfd.Normal(mu[z], sigma[z])


def gmm_draws(chains=2, draws=6, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet([20.0, 20.0], size=(chains, draws))
    mu = np.sort(rng.normal([-2.0, 2.5], 0.2, size=(chains, draws, 2)), axis=-1)
    sigma = rng.uniform(0.6, 1.2, size=(chains, draws, 2))
    return {"w": w, "mu": mu, "sigma": sigma}


def gmm_posterior(**kwargs):
    draws = gmm_draws(**kwargs)
    return Posterior(draws, observed={"x": X}, model=tfd.JointDistributionCoroutine(gmm)), draws


def test_mixture_pointwise_log_likelihood_matches_scipy(precision):
    post, d = gmm_posterior()
    ll = post.log_likelihood()
    assert list(ll) == ["x"] and ll["x"].shape == (2, 6, N)
    dens = sum(
        d["w"][..., k, None] * st.norm.pdf(X, d["mu"][..., k, None], d["sigma"][..., k, None])
        for k in range(2)
    )
    rtol = 1e-5 if precision == "float32" else 1e-10
    np.testing.assert_allclose(ll["x"], np.log(dens), rtol=rtol)


def test_latent_per_element_is_conditioned_on_not_counted():
    """A continuous per-element latent that depends on z: p(y_n | theta_n) only."""
    n = 5

    def model():
        mu = yield tfd.Normal(jnp.array([-1.0, 1.0]), 0.1)
        z = yield tfd.Categorical(probs=jnp.full((n, 2), 0.5))
        theta = yield tfd.Normal(mu[z], 1.0)
        y = yield tfd.Normal(theta, 0.5)

    jd = tfd.JointDistributionCoroutine(model)
    theta, y, mu = RNG.normal(size=n), RNG.normal(size=n), np.array([-1.1, 0.9])
    ll = jd.pointwise_log_likelihood({"mu": mu, "theta": theta, "y": y}, observed=["y"])
    np.testing.assert_allclose(ll["y"], st.norm.logpdf(y, theta, 0.5), rtol=1e-5)


def test_observed_variables_sharing_a_plate_are_reported_together():
    def model():
        mu = yield tfd.Normal(jnp.zeros(2), 3.0)
        z = yield tfd.Categorical(probs=jnp.full((N, 2), 0.5))
        a = yield tfd.Normal(mu[z], 1.0)
        b = yield tfd.Normal(-mu[z], 2.0)
        c = yield tfd.Normal(jnp.zeros(3), 1.0)  # free of z: its own pointwise terms

    jd = tfd.JointDistributionCoroutine(model)
    mu, a, b, c = np.array([-1.0, 2.0]), X, -X, np.array([0.1, 0.2, -0.3])
    ll = jd.pointwise_log_likelihood({"mu": mu, "a": a, "b": b, "c": c}, observed=["a", "b", "c"])
    assert set(ll) == {"a+b", "c"}
    joint = logsumexp(
        [np.log(0.5) + st.norm.logpdf(a, m, 1.0) + st.norm.logpdf(b, -m, 2.0) for m in mu], axis=0
    )
    np.testing.assert_allclose(ll["a+b"], joint, rtol=1e-5)
    np.testing.assert_allclose(ll["c"], st.norm.logpdf(c), rtol=1e-5)


def test_a_model_that_branches_gives_one_total():
    """Seed-style model: `if z == 0` makes every observation depend on the one choice."""

    def model():
        z = yield tfd.Categorical(probs=jnp.array([0.6, 0.4]))
        s = yield tfd.HalfNormal(1.0 if z == 0 else 3.0)
        x = yield tfd.Normal(jnp.zeros(N), s)

    jd = tfd.JointDistributionCoroutine(model)
    s = 1.7
    ll = jd.pointwise_log_likelihood({"s": s, "x": X}, observed=["x"])
    prior = np.array([0.6 * st.halfnorm.pdf(s, scale=1.0), 0.4 * st.halfnorm.pdf(s, scale=3.0)])
    # the choice does not enter x's density, so p(x | s) is the normal likelihood itself
    np.testing.assert_allclose(ll["x"], st.norm.logpdf(X, 0, s).sum(), rtol=1e-5)
    assert prior.sum() > 0

    def model_where_x_depends():
        z = yield tfd.Categorical(probs=jnp.array([0.6, 0.4]))
        s = yield tfd.HalfNormal(1.0)
        x = yield tfd.Normal(jnp.full(N, -1.0 if z == 0 else 1.0), s)

    jd = tfd.JointDistributionCoroutine(model_where_x_depends)
    ll = jd.pointwise_log_likelihood({"s": s, "x": X}, observed=["x"])
    expected = logsumexp(
        [np.log(0.6) + st.norm.logpdf(X, -1, s).sum(), np.log(0.4) + st.norm.logpdf(X, 1, s).sum()]
    )
    assert np.shape(ll["x"]) == ()
    np.testing.assert_allclose(ll["x"], expected, rtol=1e-5)


def hmm_model(y_len):
    def hmm():
        mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 5.0))
        y = yield tfd.HiddenMarkovModel(
            tfd.Categorical(probs=jnp.array([0.5, 0.5])),
            tfd.Categorical(probs=jnp.array([[0.9, 0.1], [0.2, 0.8]])),
            tfd.Normal(mu, 1.0),
            num_steps=y_len,
        )

    return hmm


def test_chain_of_regimes_log_likelihood_and_viterbi_path():
    y = np.concatenate([RNG.normal(-1.5, 1, 15), RNG.normal(1.5, 1, 15), RNG.normal(-1.5, 1, 10)])
    jd = tfd.JointDistributionCoroutine(hmm_model(len(y)))
    mu = np.sort(RNG.normal([-1.5, 1.5], 0.1, size=(2, 3, 2)), axis=-1)
    post = Posterior({"mu": mu}, observed={"y": y}, model=jd)
    ll = post.log_likelihood()
    assert ll["y"].shape == (2, 3)
    mode = post.discrete_mode()
    assert list(mode) == ["y_states"] and mode["y_states"].shape == (2, 3, len(y))
    for c, d in [(0, 0), (1, 2)]:
        hmm = tfd.HiddenMarkovModel(
            tfd.Categorical(probs=jnp.array([0.5, 0.5])),
            tfd.Categorical(probs=jnp.array([[0.9, 0.1], [0.2, 0.8]])),
            tfd.Normal(jnp.asarray(mu[c, d]), 1.0),
            num_steps=len(y),
        )
        np.testing.assert_allclose(ll["y"][c, d], hmm.log_prob(y), rtol=1e-5)
        np.testing.assert_array_equal(mode["y_states"][c, d], hmm.posterior_mode(y))
    # the regime draws per posterior draw are paths of the right shape, mostly the Viterbi path
    paths = post.sample_discrete(seed=3)["y_states"]
    assert paths.shape == (2, 3, len(y)) and set(np.unique(paths)) <= {0, 1}
    assert np.mean(paths == mode["y_states"]) > 0.8


def test_mixture_mode_is_the_most_responsible_component():
    post, _ = gmm_posterior()
    mode = post.discrete_mode()["z"]
    probs = post.discrete_posterior()["z"]
    assert mode.shape == (2, 6, N)
    np.testing.assert_array_equal(mode, probs.argmax(-1))


def test_path_choice_mode_is_the_most_probable_path():
    def model():
        z = yield tfd.Categorical(probs=jnp.array([0.3, 0.7]))
        m = yield tfd.Normal(0.0, 1.0)
        x = yield tfd.Normal(jnp.full(N, m - 2.0 if z == 0 else m + 2.0), 1.0)

    jd = tfd.JointDistributionCoroutine(model)
    for m in [0.0, -0.5, 4.0]:
        probs = jd.discrete_posterior(m=m, x=X)["z"]
        assert int(jd.discrete_mode(m=m, x=X)["z"]) == int(np.argmax(probs))


def test_posterior_predictive_has_the_right_mixture_distribution():
    post, d = gmm_posterior(chains=2, draws=1000, seed=1)
    rep = post.posterior_predictive(seed=0)["x"]
    assert rep.shape == (2, 1000, N)
    # at each draw the replicas come from that draw's mixture: standardize by its own moments
    w, mu, sigma = d["w"], d["mu"], d["sigma"]
    mean = np.sum(w * mu, -1)
    var = np.sum(w * (sigma**2 + mu**2), -1) - mean**2
    z = (rep - mean[..., None]) / np.sqrt(var[..., None])
    # replicas are independent given their draw: standard errors from the values themselves
    assert abs(z.mean()) < 4 * z.std() / np.sqrt(z.size)
    assert abs(np.mean(z**2) - 1) < 4 * np.std(z**2) / np.sqrt(z.size)
    # a two-component mixture: the fraction below the midpoint matches the weight of the first
    frac = np.mean(rep < ((mu[..., 0] + mu[..., 1]) / 2)[..., None])
    expected = np.mean(
        [
            w[..., 0] * st.norm.cdf((mu[..., 1] - mu[..., 0]) / 2 / sigma[..., 0])
            + w[..., 1] * st.norm.cdf((mu[..., 0] - mu[..., 1]) / 2 / sigma[..., 1])
        ]
    )
    assert abs(frac - expected) < 4 * np.sqrt(expected * (1 - expected) / rep.size)
    thinned = post.posterior_predictive(num_draws=10, seed=0)["x"]
    assert thinned.shape == (2, 10, N)
    with pytest.raises(ValueError, match="num_draws must be None or an integer >= 1; got 0"):
        post.posterior_predictive(num_draws=0)


def test_arviz_groups_loo_and_netcdf_round_trip(tmp_path):
    post, _ = gmm_posterior(chains=2, draws=200, seed=2)
    post.posterior_predictive(num_draws=50)
    post.prior_predictive(num_samples=30)
    idata = post.to_arviz()
    assert {
        "log_likelihood",
        "posterior_predictive",
        "prior",
        "prior_predictive",
        "discrete_posterior",
    } <= set(idata.groups())
    assert idata.log_likelihood["x"].shape == (2, 200, N)
    assert idata.posterior_predictive["x"].shape == (2, 50, N)
    assert list(idata.prior.data_vars) == ["w", "mu", "sigma"]
    assert idata.prior_predictive["x"].shape == (1, 30, N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns about Pareto k with few draws
        loo = az.loo(idata, pointwise=True)
    lppd = np.sum(logsumexp(post.log_likelihood()["x"].reshape(-1, N), axis=0) - np.log(400))
    assert np.isfinite(loo.elpd_loo) and loo.elpd_loo <= lppd + 1e-6
    assert 0 < loo.p_loo < 20
    az.plot_ppc(idata, num_pp_samples=20)

    post.save(tmp_path / "fit.nc")
    back = Posterior.load(tmp_path / "fit.nc")
    np.testing.assert_array_equal(back.log_likelihood()["x"], post.log_likelihood()["x"])
    np.testing.assert_array_equal(
        back.posterior_predictive(num_draws=50)["x"], post.posterior_predictive(num_draws=50)["x"]
    )
    assert set(back.to_arviz().groups()) == set(idata.groups())


def test_derived_quantities_need_the_model():
    post = Posterior(gmm_draws(), observed={"x": X})
    for method in ["log_likelihood", "discrete_mode", "posterior_predictive", "sample_discrete"]:
        with pytest.raises(ValueError, match="needs the model"):
            getattr(post, method)()
    with pytest.raises(ValueError, match=r"observed=\['q'\]: no such variable"):
        tfd.JointDistributionCoroutine(gmm).pointwise_log_likelihood({"x": X}, observed=["q"])


def test_posterior_methods_are_the_per_draw_functions():
    """``Posterior`` stores the draws; its per-draw methods give what ``coromix.per_draw`` gives."""
    post, draws = gmm_posterior(chains=2, draws=3)
    jd, observed = post.model, {"x": X}
    for name in ["log_likelihood", "discrete_posterior", "discrete_mode"]:
        mine, theirs = getattr(post, name)(), getattr(per_draw, name)(jd, draws, observed)
        assert list(mine) == list(theirs)
        for k in mine:
            np.testing.assert_array_equal(mine[k], theirs[k])
    np.testing.assert_array_equal(
        post.sample_discrete(seed=4)["z"], per_draw.sample_discrete(jd, draws, observed, 4)["z"]
    )
    np.testing.assert_array_equal(
        post.posterior_predictive(num_draws=2, seed=5)["x"],
        per_draw.posterior_predictive(jd, draws, ["x"], num_draws=2, seed=5)["x"],
    )
