"""HiddenMarkovModel against hmmlearn (score, predict_proba, decode/predict), brute-force
enumeration of all state paths, sampling frequencies, shapes, batching and jit/vmap/grad."""

import importlib
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hmmlearn import hmm as hmmlearn_hmm
from scipy.special import logsumexp

from coromix import constraints
from coromix.distributions.categorical import Categorical
from coromix.distributions.distribution import Distribution
from coromix.distributions.hidden_markov_model import HiddenMarkovModel
from coromix.distributions.normal import Normal
from coromix.utils import as_float


def _optional(module, name):
    """A distribution class written by someone else, or None while it does not exist yet."""
    try:
        return getattr(importlib.import_module(f"coromix.distributions.{module}"), name)
    except (ImportError, AttributeError):
        return None


Independent = _optional("independent", "Independent")
Poisson = _optional("poisson", "Poisson")
MultivariateNormalTriL = _optional("mvn_tril", "MultivariateNormalTriL")


class _IndependentPoisson(Distribution):
    """Test helper: independent Poisson counts, ``rate`` [..., D], event shape [D]."""

    parameter_names = ("rate",)
    is_discrete = True

    def __init__(self, rate):
        self.rate = as_float(rate)
        self._init_common(None, False)

    @property
    def batch_shape(self):
        return tuple(self.rate.shape[:-1])

    @property
    def event_shape(self):
        return tuple(self.rate.shape[-1:])

    @property
    def support(self):
        return constraints.Independent(constraints.nonnegative_integer, 1)

    @property
    def dtype(self):
        return jnp.int32

    def _sample(self, key, shape):
        shape = tuple(shape) + self.event_shape
        return jax.random.poisson(key, jnp.broadcast_to(self.rate, shape), shape, jnp.int32)

    def log_prob(self, value):
        k = jnp.asarray(value, self.rate.dtype)
        return jnp.sum(k * jnp.log(self.rate) - self.rate - jax.scipy.special.gammaln(k + 1), -1)

    def mean(self):
        return self.rate

    def variance(self):
        return self.rate


def independent_poisson(rate):
    if Independent is not None and Poisson is not None:
        return Independent(Poisson(rate=rate), 1)
    return _IndependentPoisson(rate)


def independent_normal(loc, scale):
    if Independent is None:
        pytest.skip("coromix.distributions.independent.Independent not available")
    return Independent(Normal(loc, scale), 1)


# --- helpers ---------------------------------------------------------------------------------


def random_chain(rng, K, concentration=1.0, stay=0.0):
    start = rng.dirichlet(np.full(K, 2.0))
    trans = (1 - stay) * rng.dirichlet(np.full(K, concentration), size=K) + stay * np.eye(K)
    return start, trans / trans.sum(1, keepdims=True)


def simulate_states(rng, start, trans, T):
    z = np.empty(T, np.int64)
    z[0] = rng.choice(len(start), p=start)
    for t in range(1, T):
        z[t] = rng.choice(len(start), p=trans[z[t - 1]])
    return z


def brute_force(log_init, log_trans, log_obs):
    """log p(x) and p(z_t = k | x) by enumerating all K**T paths (float64 NumPy)."""
    T, K = log_obs.shape
    Z = np.array(list(itertools.product(range(K), repeat=T))).reshape(-1, T)
    lt = log_trans if log_trans.ndim == 3 else np.broadcast_to(log_trans, (max(T - 1, 0), K, K))
    score = log_init[Z[:, 0]] + log_obs[np.arange(T), Z].sum(1)
    if T > 1:
        score = score + lt[np.arange(T - 1), Z[:, :-1], Z[:, 1:]].sum(1)
    total = logsumexp(score)
    w = np.exp(score - total)
    gamma = np.stack([np.bincount(Z[:, t], weights=w, minlength=K) for t in range(T)])
    return total, gamma, Z[np.argmax(score)]


def gaussian_hmmlearn(start, trans, means, covars, covariance_type):
    m = hmmlearn_hmm.GaussianHMM(n_components=len(start), covariance_type=covariance_type)
    m.startprob_, m.transmat_, m.means_, m.covars_ = start, trans, means, covars
    return m


