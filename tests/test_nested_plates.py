"""Several plate shapes and nested plates in one model, summed out by variable elimination.

References: brute force over every joint value of the discrete variables (``itertools.product``),
each term from scipy; the log density, the marginals of every variable and the joint mode must
agree to 1e-10 in float64, and joint draws must follow the brute-force joint distribution.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import coromix.distributions as tfd
from coromix.enumerate import EnumerationError

G, N, KC, KZ = 2, 3, 2, 3
W = np.array([0.3, 0.7])  # cluster weights
THETA = np.array([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])  # component weights per cluster
SIGMA = 0.8


def nested_model(g=G, n=N):
    """A cluster c per group (shape (G, 1)), a component z per observation (shape (G, N))."""

    def model():
        mu = yield tfd.Normal(jnp.zeros(KZ), 3.0, name="mu")
        c = yield tfd.Categorical(probs=jnp.broadcast_to(jnp.asarray(W), (g, 1, KC)), name="c")
        z = yield tfd.Categorical(probs=jnp.asarray(THETA)[c] * jnp.ones((n, 1)), name="z")
        yield tfd.Normal(mu[z], SIGMA, name="y")

    return model


def nested_brute_force(mu, y):
    """log p(mu, c, z, y) for every (c, z): a dict {(c, z): log p} (c: G values, z: G*N values)."""
    prior = stats.norm(0, 3).logpdf(mu).sum()
    out = {}
    for c in itertools.product(range(KC), repeat=G):
        for z in itertools.product(range(KZ), repeat=G * N):
            zz = np.reshape(z, (G, N))
            lp = prior + np.log(W[list(c)]).sum()
            lp += sum(np.log(THETA[c[g], zz[g, i]]) for g in range(G) for i in range(N))
            lp += stats.norm(mu[zz], SIGMA).logpdf(y).sum()
            out[(c, z)] = lp
    return out


@pytest.fixture
def nested_case():
    rng = np.random.default_rng(4)
    mu = np.array([-2.0, 0.5, 2.5])
    y = rng.normal(0.0, 2.0, (G, N))
    return mu, y, nested_brute_force(mu, y)


def test_nested_plates_log_prob_equals_brute_force(nested_case):
    mu, y, table = nested_case
    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(nested_model())
        got = jd.log_prob(mu=jnp.asarray(mu), y=jnp.asarray(y))
        np.testing.assert_allclose(got, logsumexp(list(table.values())), rtol=0, atol=1e-10)


def test_nested_plates_marginals_and_mode_equal_brute_force(nested_case):
    mu, y, table = nested_case
    keys = list(table)
    lp = np.array([table[k] for k in keys])
    p = np.exp(lp - logsumexp(lp))
    ref_c = np.zeros((G, KC))
    ref_z = np.zeros((G * N, KZ))
    for (c, z), w in zip(keys, p):
        ref_c[np.arange(G), c] += w
        ref_z[np.arange(G * N), z] += w
    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(nested_model())
        post = jd.discrete_posterior(mu=jnp.asarray(mu), y=jnp.asarray(y))
        assert post["c"].shape == (G, 1, KC) and post["z"].shape == (G, N, KZ)
        np.testing.assert_allclose(post["c"][:, 0], ref_c, atol=1e-10)
        np.testing.assert_allclose(post["z"].reshape(G * N, KZ), ref_z, atol=1e-10)
        mode = jd.discrete_mode(mu=jnp.asarray(mu), y=jnp.asarray(y))
        best_c, best_z = keys[int(np.argmax(lp))]
        np.testing.assert_array_equal(mode["c"][:, 0], best_c)
        np.testing.assert_array_equal(mode["z"].reshape(-1), best_z)


def test_nested_plates_joint_draws_follow_the_brute_force_joint(nested_case):
    """Draws of (c, z) jointly: the frequency of each cluster pair and of c_g == argmax pattern
    within 5 binomial standard errors of the brute-force probabilities (fixed seed)."""
    mu, y, table = nested_case
    keys = list(table)
    lp = np.array([table[k] for k in keys])
    p = np.exp(lp - logsumexp(lp))
    draws = 4000
    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(nested_model())
        batch = {"mu": jnp.broadcast_to(mu, (draws, KZ)), "y": jnp.broadcast_to(y, (draws, G, N))}
        got = jd.sample_discrete(batch, seed=7)
    c = np.asarray(got["c"])[:, :, 0]
    z = np.asarray(got["z"]).reshape(draws, G * N)
    # the joint of (c_0, c_1, z_00): a joint statistic, not a product of marginals
    for c0, c1, z00 in itertools.product(range(KC), range(KC), range(KZ)):
        ref = sum(w for (cc, zz), w in zip(keys, p) if cc == (c0, c1) and zz[0] == z00)
        freq = np.mean((c[:, 0] == c0) & (c[:, 1] == c1) & (z[:, 0] == z00))
        se = np.sqrt(ref * (1 - ref) / draws)
        assert abs(freq - ref) <= 5 * se + 1e-3, (c0, c1, z00, freq, ref)
    # z given c: within a group, components follow THETA[c] reweighted by the likelihood
    same = np.mean(c[:, 0] == c[:, 1])
    ref_same = sum(w for (cc, _), w in zip(keys, p) if cc[0] == cc[1])
    assert abs(same - ref_same) <= 5 * np.sqrt(ref_same * (1 - ref_same) / draws) + 1e-3


def test_nested_plates_value_and_grad_at_g100_n100_under_jit():
    """G = N = 100: 3^10^4 joint values, summed in O(K_c K_z G N); timed in
    benchmarks/nested_plates.py.  The gradient agrees with central differences."""
    g, n = 100, 100
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        y = jnp.asarray(rng.normal(0.0, 2.0, (g, n)))
        jd = tfd.JointDistributionCoroutine(nested_model(g, n))
        f = jax.jit(jax.value_and_grad(lambda mu: jd.log_prob(mu=mu, y=y)))
        mu = jnp.array([-2.0, 0.5, 2.5])
        value, grad = f(mu)
        assert np.isfinite(value) and np.all(np.isfinite(grad))
        for i in range(KZ):
            eps = 1e-5
            fd = (f(mu.at[i].add(eps))[0] - f(mu.at[i].add(-eps))[0]) / (2 * eps)
            np.testing.assert_allclose(grad[i], fd, rtol=1e-6)


def test_two_mixtures_of_different_sizes_in_one_model():
    """z1 (5,) and z2 (7,) never share a term: each is summed out on its own plate."""
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=5), rng.normal(1.0, 2.0, size=7)
    w1, w2 = np.array([0.4, 0.6]), np.array([0.2, 0.5, 0.3])
    m1, m2 = np.array([-1.0, 1.0]), np.array([-2.0, 0.0, 3.0])

    def model():
        z1 = yield tfd.Categorical(probs=jnp.broadcast_to(jnp.asarray(w1), (5, 2)), name="z1")
        yield tfd.Normal(jnp.asarray(m1)[z1], 1.0, name="x1")
        z2 = yield tfd.Categorical(probs=jnp.broadcast_to(jnp.asarray(w2), (7, 3)), name="z2")
        yield tfd.Normal(jnp.asarray(m2)[z2], 1.5, name="x2")

    def brute(x, w, m, s):
        return sum(
            logsumexp([np.log(w[k]) + stats.norm(m[k], s).logpdf(xi) for k in range(len(w))])
            for xi in x
        )

    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(model)
        got = jd.log_prob(x1=jnp.asarray(x1), x2=jnp.asarray(x2))
        ref = brute(x1, w1, m1, 1.0) + brute(x2, w2, m2, 1.5)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
        post = jd.discrete_posterior(x1=jnp.asarray(x1), x2=jnp.asarray(x2))
        assert post["z1"].shape == (5, 2) and post["z2"].shape == (7, 3)
        lw = np.log(w2) + stats.norm(m2, 1.5).logpdf(x2[:, None])
        np.testing.assert_allclose(post["z2"], np.exp(lw - logsumexp(lw, 1, keepdims=True)))
        ll = jd.pointwise_log_likelihood(
            {"x1": jnp.asarray(x1), "x2": jnp.asarray(x2)}, ["x1", "x2"]
        )
        lw1 = np.log(w1) + stats.norm(m1, 1.0).logpdf(x1[:, None])
        np.testing.assert_allclose(ll["x1"], logsumexp(lw1, 1), atol=1e-10)
        np.testing.assert_allclose(ll["x2"], logsumexp(lw, 1), atol=1e-10)


def test_annotations_per_item_and_annotator_equal_brute_force():
    """Dawid-Skene: a class per item (I, 1), one label per (item, annotator) from the
    annotator's confusion matrix; exact over K^I class assignments."""
    items, annotators, k = 4, 3, 3
    rng = np.random.default_rng(2)
    confusion = rng.dirichlet(np.ones(k) * 2, size=(annotators, k))  # [j, true, label]
    prevalence = np.array([0.5, 0.3, 0.2])
    labels = rng.integers(0, k, size=(items, annotators))

    def model():
        c = yield tfd.Categorical(probs=jnp.broadcast_to(prevalence, (items, 1, k)), name="c")
        probs = jnp.asarray(confusion)[jnp.arange(annotators), c]
        yield tfd.Categorical(probs=probs, name="labels")

    table = {}
    for c in itertools.product(range(k), repeat=items):
        lp = np.log(prevalence[list(c)]).sum()
        lp += sum(
            np.log(confusion[j, c[i], labels[i, j]])
            for i in range(items)
            for j in range(annotators)
        )
        table[c] = lp
    lp = np.array(list(table.values()))
    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(model)
        np.testing.assert_allclose(
            jd.log_prob(labels=jnp.asarray(labels)), logsumexp(lp), rtol=0, atol=1e-10
        )
        post = jd.discrete_posterior(labels=jnp.asarray(labels))["c"][:, 0]
        p = np.exp(lp - logsumexp(lp))
        ref = np.zeros((items, k))
        for c, w in zip(table, p):
            ref[np.arange(items), c] += w
        np.testing.assert_allclose(post, ref, atol=1e-10)
        ll = jd.pointwise_log_likelihood({"labels": jnp.asarray(labels)}, ["labels"])["labels"]
        assert ll.shape == (items,)  # one term per item: its annotations are dependent
        np.testing.assert_allclose(jnp.sum(ll), logsumexp(lp), atol=1e-10)


