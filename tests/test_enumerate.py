"""Exact summing-out of discrete choices: paths (Python branching) and plates (batch-shaped choices)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import coromix.distributions as tfd
from coromix.enumerate import UNROLL_MAX_VALUES, EnumerationError, logsumexp_leading

WEIGHTS = np.array([0.6, 0.4])


def branching():
    component_selection = yield tfd.Categorical(probs=jnp.asarray(WEIGHTS))
    mu1 = yield tfd.Normal(loc=0.0, scale=1.0)
    mu2 = yield tfd.Normal(loc=5.0, scale=1.0)
    sigma = yield tfd.HalfNormal(scale=2.0)
    if component_selection == 0:
        observed_data = yield tfd.Normal(loc=mu1, scale=sigma)
    else:
        observed_data = yield tfd.Normal(loc=mu2, scale=sigma)


def branching_reference(v, component=None):
    """Hand-written log joint per component; log-sum-exp over it when the component is absent."""
    v = {k: np.asarray(x, np.float64) for k, x in v.items()}
    shared = (
        stats.norm.logpdf(v["mu1"], 0, 1)
        + stats.norm.logpdf(v["mu2"], 5, 1)
        + stats.halfnorm.logpdf(v["sigma"], 0, 2)
    )
    per = np.stack(
        [
            np.log(WEIGHTS[k])
            + shared
            + stats.norm.logpdf(v["observed_data"], v[f"mu{k + 1}"], v["sigma"])
            for k in range(2)
        ]
    )
    if component is None:
        return logsumexp(per, axis=0)
    return np.take_along_axis(per, np.asarray(component)[None], axis=0)[0]


def test_path_log_prob_sums_out_and_scores_given_paths(precision):
    jd = tfd.JointDistributionCoroutine(branching)
    draws = jd.sample(100, seed=0)
    rtol = 1e-5 if precision == "float32" else 1e-10
    continuous = {k: v for k, v in draws.items() if k != "component_selection"}
    got = jd.log_prob(continuous)
    assert got.shape == (100,)
    np.testing.assert_allclose(got, branching_reference(continuous), rtol=rtol)
    given = jd.log_prob(draws)
    np.testing.assert_allclose(
        given, branching_reference(continuous, draws["component_selection"]), rtol=rtol
    )
    one = {k: v[3] for k, v in draws.items()}
    np.testing.assert_allclose(
        jd.log_prob(one),
        branching_reference(
            {k: v for k, v in one.items() if k != "component_selection"}, one["component_selection"]
        ),
        rtol=rtol,
    )


def test_path_gradient_is_exact_and_jittable():
    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(branching)
        v = {"mu1": 0.3, "mu2": 4.1, "sigma": 1.7, "observed_data": 2.5}
        grad = jax.jit(jax.grad(lambda x: jd.log_prob(x)))(v)
        eps = 1e-6
        for k, value in v.items():
            fd = (
                branching_reference({**v, k: value + eps})
                - branching_reference({**v, k: value - eps})
            ) / (2 * eps)
            np.testing.assert_allclose(grad[k], fd, rtol=1e-6)


def test_discrete_posterior_of_a_path_variable():
    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(branching)
        draws = jd.sample(50, seed=1)
        continuous = {k: v for k, v in draws.items() if k != "component_selection"}
        post = jd.discrete_posterior(continuous).component_selection
        assert post.shape == (50, 2)
        log_joint = np.stack(
            [branching_reference(continuous, np.full(50, k)) for k in range(2)], -1
        )
        np.testing.assert_allclose(
            post, np.exp(log_joint - logsumexp(log_joint, -1, keepdims=True)), rtol=1e-10
        )


def test_sample_follows_each_draws_own_path():
    def model():
        z = yield tfd.Bernoulli(probs=0.3)
        if z == 1:
            x = yield tfd.Normal(10.0, 1.0)
        else:
            x = yield tfd.Normal(-10.0, 1.0)

    draws = tfd.JointDistributionCoroutine(model).sample(2000, seed=4)
    z, x = np.asarray(draws.z), np.asarray(draws.x)
    assert np.all((x > 0) == (z == 1))
    assert abs(z.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 2000)


def test_several_discrete_choices_combine():
    with jax.enable_x64(True):

        def model():
            a = yield tfd.Bernoulli(probs=0.3)
            b = yield tfd.Categorical(probs=jnp.array([0.2, 0.5, 0.3]))
            loc = 2.0 * b if a == 1 else -1.0
            x = yield tfd.Normal(loc, 1.0)

        jd = tfd.JointDistributionCoroutine(model)
        expected = logsumexp(
            [
                np.log(pa) + np.log(pb) + stats.norm.logpdf(0.7, 2.0 * b if a else -1.0, 1)
                for a, pa in ((0, 0.7), (1, 0.3))
                for b, pb in enumerate((0.2, 0.5, 0.3))
            ]
        )
        np.testing.assert_allclose(jd.log_prob(x=0.7), expected, rtol=1e-12)
        post = jd.discrete_posterior(x=0.7)
        assert post.a.shape == (2,) and post.b.shape == (3,)
        np.testing.assert_allclose(post.a.sum(), 1.0)
        draws = jd.sample(3000, seed=0)
        freq = np.bincount(np.asarray(draws.b), minlength=3) / 3000
        np.testing.assert_allclose(freq, [0.2, 0.5, 0.3], atol=4 * np.sqrt(0.25 / 3000))


def test_path_budget_error_names_the_variables():
    def model():
        x = 0.0
        for _ in range(12):
            z = yield tfd.Bernoulli(probs=0.5)
            x = x + z
        y = yield tfd.Normal(x, 1.0)

    jd = tfd.JointDistributionCoroutine(model, max_paths=100)
    with pytest.raises(EnumerationError, match=r"'z_0' \(2 values\).*max_paths=100.*batch shape"):
        jd.log_prob(y=1.0)


def test_infinite_support_latent_is_an_error():
    def model():
        n = yield tfd.Poisson(3.0)
        x = yield tfd.Normal(n, 1.0)

    jd = tfd.JointDistributionCoroutine(model)
    with pytest.raises(EnumerationError, match="'n' .*infinite support"):
        jd.log_prob(x=1.0)
    assert np.isfinite(jd.log_prob(n=2, x=1.0))


# --- plates -----------------------------------------------------------------------------------


def gmm_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.choice(3, size=n, p=[0.2, 0.5, 0.3])
    return np.array([-3.0, 0.0, 4.0])[z] + rng.normal(size=n)


def plate_model(data, form):
    n = len(data)

    def model():
        w = yield tfd.Dirichlet(jnp.ones(3))
        mu = yield tfd.Normal(jnp.zeros(3), 5.0)
        sigma = yield tfd.HalfNormal(2.0)
        if form == "batch":
            z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (n, 3)))
        else:
            z = yield tfd.Sample(tfd.Categorical(probs=w), n)
        x = yield tfd.Normal(mu[z], sigma)

    return model


def plate_reference(v, data):
    v = {k: np.asarray(x, np.float64) for k, x in v.items()}
    v["w"] = v["w"] / v["w"].sum()  # scipy wants a simplex to float64 precision
    prior = (
        stats.dirichlet.logpdf(v["w"], np.ones(3))
        + stats.norm.logpdf(v["mu"], 0, 5).sum()
        + stats.halfnorm.logpdf(v["sigma"], 0, 2)
    )
    per = np.log(v["w"]) + stats.norm.logpdf(np.asarray(data)[:, None], v["mu"], v["sigma"])
    return prior + logsumexp(per, axis=1).sum(), per


@pytest.mark.parametrize("form", ["batch", "sample"])
def test_plate_sums_out_element_by_element(form, precision):
    data = gmm_data()
    jd = tfd.JointDistributionCoroutine(plate_model(data, form))
    draws = jd.sample(5, seed=0)
    assert draws.z.shape == (5, 40)
    params = {k: draws[k] for k in ("w", "mu", "sigma")}
    got = jd.log_prob(**params, x=jnp.asarray(data))
    ref = [plate_reference({k: v[i] for k, v in params.items()}, data)[0] for i in range(5)]
    np.testing.assert_allclose(got, ref, rtol=1e-5 if precision == "float32" else 1e-10)

    resp = jd.discrete_posterior(**params, x=jnp.asarray(data)).z
    assert resp.shape == (5, 40, 3)
    _, per = plate_reference({k: v[0] for k, v in params.items()}, data)
    np.testing.assert_allclose(
        resp[0],
        np.exp(per - logsumexp(per, 1, keepdims=True)),
        rtol=1e-4 if precision == "float32" else 1e-10,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    ("shape", "axes"),
    [((3, 7), (0,)), ((2, 3, 1, 5), (0, 1)), ((2, 4, 3), (0, 2)), ((6, 6, 4), (0, 1))],
)
def test_logsumexp_leading_equals_scipy_and_its_gradient_is_the_softmax(shape, axes, precision):
    """The unrolled sum (up to UNROLL_MAX_VALUES values) and the fallback (6 x 6 = 36 values)
    against SciPy; entries of -inf (an impossible value) and a slice that is -inf throughout."""
    assert np.prod([shape[a] for a in axes]) > UNROLL_MAX_VALUES or shape != (6, 6, 4)
    x = np.random.default_rng(1).normal(0.0, 30.0, shape)
    x[(0,) * len(shape)] = -np.inf
    x[(slice(None),) * (len(shape) - 1) + (-1,)] = -np.inf
    got = logsumexp_leading(jnp.asarray(x), axes)
    expected = logsumexp(x, axis=axes, keepdims=True)
    assert got.dtype == jnp.dtype(precision)
    np.testing.assert_allclose(got, expected, rtol=1e-6 if precision == "float32" else 1e-13)
    weights = np.random.default_rng(2).uniform(size=expected.shape)
    weights[..., -1] = 0.0  # the -inf slice: 0/0, as in jax.nn.logsumexp
    grad = jax.jit(jax.grad(lambda v: jnp.sum(weights * logsumexp_leading(v, axes))))(
        jnp.asarray(x)
    )
    mask = np.broadcast_to(np.isfinite(expected), x.shape)
    softmax = np.exp(x[mask] - np.broadcast_to(expected, x.shape)[mask])
    tol = {"rtol": 1e-5, "atol": 1e-30} if precision == "float32" else {"rtol": 1e-12}
    np.testing.assert_allclose(
        np.asarray(grad)[mask], (softmax * np.broadcast_to(weights, x.shape)[mask]), **tol
    )


def test_plate_cost_is_linear_not_exponential():
    data = gmm_data(n=2000)
    jd = tfd.JointDistributionCoroutine(plate_model(data, "batch"))
    v = {k: x for k, x in jd.sample(seed=0).items() if k in ("w", "mu", "sigma")}
    assert np.isfinite(jax.jit(lambda v: jd.log_prob(**v, x=jnp.asarray(data)))(v))


def test_plate_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        data = gmm_data(n=15)
        posterior = tfd.JointDistributionCoroutine(plate_model(data, "batch")).pin(
            x=jnp.asarray(data)
        )
        assert list(posterior.parameter_shapes) == ["w", "mu", "sigma"]
        u = posterior.init(seed=3)
        # compiled: op by op, the gradient alone takes about 20 s
        grad = jax.jit(jax.grad(posterior.unconstrained_log_prob))(u)
        log_prob = jax.jit(posterior.unconstrained_log_prob)
        eps = 1e-6
        for k in u:
            for i in np.ndindex(u[k].shape):
                up = {**u, k: u[k].at[i].add(eps)}
                down = {**u, k: u[k].at[i].add(-eps)}
                fd = (log_prob(up) - log_prob(down)) / (2 * eps)
                np.testing.assert_allclose(grad[k][i], fd, rtol=1e-5, atol=1e-7)


def test_plate_shape_violation_raises_instead_of_a_wrong_number():
    def model():
        mu = yield tfd.Normal(jnp.zeros(3), 5.0)
        z = yield tfd.Categorical(probs=jnp.full((6, 3), 1 / 3))
        # positional indexing `[:, None]` puts z's enumeration dim where its plate should be
        # (`[..., None]` keeps it); replicates as an inner plate are tested in test_nested_plates
        x = yield tfd.Normal(mu[z][:, None], 1.0)

    with pytest.raises(EnumerationError, match="cannot be matched"):
        tfd.JointDistributionCoroutine(model).log_prob(mu=jnp.zeros(3), x=jnp.zeros((6, 1)))


def test_plate_within_paths():
    with jax.enable_x64(True):
        data = jnp.asarray(gmm_data(n=10))

        def model():
            wide = yield tfd.Bernoulli(probs=0.25)
            mu = yield tfd.Normal(jnp.zeros(2), 5.0)
            z = yield tfd.Categorical(probs=jnp.full((10, 2), 0.5))
            x = yield tfd.Normal(mu[z], 3.0 if wide == 1 else 1.0)

        jd = tfd.JointDistributionCoroutine(model)
        mu = np.array([-2.0, 3.0])
        per_path = [
            np.log(pw)
            + stats.norm.logpdf(mu, 0, 5).sum()
            + logsumexp(np.log(0.5) + stats.norm.logpdf(np.asarray(data)[:, None], mu, s), 1).sum()
            for pw, s in ((0.75, 1.0), (0.25, 3.0))
        ]
        np.testing.assert_allclose(jd.log_prob(mu=mu, x=data), logsumexp(per_path), rtol=1e-12)
        post = jd.discrete_posterior(mu=mu, x=data)
        np.testing.assert_allclose(
            post.wide, np.exp(np.array(per_path) - logsumexp(per_path)), rtol=1e-10
        )
        assert post.z.shape == (10, 2)


def test_sample_discrete_draws_from_the_exact_conditional():
    data = jnp.asarray(gmm_data(n=8))

    def model():
        wide = yield tfd.Bernoulli(probs=0.5)
        mu = yield tfd.Normal(jnp.zeros(3), 5.0)
        z = yield tfd.Categorical(probs=jnp.full((8, 3), 1 / 3))
        x = yield tfd.Normal(mu[z], 2.0 if wide == 1 else 1.0)

    jd = tfd.JointDistributionCoroutine(model)
    given = {"mu": jnp.array([-3.0, 0.0, 4.0]), "x": data}
    post = jd.discrete_posterior(given)
    n = 4000
    batch = {k: jnp.broadcast_to(v, (n,) + v.shape) for k, v in given.items()}
    draws = jd.sample_discrete(batch, seed=0)
    assert draws.wide.shape == (n,) and draws.z.shape == (n, 8)
    freq_wide = np.mean(np.asarray(draws.wide) == 1)
    p = float(post.wide[1])
    assert abs(freq_wide - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-9
    freq_z = np.stack([np.mean(np.asarray(draws.z) == k, axis=0) for k in range(3)], -1)
    se = np.sqrt(np.asarray(post.z) * (1 - np.asarray(post.z)) / n)
    assert np.all(np.abs(freq_z - np.asarray(post.z)) < 4 * se + 1e-3)


def test_global_terms_before_a_plate_are_not_matched_with_it():
    """A (3, 2) prior yielded before the plate variable is free of it, whatever its rank."""
    with jax.enable_x64(True):
        data = jnp.asarray(gmm_data(n=7))

        def model():
            scale = yield tfd.HalfNormal(jnp.ones((3, 2)))
            mu = yield tfd.Normal(jnp.zeros(3), 5.0)
            z = yield tfd.Categorical(probs=jnp.full((7, 3), 1 / 3))
            x = yield tfd.Normal(mu[z], scale[z, 0])

        scale = np.full((3, 2), 1.5)
        mu = np.array([-3.0, 0.0, 4.0])
        got = tfd.JointDistributionCoroutine(model).log_prob(scale=scale, mu=mu, x=data)
        ref = (
            stats.halfnorm.logpdf(scale, 0, 1).sum()
            + stats.norm.logpdf(mu, 0, 5).sum()
            + logsumexp(
                np.log(1 / 3) + stats.norm.logpdf(np.asarray(data)[:, None], mu, 1.5), axis=1
            ).sum()
        )
        np.testing.assert_allclose(got, ref, rtol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: tfd.Categorical(probs=jnp.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])),
        lambda: tfd.Categorical(logits=jnp.array([[0.3, -1.0], [2.0, 0.5], [0.0, 0.0]])),
        lambda: tfd.Bernoulli(probs=jnp.array([0.1, 0.7, 0.5, 0.9])),
        lambda: tfd.Binomial(total_count=3, probs=jnp.array([0.2, 0.6])),
    ],
)
def test_enumerate_log_prob_is_log_prob_at_each_support_value(make):
    d = make()
    support = np.asarray(d.enumerate_support())
    expected = np.stack([d.log_prob(jnp.full(d.batch_shape, k)) for k in support])
    np.testing.assert_allclose(d.enumerate_log_prob(), expected, rtol=1e-6)
    assert d.enumerate_log_prob().shape == (len(support),) + tuple(d.batch_shape)
