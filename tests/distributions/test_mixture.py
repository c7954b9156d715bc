"""MixtureSameFamily and Mixture against scipy: densities, sampling, moments, gradients, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from coromix import constraints, transforms
from coromix.distributions.categorical import Categorical
from coromix.distributions.distribution import Distribution
from coromix.distributions.exponential import Exponential
from coromix.distributions.gamma import Gamma
from coromix.distributions.half_normal import HalfNormal
from coromix.distributions.independent import Independent
from coromix.distributions.laplace import Laplace
from coromix.distributions.mixture import Mixture
from coromix.distributions.mixture_same_family import MixtureSameFamily
from coromix.distributions.normal import Normal
from coromix.distributions.poisson import Poisson
from coromix.distributions.uniform import Uniform
from coromix.utils import promote_floats


def _tol(precision):
    return (
        {"rtol": 1e-5, "atol": 1e-6} if precision == "float32" else {"rtol": 1e-10, "atol": 1e-12}
    )


def _ref_mixture_logpdf(x, w, locs, scales):
    """logsumexp_k(log w_k + norm.logpdf(x, locs_k, scales_k)); component axis last in w/locs."""
    x = np.asarray(x, np.float64)[..., None]
    return special.logsumexp(np.log(w) + stats.norm.logpdf(x, locs, scales), axis=-1)


def _ref_mixture_cdf(x, w, locs, scales):
    return np.sum(w * stats.norm.cdf(np.asarray(x, np.float64)[..., None], locs, scales), axis=-1)


def _check_moments(draws, mean, var, axis=0):
    """Sample mean and variance within 5 standard errors of the closed forms."""
    draws = np.asarray(draws, np.float64)
    n = draws.shape[axis]
    m_hat = draws.mean(axis)
    v_hat = draws.var(axis, ddof=1)
    m4 = np.mean((draws - m_hat) ** 4, axis)
    se_mean = np.sqrt(np.asarray(var, np.float64) / n)
    se_var = np.sqrt(np.maximum(m4 - v_hat**2, 1e-12) / n)
    np.testing.assert_array_less(np.abs(m_hat - np.asarray(mean)), 5 * se_mean)
    np.testing.assert_array_less(np.abs(v_hat - np.asarray(var)), 5 * se_var)


class _DiagNormal(Distribution):
    """Test-only vector-event Normal (last axis is the event), independent of coromix's own
    ``Independent``, so the mixtures' event-axis handling is checked against a minimal component."""

    parameter_names = ("loc", "scale")

    def __init__(self, loc, scale, validate_args=True, name=None):
        self.loc, self.scale = promote_floats(loc, scale)
        self._init_common(name, validate_args)

    @property
    def batch_shape(self):
        return tuple(jnp.broadcast_shapes(self.loc.shape, self.scale.shape)[:-1])

    @property
    def event_shape(self):
        return tuple(jnp.broadcast_shapes(self.loc.shape, self.scale.shape)[-1:])

    @property
    def support(self):
        return constraints.real_vector

    def _sample(self, key, shape):
        return self.loc + self.scale * jax.random.normal(key, shape + self.event_shape, self.dtype)

    def log_prob(self, value):
        return jnp.sum(Normal(self.loc, self.scale).log_prob(value), axis=-1)

    def mean(self):
        return jnp.broadcast_to(self.loc, self.batch_shape + self.event_shape)

    def variance(self):
        return jnp.broadcast_to(self.scale**2, self.batch_shape + self.event_shape)


# Jitted entry points: one compilation per mixture structure and shape is cheaper than eager
# op-by-op dispatch, and exercises jit.  A few tests below call the methods eagerly on purpose.
@jax.jit
def _log_prob(d, x):
    return d.log_prob(x)


_mean = jax.jit(lambda d: d.mean())
_var = jax.jit(lambda d: d.variance())
_sample_jit = jax.jit(lambda d, key, n: d.sample(n, seed=key), static_argnums=2)


def _sample(d, n, seed):
    return _sample_jit(d, jax.random.key(seed), n)


W = np.array([0.2, 0.5, 0.3])
LOCS = np.array([-2.0, 0.5, 3.0])
SCALES = np.array([0.7, 1.0, 1.5])