# --- against hmmlearn ------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type,D", [("diag", 1), ("spherical", 2)])
def test_gaussian_matches_hmmlearn(x64, covariance_type, D):
    rng = np.random.default_rng(100 + D)
    K, T = 3, 60
    start, trans = random_chain(rng, K, stay=0.5)
    means = rng.normal(scale=2.0, size=(K, D))
    covars = rng.uniform(0.3, 2.0, size=(K,) if covariance_type == "spherical" else (K, D))
    ref = gaussian_hmmlearn(start, trans, means, covars, covariance_type)
    z = simulate_states(rng, start, trans, T)
    X = means[z] + rng.normal(size=(T, D)) * np.sqrt(
        covars[z] if covariance_type == "diag" else covars[z][:, None]
    )
    scale = np.sqrt(covars if covariance_type == "diag" else np.repeat(covars[:, None], D, 1))
    if D == 1:
        obs, x = Normal(means[:, 0], scale[:, 0]), X[:, 0]
    else:
        obs, x = independent_normal(means, scale), X
    d = HiddenMarkovModel(Categorical(probs=start), Categorical(probs=trans), obs, num_steps=T)
    assert d.event_shape == ((T,) if D == 1 else (T, D)) and d.batch_shape == ()
    np.testing.assert_allclose(float(d.log_prob(x)), ref.score(X), rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(d.posterior_marginals(x).probs), ref.predict_proba(X), atol=1e-6
    )
    _, states = ref.decode(X, algorithm="viterbi")
    np.testing.assert_array_equal(np.asarray(d.posterior_mode(x)), states)
    np.testing.assert_array_equal(np.asarray(d.posterior_mode(x)), ref.predict(X))


def test_poisson_matches_hmmlearn(x64):
    rng = np.random.default_rng(7)
    K, D, T = 3, 2, 80
    start, trans = random_chain(rng, K, stay=0.6)
    lambdas = rng.uniform(0.5, 12.0, size=(K, D))
    ref = hmmlearn_hmm.PoissonHMM(n_components=K)
    ref.startprob_, ref.transmat_, ref.lambdas_ = start, trans, lambdas
    z = simulate_states(rng, start, trans, T)
    X = rng.poisson(lambdas[z])
    d = HiddenMarkovModel(
        Categorical(probs=start),
        Categorical(probs=trans),
        independent_poisson(lambdas),
        num_steps=T,
    )
    assert d.event_shape == (T, D)
    np.testing.assert_allclose(float(d.log_prob(X)), ref.score(X), rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(d.posterior_marginals(X).probs), ref.predict_proba(X), atol=1e-6
    )
    np.testing.assert_array_equal(np.asarray(d.posterior_mode(X)), ref.decode(X)[1])
    np.testing.assert_array_equal(np.asarray(d.posterior_mode(X)), ref.predict(X))
    x = np.asarray(d.sample(500, seed=4))
    assert x.shape == (500, T, D) and np.issubdtype(x.dtype, np.integer) and np.all(x >= 0)
    np.testing.assert_allclose(np.asarray(d.mean()).mean(0), x.mean((0, 1)), rtol=0.05)


@pytest.mark.skipif(MultivariateNormalTriL is None, reason="MultivariateNormalTriL not available")
def test_multivariate_normal_matches_hmmlearn_full(x64):
    rng = np.random.default_rng(11)
    K, D, T = 2, 2, 40
    start, trans = random_chain(rng, K, stay=0.5)
    means = rng.normal(scale=2.0, size=(K, D))
    Ls = np.tril(rng.normal(size=(K, D, D)), -1) * 0.5 + np.eye(D) * rng.uniform(
        0.5, 1.5, (K, 1, D)
    )
    covars = Ls @ np.swapaxes(Ls, -1, -2)
    ref = gaussian_hmmlearn(start, trans, means, covars, "full")
    z = simulate_states(rng, start, trans, T)
    X = means[z] + np.einsum("tij,tj->ti", Ls[z], rng.normal(size=(T, D)))
    d = HiddenMarkovModel(
        Categorical(probs=start),
        Categorical(probs=trans),
        MultivariateNormalTriL(means, Ls),
        num_steps=T,
    )
    np.testing.assert_allclose(float(d.log_prob(X)), ref.score(X), rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(d.posterior_marginals(X).probs), ref.predict_proba(X), atol=1e-6
    )
    np.testing.assert_array_equal(np.asarray(d.posterior_mode(X)), ref.decode(X)[1])