def test_replicates_of_each_element_are_an_inner_plate():
    """z (3,) with observations (2, 1, 3): two replicates per element share z (brute force)."""
    mu = np.array([-1.0, 0.0, 2.0])
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 1, 3))

    def model():
        z = yield tfd.Categorical(probs=jnp.full((3, 3), 1 / 3), name="z")
        yield tfd.Normal(jnp.asarray(mu)[z] + jnp.zeros((2, 1, 1)), 1.0, name="x")

    ref = sum(
        logsumexp([np.log(1 / 3) + stats.norm(mu[k], 1).logpdf(x[:, 0, n]).sum() for k in range(3)])
        for n in range(3)
    )
    with jax.enable_x64(True):
        got = tfd.JointDistributionCoroutine(model).log_prob(x=jnp.asarray(x))
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


def test_crossed_plates_raise_instead_of_a_wrong_number():
    """A row choice (G, 1) and a column choice (1, N) scored together do not nest."""

    def model():
        r = yield tfd.Categorical(probs=jnp.full((3, 1, 2), 0.5), name="r")
        s = yield tfd.Categorical(probs=jnp.full((1, 4, 2), 0.5), name="s")
        yield tfd.Normal(1.0 * r + 2.0 * s, 1.0, name="x")

    jd = tfd.JointDistributionCoroutine(model)
    with pytest.raises(EnumerationError, match="cannot be summed out plate by plate"):
        jd.log_prob(x=jnp.zeros((3, 4)))


def test_terms_that_lose_a_plate_dim_raise():
    def model():
        mu = yield tfd.Normal(jnp.zeros(3), 5.0, name="mu")
        z = yield tfd.Categorical(probs=jnp.full((6, 3), 1 / 3), name="z")
        yield tfd.Normal(jnp.sum(mu[z], axis=-1), 1.0, name="total")

    jd = tfd.JointDistributionCoroutine(model)
    with pytest.raises(EnumerationError, match="does not keep their plate dims"):
        jd.log_prob(mu=jnp.zeros(3), total=jnp.zeros(()))