def _msf(w=W, locs=LOCS, scales=SCALES):
    return MixtureSameFamily(Categorical(probs=w), Normal(locs, scales))


# --- MixtureSameFamily: densities ----------------------------------------------------------------


def test_msf_log_prob_scalar_batch_and_sample_shapes(precision):
    d = _msf()
    assert d.batch_shape == () and d.event_shape == () and d.num_components == 3
    x = np.linspace(-5, 6, 20).reshape(4, 5)
    lp = d.log_prob(x)
    assert lp.shape == (4, 5) and lp.dtype == jnp.dtype(precision)
    np.testing.assert_allclose(lp, _ref_mixture_logpdf(x, W, LOCS, SCALES), **_tol(precision))
    np.testing.assert_allclose(
        d.prob(1.0), np.exp(_ref_mixture_logpdf(1.0, W, LOCS, SCALES)), **_tol(precision)
    )


def test_msf_log_prob_batch_of_mixtures(precision):
    w = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])  # B=(2,), K=3
    locs = np.array([[-2.0, 0.5, 3.0], [1.0, -1.0, 4.0]])
    scales = np.array([[0.7, 1.0, 1.5], [2.0, 0.3, 1.0]])
    d = MixtureSameFamily(Categorical(probs=w), Normal(locs, scales))
    assert d.batch_shape == (2,) and d.event_shape == ()
    x = np.random.default_rng(0).normal(size=(7, 3, 2)) * 3  # sample shape (7, 3) + B
    lp = _log_prob(d, x)
    assert lp.shape == (7, 3, 2)
    np.testing.assert_allclose(lp, _ref_mixture_logpdf(x, w, locs, scales), **_tol(precision))
    # a scalar value broadcasts against the batch
    np.testing.assert_allclose(
        _log_prob(d, 0.3), _ref_mixture_logpdf(np.full(2, 0.3), w, locs, scales), **_tol(precision)
    )
    # logits parameterization gives the same mixture
    d2 = MixtureSameFamily(Categorical(logits=np.log(w) + 1.7), Normal(locs, scales))
    np.testing.assert_allclose(_log_prob(d2, x), lp, **_tol(precision))


def test_msf_mixture_batch_broadcasts_against_components():
    locs = np.array([[-2.0, 0.5, 3.0], [1.0, -1.0, 4.0]])
    d = MixtureSameFamily(Categorical(probs=W), Normal(locs, 1.0))  # mixture batch () vs (2,)
    assert d.batch_shape == (2,)
    x = np.array([0.1, 2.0])
    np.testing.assert_allclose(d.log_prob(x), _ref_mixture_logpdf(x, W, locs, 1.0), rtol=1e-5)
    assert d.sample(4, seed=0).shape == (4, 2)
    assert d.mean().shape == (2,) and d.variance().shape == (2,)


def test_msf_zero_weight_and_extreme_values_are_stable(precision):
    d = _msf(w=[0.0, 0.4, 0.6])
    x = np.array([-60.0, 0.0, 80.0])  # far tails: no underflow to -inf
    lp = np.asarray(d.log_prob(x))
    assert np.all(np.isfinite(lp))
    ref = _ref_mixture_logpdf(x, np.array([1e-300, 0.4, 0.6]), LOCS, SCALES)
    np.testing.assert_allclose(lp, ref, **_tol(precision))


# --- MixtureSameFamily: sampling and moments -----------------------------------------------------


def test_msf_moments_closed_form(precision):
    d = _msf()
    m = np.sum(W * LOCS)
    v = np.sum(W * (SCALES**2 + (LOCS - m) ** 2))
    np.testing.assert_allclose(d.mean(), m, **_tol(precision))
    np.testing.assert_allclose(d.variance(), v, **_tol(precision))
    np.testing.assert_allclose(d.stddev(), np.sqrt(v), **_tol(precision))


def test_msf_sample_moments_and_ks(precision):
    d = _msf()
    x = _sample(d, 20000, seed=1)
    assert x.shape == (20000,) and x.dtype == jnp.dtype(precision)
    _check_moments(x, _mean(d), _var(d))
    cdf = lambda t: _ref_mixture_cdf(t, W, LOCS, SCALES)
    assert stats.kstest(np.asarray(x, np.float64), cdf).pvalue > 0.01