# --- against brute force ---------------------------------------------------------------------


def test_tfp_docstring_example():
    d = HiddenMarkovModel(
        Categorical(probs=[0.8, 0.2]),
        Categorical(probs=[[0.7, 0.3], [0.2, 0.8]]),
        Normal(loc=[0.0, 15.0], scale=[5.0, 10.0]),
        num_steps=7,
    )
    np.testing.assert_allclose(
        np.asarray(d.mean()), [3.0, 6.0, 7.5, 8.25, 8.625, 8.8125, 8.90625], rtol=1e-5
    )
    lo = Normal(np.array([0.0, 15.0]), np.array([5.0, 10.0])).log_prob(np.zeros((7, 1)))
    expected, _, _ = brute_force(
        np.log([0.8, 0.2]), np.log([[0.7, 0.3], [0.2, 0.8]]), np.asarray(lo, np.float64)
    )
    np.testing.assert_allclose(float(d.log_prob(jnp.zeros(7))), expected, rtol=1e-5)


@pytest.mark.parametrize("tv_trans,tv_obs", [(False, False), (True, True)])
def test_time_varying_matches_brute_force(x64, tv_trans, tv_obs):
    rng = np.random.default_rng(20 + tv_trans)
    K, T = 3, 6
    start, _ = random_chain(rng, K)
    trans = rng.dirichlet(np.ones(K), size=(T - 1, K) if tv_trans else (K,))
    trans[..., 0, 2] = 0.0  # a forbidden move
    trans /= trans.sum(-1, keepdims=True)
    loc = rng.normal(size=(T, K) if tv_obs else (K,))
    scale = rng.uniform(0.5, 2.0, size=loc.shape)
    x = rng.normal(size=T)
    d = HiddenMarkovModel(
        Categorical(probs=start),
        Categorical(probs=trans),
        Normal(loc, scale),
        num_steps=T,
        time_varying_transition=tv_trans,
        time_varying_observation=tv_obs,
    )
    lo = -0.5 * ((x[:, None] - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)
    with np.errstate(divide="ignore"):
        total, gamma, mode = brute_force(np.log(start), np.log(trans), lo)
    np.testing.assert_allclose(float(d.log_prob(x)), total, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(d.posterior_marginals(x).probs), gamma, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(d.posterior_mode(x)), mode)
    if tv_trans:
        assert d.sample(2, seed=0).shape == (2, T)
    draws = np.asarray(d.posterior_sample(x, 4000, seed=3))
    assert draws.shape == (4000, T) and draws.dtype == np.int32
    freq = np.stack([np.bincount(draws[:, t], minlength=K) for t in range(T)]) / 4000
    assert np.all(np.abs(freq - gamma) <= 4 * np.sqrt(gamma * (1 - gamma) / 4000) + 1 / 4000)
    # moments by brute force over the prior chain
    p = [start]
    for t in range(1, T):
        p.append(p[-1] @ (trans[t - 1] if tv_trans else trans))
    p = np.stack(p)
    locs = np.broadcast_to(loc, (T, K))
    m = (p * locs).sum(1)
    np.testing.assert_allclose(np.asarray(d.mean()), m, rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(d.variance()),
        (p * (np.broadcast_to(scale, (T, K)) ** 2 + locs**2)).sum(1) - m**2,
        rtol=1e-12,
    )


# --- sampling --------------------------------------------------------------------------------


def test_sample_shapes_and_state_frequencies(x64):
    """Well-separated components reveal the sampled states: compare their frequencies with the
    prior marginals and the transition matrix."""
    rng = np.random.default_rng(30)
    K, T, n = 3, 5, 4000
    start, trans = random_chain(rng, K, stay=0.3)
    d = HiddenMarkovModel(
        Categorical(probs=start),
        Categorical(probs=trans),
        Normal(loc=[0.0, 100.0, 200.0], scale=1.0),
        num_steps=T,
    )
    x = d.sample((n // 4, 4), seed=1)
    assert x.shape == (n // 4, 4, T) and x.dtype == d.dtype
    assert d.log_prob(x).shape == (n // 4, 4)
    z = np.rint(np.asarray(x).reshape(n, T) / 100).astype(int)
    p = start
    for t in range(T):
        f = np.bincount(z[:, t], minlength=K) / n
        assert np.all(np.abs(f - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-3), (t, f, p)
        p = p @ trans
    counts = np.zeros((K, K))
    np.add.at(counts, (z[:, :-1].ravel(), z[:, 1:].ravel()), 1)
    rows = counts.sum(1, keepdims=True)
    assert np.all(np.abs(counts / rows - trans) <= 4 * np.sqrt(trans * (1 - trans) / rows) + 1e-3)


# --- batches, transformations ----------------------------------------------------------------


def test_batched_parameters_broadcast(x64):
    rng = np.random.default_rng(40)
    B, K, T = 3, 2, 6
    start = rng.dirichlet(np.ones(K), size=B)  # [B, K]
    trans = rng.dirichlet(np.ones(K), size=K)  # [K, K], shared
    loc = rng.normal(size=(B, K))
    d = HiddenMarkovModel(
        Categorical(probs=start), Categorical(probs=trans), Normal(loc, 1.0), num_steps=T
    )
    assert d.batch_shape == (B,) and d.event_shape == (T,)
    x = rng.normal(size=(4, 1, T))
    lp = d.log_prob(x)
    assert lp.shape == (4, B)
    for b in range(B):
        db = HiddenMarkovModel(
            Categorical(probs=start[b]), Categorical(probs=trans), Normal(loc[b], 1.0), num_steps=T
        )
        np.testing.assert_allclose(
            np.asarray(lp[:, b]), np.asarray(db.log_prob(x[:, 0])), rtol=1e-12
        )
        np.testing.assert_allclose(
            np.asarray(d.posterior_marginals(x[0, 0]).probs[b]),
            np.asarray(db.posterior_marginals(x[0, 0]).probs),
            atol=1e-12,
        )
    assert d.sample(5, seed=0).shape == (5, B, T)
    assert d.posterior_mode(x).shape == (4, B, T)
    assert d.posterior_sample(x[0, 0], (2, 7), seed=1).shape == (2, 7, B, T)


def test_jit_vmap_grad(x64):
    rng = np.random.default_rng(50)
    K, T = 3, 30
    start, trans = random_chain(rng, K, stay=0.5)
    x = rng.normal(size=T)

    def log_lik(loc, x):
        d = HiddenMarkovModel(
            Categorical(probs=start), Categorical(probs=trans), Normal(loc, 1.0), num_steps=T
        )
        return d.log_prob(x)

    loc = jnp.array([-1.0, 0.0, 2.0])
    v = jax.jit(log_lik)(loc, x)
    np.testing.assert_allclose(float(v), float(log_lik(loc, x)), rtol=1e-12)
    g = jax.jit(jax.grad(log_lik))(loc, x)
    eps = 1e-6
    fd = [
        (float(log_lik(loc.at[k].add(eps), x)) - float(log_lik(loc.at[k].add(-eps), x))) / (2 * eps)
        for k in range(K)
    ]
    np.testing.assert_allclose(np.asarray(g), fd, rtol=1e-6, atol=1e-8)
    # grad wrt loc = sum_t p(z_t = k | x) (x_t - loc_k)
    gamma = (
        HiddenMarkovModel(
            Categorical(probs=start), Categorical(probs=trans), Normal(loc, 1.0), num_steps=T
        )
        .posterior_marginals(x)
        .probs
    )
    np.testing.assert_allclose(
        np.asarray(g), np.sum(np.asarray(gamma) * (x[:, None] - loc), 0), rtol=1e-10
    )
    locs = jnp.stack([loc, loc + 1.0, loc * 2.0])
    vm = jax.jit(jax.vmap(log_lik, (0, None)))(locs, x)
    np.testing.assert_allclose(np.asarray(vm), [float(log_lik(l, x)) for l in locs], rtol=1e-12)
    # the distribution itself passes through jit as a pytree
    d = HiddenMarkovModel(
        Categorical(probs=start),
        Categorical(probs=trans),
        Normal(loc, 1.0),
        num_steps=T,
        time_varying_transition=False,
    )
    leaves, tree = jax.tree_util.tree_flatten(d)
    d2 = jax.tree_util.tree_unflatten(tree, leaves)
    assert d2.num_steps == T and not d2.time_varying_transition and d2.event_shape == (T,)
    np.testing.assert_allclose(
        float(jax.jit(lambda d, x: d.log_prob(x))(d, x)), float(v), rtol=1e-12
    )
    s = jax.jit(lambda d, k: d.sample(4, seed=k))(d, jax.random.key(0))
    assert s.shape == (4, T)


def test_float32_long_series_matches_float64():
    """float32 HMM log_prob at T = 1e5 within 0.05 nats of float64 on the same (rounded) inputs."""
    rng = np.random.default_rng(60)
    K, T = 3, 100_000
    start, trans = random_chain(rng, K, stay=0.85)
    loc, scale = np.array([-2.0, 0.5, 3.0]), np.array([1.0, 0.6, 1.5])
    z = simulate_states(rng, start, trans, T)
    x = rng.normal(loc[z], scale[z]).astype(np.float32)
    params = [a.astype(np.float32) for a in (start, trans, loc, scale)]

    def log_prob(s, tr, lc, sc, x):
        return HiddenMarkovModel(
            Categorical(logits=jnp.log(s)),
            Categorical(logits=jnp.log(tr)),
            Normal(lc, sc),
            num_steps=T,
        ).log_prob(x)

    with jax.enable_x64(True):
        ref = float(log_prob(*(p.astype(np.float64) for p in params), x.astype(np.float64)))
    with jax.enable_x64(False):
        got = jax.jit(log_prob)(*params, x)
        assert got.dtype == jnp.float32
    assert abs(float(got) - ref) < 0.05, (float(got), ref)


# --- errors ----------------------------------------------------------------------------------


def test_structure_errors():
    init, trans = Categorical(probs=[0.5, 0.5]), Categorical(probs=[[0.9, 0.1], [0.2, 0.8]])
    with pytest.raises(ValueError, match="categories"):
        HiddenMarkovModel(Categorical(probs=[0.2, 0.3, 0.5]), trans, Normal([0.0, 1.0], 1.0), 4)
    with pytest.raises(ValueError, match="transition_distribution batch shape"):
        HiddenMarkovModel(init, Categorical(probs=[0.9, 0.1]), Normal([0.0, 1.0], 1.0), 4)
    with pytest.raises(ValueError, match="transition_distribution batch shape"):
        HiddenMarkovModel(init, trans, Normal([0.0, 1.0], 1.0), 4, time_varying_transition=True)
    with pytest.raises(ValueError, match="observation_distribution batch shape"):
        HiddenMarkovModel(init, trans, Normal([0.0, 1.0, 2.0], 1.0), 4)
    with pytest.raises(ValueError, match="num_steps"):
        HiddenMarkovModel(init, trans, Normal([0.0, 1.0], 1.0), 0)
    with pytest.raises(TypeError, match="Categorical"):
        HiddenMarkovModel(Normal(0.0, 1.0), trans, Normal([0.0, 1.0], 1.0), 4)
    d = HiddenMarkovModel(init, trans, Normal([0.0, 1.0], 1.0), 4)
    with pytest.raises(ValueError, match="observations must have shape"):
        d.log_prob(jnp.zeros(5))
    tv = HiddenMarkovModel(
        init,
        Categorical(probs=jnp.full((3, 2, 2), 0.5)),
        Normal(jnp.zeros((4, 2)), 1.0),
        4,
        time_varying_transition=True,
        time_varying_observation=True,
    )
    assert tv.batch_shape == () and tv.event_shape == (4,)