def test_msf_batch_sample_moments_and_ks():
    w = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    locs = np.array([[-2.0, 0.5, 3.0], [1.0, -1.0, 4.0]])
    scales = np.array([[0.7, 1.0, 1.5], [2.0, 0.3, 1.0]])
    d = MixtureSameFamily(Categorical(probs=w), Normal(locs, scales))
    x = np.asarray(_sample(d, (10000, 2), seed=2), np.float64)
    assert x.shape == (10000, 2, 2)
    x = x.reshape(20000, 2)
    _check_moments(x, _mean(d), _var(d))
    for b in range(2):
        cdf = lambda t, b=b: _ref_mixture_cdf(t, w[b], locs[b], scales[b])
        assert stats.kstest(x[:, b], cdf).pvalue > 0.01


# --- MixtureSameFamily: vector events ------------------------------------------------------------

VW = np.array([0.3, 0.7])
VLOCS = np.array([[-1.0, 2.0, 0.0], [1.5, -0.5, 3.0]])  # K=2 components, event D=3
VSCALES = np.array([[1.0, 0.5, 2.0], [0.8, 1.2, 0.6]])


def _ref_vector_logpdf(x):
    x = np.asarray(x, np.float64)[..., None, :]  # ... + [1] + [D]
    comp = stats.norm.logpdf(x, VLOCS, VSCALES).sum(-1)  # ... + [K]
    return special.logsumexp(np.log(VW) + comp, axis=-1)


def _check_vector_mixture(d, precision):
    assert d.batch_shape == () and d.event_shape == (3,)
    x = np.random.default_rng(5).normal(size=(4, 2, 3)) * 2
    lp = _log_prob(d, x)
    assert lp.shape == (4, 2)
    np.testing.assert_allclose(lp, _ref_vector_logpdf(x), **_tol(precision))
    m = VW @ VLOCS
    v = VW @ (VSCALES**2 + (VLOCS - m) ** 2)  # elementwise total variance
    np.testing.assert_allclose(_mean(d), m, **_tol(precision))
    np.testing.assert_allclose(_var(d), v, **_tol(precision))
    draws = _sample(d, 20000, seed=6)
    assert draws.shape == (20000, 3)
    _check_moments(draws, m, v)
    # the coordinates of one draw come from one component: the first coordinate's marginal
    # is the mixture of the components' first coordinates
    cdf = lambda t: _ref_mixture_cdf(t, VW, VLOCS[:, 0], VSCALES[:, 0])
    assert stats.kstest(np.asarray(draws[:, 0], np.float64), cdf).pvalue > 0.01
    # and the draws are correlated across coordinates as a mixture implies
    cov01 = np.sum(VW * (VLOCS[:, 0] - m[0]) * (VLOCS[:, 1] - m[1]))
    assert abs(np.cov(np.asarray(draws[:, :2], np.float64).T)[0, 1] - cov01) < 0.1


def test_msf_vector_event_with_test_diag_normal(precision):
    d = MixtureSameFamily(Categorical(probs=VW), _DiagNormal(VLOCS, VSCALES))
    _check_vector_mixture(d, precision)
    assert d.support is constraints.real_vector


def test_msf_vector_event_with_independent(precision):
    d = MixtureSameFamily(Categorical(probs=VW), Independent(Normal(VLOCS, VSCALES), 1))
    _check_vector_mixture(d, precision)


# --- Mixture of possibly different families ------------------------------------------------------


def test_mixture_of_two_normals_with_different_parameter_shapes(precision):
    w = np.array([0.35, 0.65])
    c0 = Normal(np.array([-1.0, 0.0]), 0.5)  # loc (2,), scale ()
    c1 = Normal(2.0, np.array([1.0, 2.0]))  # loc (), scale (2,)
    d = Mixture(Categorical(probs=w), [c0, c1])
    assert d.batch_shape == (2,) and d.event_shape == () and d.num_components == 2
    locs = np.array([[-1.0, 2.0], [0.0, 2.0]])  # B + [K]
    scales = np.array([[0.5, 1.0], [0.5, 2.0]])
    x = np.random.default_rng(7).normal(size=(6, 2)) * 2
    lp = _log_prob(d, x)
    assert lp.shape == (6, 2) and lp.dtype == jnp.dtype(precision)
    np.testing.assert_allclose(lp, _ref_mixture_logpdf(x, w, locs, scales), **_tol(precision))
    m = np.sum(w * locs, -1)
    v = np.sum(w * (scales**2 + (locs - m[:, None]) ** 2), -1)
    np.testing.assert_allclose(_mean(d), m, **_tol(precision))
    np.testing.assert_allclose(_var(d), v, **_tol(precision))
    draws = _sample(d, 20000, seed=8)
    assert draws.shape == (20000, 2) and draws.dtype == jnp.dtype(precision)
    _check_moments(draws, m, v)
    for b in range(2):
        cdf = lambda t, b=b: _ref_mixture_cdf(t, w, locs[b], scales[b])
        assert stats.kstest(np.asarray(draws[:, b], np.float64), cdf).pvalue > 0.01
    assert d.support is constraints.real and not d.is_discrete


def test_mixture_equals_mixture_same_family():
    precision = "float32"
    d1 = Mixture(Categorical(probs=W), [Normal(l, s) for l, s in zip(LOCS, SCALES)])
    d2 = _msf()
    x = np.linspace(-4, 5, 11)
    np.testing.assert_allclose(_log_prob(d1, x), _log_prob(d2, x), **_tol(precision))
    np.testing.assert_allclose(_mean(d1), _mean(d2), **_tol(precision))
    np.testing.assert_allclose(_var(d1), _var(d2), **_tol(precision))


def test_mixture_normal_with_other_family(precision):
    w = np.array([0.4, 0.6])
    other, ref = Laplace(2.0, 0.8), stats.laplace(2.0, 0.8)
    d = Mixture(Categorical(probs=w), [Normal(-1.0, 1.0), other])
    x = np.linspace(-4, 6, 13)
    expected = special.logsumexp(
        np.log(w) + np.stack([stats.norm.logpdf(x, -1.0, 1.0), ref.logpdf(x)], -1), axis=-1
    )
    np.testing.assert_allclose(_log_prob(d, x), expected, **_tol(precision))
    m = w[0] * -1.0 + w[1] * ref.mean()
    v = w[0] * (1.0 + (-1.0 - m) ** 2) + w[1] * (ref.var() + (ref.mean() - m) ** 2)
    np.testing.assert_allclose(_mean(d), m, **_tol(precision))
    np.testing.assert_allclose(_var(d), v, **_tol(precision))
    draws = np.asarray(_sample(d, 20000, seed=10), np.float64)
    _check_moments(draws, m, v)
    cdf = lambda t: w[0] * stats.norm.cdf(t, -1.0, 1.0) + w[1] * ref.cdf(t)
    assert stats.kstest(draws, cdf).pvalue > 0.01


def test_mixture_vector_event(precision):
    comps = [_DiagNormal(VLOCS[k], VSCALES[k]) for k in range(2)]
    _check_vector_mixture(Mixture(Categorical(probs=VW), comps), precision)


# --- discrete components and supports ------------------------------------------------------------


def test_msf_of_poissons_is_discrete(precision):
    rates = np.array([1.5, 8.0])
    w = np.array([0.3, 0.7])
    d = MixtureSameFamily(Categorical(probs=w), Poisson(rate=rates))
    assert d.is_discrete and d.support is constraints.nonnegative_integer
    k = np.arange(0, 25)
    ref = special.logsumexp(np.log(w) + stats.poisson.logpmf(k[:, None], rates), axis=-1)
    np.testing.assert_allclose(_log_prob(d, k), ref, **_tol(precision))
    m, v = np.sum(w * rates), np.sum(w * (rates + (rates - np.sum(w * rates)) ** 2))
    np.testing.assert_allclose(_mean(d), m, **_tol(precision))
    np.testing.assert_allclose(_var(d), v, **_tol(precision))
    if precision == "float64":  # one precision is enough (Poisson sampling compiles slowly)
        draws = _sample(d, 20000, seed=11)
        assert jnp.issubdtype(draws.dtype, jnp.integer)
        _check_moments(draws, m, v)
    mix = Mixture(Categorical(probs=w), [Poisson(rate=1.5), Poisson(rate=8.0)])
    assert mix.is_discrete and mix.support is constraints.nonnegative_integer
    np.testing.assert_allclose(_log_prob(mix, k), ref, **_tol(precision))


def test_supports():
    cat = Categorical(probs=[0.5, 0.5])
    # same support: passed through; biject_to understands it
    assert Mixture(cat, [Normal(0.0, 1.0), Laplace(1.0, 1.0)]).support is constraints.real
    assert not Mixture(cat, [Normal(0.0, 1.0), Laplace(1.0, 1.0)]).is_discrete
    assert Mixture(cat, [Gamma(2.0, 1.0), Exponential(1.0)]).support is constraints.positive
    # one component on the real line: the mixture is on the real line
    assert Mixture(cat, [Exponential(1.0), Normal(0.0, 1.0)]).support is constraints.real
    assert not Mixture(cat, [Normal(0.0, 1.0), Poisson(rate=2.0)]).is_discrete
    # interval-like supports: the smallest interval-like support holding both
    s = Mixture(cat, [Uniform(0.0, 1.0), Uniform(2.0, 5.0)]).support
    assert isinstance(s, constraints.Interval) and float(s.low) == 0.0 and float(s.high) == 5.0
    s = Mixture(cat, [Uniform(-1.0, 1.0), HalfNormal(1.0)]).support
    assert isinstance(s, constraints.GreaterThan) and float(s.lower) == -1.0
    transforms.biject_to(s)
    # MixtureSameFamily: bounds that vary by component are merged over the component axis
    d = MixtureSameFamily(
        Categorical(probs=np.full((2, 3), 1 / 3)),
        Uniform(np.array([[0.0, 1.0, 2.0], [-1.0, 0.0, 0.5]]), 4.0),
    )
    s = d.support
    assert isinstance(s, constraints.Interval)
    np.testing.assert_allclose(s.low, [0.0, -1.0])
    np.testing.assert_array_equal(s.check(np.array([0.5, -0.5])), [True, True])
    d = MixtureSameFamily(
        Categorical(probs=[0.5, 0.5]),
        Independent(Uniform(np.array([[0.0, 1.0], [2.0, -3.0]]), 5.0), 1),
    )
    s = d.support
    assert isinstance(s, constraints.Independent) and s.event_ndim == 1
    np.testing.assert_allclose(s.base.low, [0.0, -3.0])
    transforms.biject_to(s)


# --- JAX transformations -------------------------------------------------------------------------


def test_pytree_jit_vmap():
    precision = "float32"
    msf = _msf()
    mix = Mixture(Categorical(probs=W), [Normal(l, s) for l, s in zip(LOCS, SCALES)])
    x = np.linspace(-3, 3, 5)
    for d, n_leaves in ((msf, 3), (mix, 7)):  # Categorical probs + (loc, scale) per Normal
        leaves, tree = jax.tree_util.tree_flatten(d)
        assert len(leaves) == n_leaves and all(isinstance(l, jax.Array) for l in leaves)
        d2 = jax.tree_util.tree_unflatten(tree, leaves)
        assert type(d2) is type(d) and d2.batch_shape == d.batch_shape
        np.testing.assert_allclose(_log_prob(d, x), d.log_prob(x), **_tol(precision))
        assert _sample(d, 3, seed=0).shape == (3,)
    # same seed, same draws; different seeds, different draws
    np.testing.assert_array_equal(_sample(msf, 3, seed=0), _sample(msf, 3, seed=0))
    assert not np.array_equal(_sample(msf, 3, seed=0), _sample(msf, 3, seed=1))
    # vmap over a stack of mixtures (built inside vmap, and passed in as a batched pytree)
    locs = np.stack([LOCS, LOCS + 1.0])
    f = jax.jit(jax.vmap(lambda l: _msf(locs=l).log_prob(0.5)))
    np.testing.assert_allclose(
        f(locs), _ref_mixture_logpdf(np.full(2, 0.5), W, locs, SCALES), **_tol(precision)
    )
    batched = jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), msf)
    out = jax.jit(jax.vmap(lambda d: d.log_prob(0.5)))(batched)
    np.testing.assert_allclose(
        out, np.full(2, _ref_mixture_logpdf(0.5, W, LOCS, SCALES)), **_tol(precision)
    )
    mix_batched = jax.tree_util.tree_map(lambda a: jnp.stack([a, a, a]), mix)
    assert jax.vmap(lambda d: d.mean())(mix_batched).shape == (3,)


def test_grad_log_prob_wrt_locs_matches_finite_differences():
    with jax.enable_x64(True):
        x = np.array([-1.3, 0.2, 2.9])

        def f_msf(locs):
            return jnp.sum(_msf(locs=locs).log_prob(x))

        def f_mix(locs):
            comps = [Normal(locs[k], SCALES[k]) for k in range(3)]
            return jnp.sum(Mixture(Categorical(probs=W), comps).log_prob(x))

        def f_ref(locs):
            return np.sum(_ref_mixture_logpdf(x, W, locs, SCALES))

        h = 1e-6
        fd = np.array([(f_ref(LOCS + h * e) - f_ref(LOCS - h * e)) / (2 * h) for e in np.eye(3)])
        for f in (f_msf, f_mix):
            g = jax.jit(jax.grad(f))(jnp.asarray(LOCS))
            assert g.dtype == jnp.float64
            np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)

        # gradient w.r.t. the weights' logits too
        def f_logits(logits):
            d = MixtureSameFamily(Categorical(logits=logits), Normal(LOCS, SCALES))
            return jnp.sum(d.log_prob(x))

        g = jax.jit(jax.grad(f_logits))
        logits = np.log(W)
        ref = lambda l: np.sum(_ref_mixture_logpdf(x, special.softmax(l), LOCS, SCALES))
        fd = np.array([(ref(logits + h * e) - ref(logits - h * e)) / (2 * h) for e in np.eye(3)])
        np.testing.assert_allclose(g(jnp.asarray(logits)), fd, rtol=1e-6, atol=1e-8)


# --- errors --------------------------------------------------------------------------------------


def test_msf_errors():
    with pytest.raises(ValueError, match=r"K = 2.*batch_shape \(3,\)"):
        MixtureSameFamily(Categorical(probs=[0.5, 0.5]), Normal(LOCS, SCALES))
    with pytest.raises(ValueError, match=r"K = 3.*batch_shape \(\)"):
        MixtureSameFamily(Categorical(probs=W), Normal(0.0, 1.0))
    with pytest.raises(ValueError, match=r"mixture_distribution batch_shape \(4,\).*\(2,\)"):
        MixtureSameFamily(Categorical(probs=np.full((4, 3), 1 / 3)), Normal(np.zeros((2, 3)), 1.0))
    with pytest.raises(TypeError, match="mixture_distribution"):
        MixtureSameFamily(Normal(0.0, 1.0), Normal(LOCS, SCALES))


def test_mixture_errors():
    cat = Categorical(probs=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"K = 2 categories.*3 components"):
        Mixture(cat, [Normal(0.0, 1.0)] * 3)
    with pytest.raises(
        ValueError,
        match=r"components\[1\].*batch_shape \(2,\).*components\[0\].*"
        r"batch_shape \(\)",
    ):
        Mixture(cat, [Normal(0.0, 1.0), Normal([0.0, 1.0], 1.0)])
    with pytest.raises(ValueError, match=r"components\[1\].*event_shape \(3,\).*event_shape \(\)"):
        Mixture(cat, [Normal(0.0, 1.0), _DiagNormal(np.zeros(3), 1.0)])
    with pytest.raises(ValueError, match=r"`cat` batch_shape \(3,\).*\(2,\)"):
        Mixture(Categorical(probs=np.full((3, 2), 0.5)), [Normal([0.0, 1.0], 1.0)] * 2)
    with pytest.raises(TypeError, match="list or tuple"):
        Mixture(cat, Normal([0.0, 1.0], 1.0))
    with pytest.raises(TypeError, match=r"components\[0\]"):
        Mixture(cat, [1.0, Normal(0.0, 1.0)])
