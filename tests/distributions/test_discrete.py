"""Discrete distributions against scipy.stats: log pmfs (probs and logits), moments, sampling,
values outside the support and enumeration.

Every test runs in float32 and float64 (the ``precision`` fixture).  Parameters are drawn from a
fixed NumPy seed and rounded to the test dtype before being handed to scipy.
"""

import numpy as np
import pytest
import scipy.stats as st

import jax
import jax.numpy as jnp

from coromix.distributions import Bernoulli, Binomial, NegativeBinomial, Poisson

N_DRAWS = 20_000
# rtol as in the brief; the atol covers log pmfs near 0 (sums of O(1-10) log-gamma terms that
# cancel, each with its own rounding error), where only an absolute bound is meaningful.
RTOL = {"float32": 1e-5, "float64": 1e-10}
ATOL = {"float32": 2e-5, "float64": 1e-11}


def _u(rng, low, high, shape):
    return rng.uniform(low, high, size=shape)


def _logit(p):
    return np.log(p) - np.log1p(-p)


# name -> (class, maker rng -> (other parameters, probability-like parameter, its name),
#          scipy frozen distribution from (other parameters, probability-like parameter)).
# The probability-like parameter is passed as probs/logits (rate/log_rate for Poisson).
CASES = {
    "Bernoulli": (Bernoulli,
                  lambda r: ({}, _u(r, 0.05, 0.95, (3, 4))),
                  lambda o, p: st.bernoulli(p)),
    "Binomial": (Binomial,
                 lambda r: ({"total_count": r.integers(1, 20, (3, 1)).astype(float)},
                            _u(r, 0.05, 0.95, (4,))),
                 lambda o, p: st.binom(o["total_count"].astype(int), p)),
    "Poisson": (Poisson,
                lambda r: ({}, _u(r, 0.5, 10.0, (3, 4))),
                lambda o, p: st.poisson(p)),
    "NegativeBinomial": (NegativeBinomial,
                         lambda r: ({"total_count": _u(r, 0.5, 10.0, (3, 1))},
                                    _u(r, 0.1, 0.8, (4,))),
                         lambda o, p: st.nbinom(o["total_count"], 1 - p)),
}
KINDS = {"Poisson": ("rate", "log_rate")}
ALL = [(name, kind) for name in sorted(CASES) for kind in KINDS.get(name, ("probs", "logits"))]


def _setup(name, kind, dtype, seed=0):
    cls, make, to_scipy = CASES[name]
    other, p = make(np.random.default_rng(seed))
    other = {k: np.asarray(v, dtype) for k, v in other.items()}
    natural = kind in ("probs", "rate")
    given = np.asarray(p if natural else (_logit(p) if kind == "logits" else np.log(p)), dtype)
    dist = cls(**{k: jnp.asarray(v) for k, v in other.items()}, **{kind: jnp.asarray(given)})
    g64 = given.astype(np.float64)
    p64 = g64 if natural else (1 / (1 + np.exp(-g64)) if kind == "logits" else np.exp(g64))
    ref = to_scipy({k: v.astype(np.float64) for k, v in other.items()}, p64)
    return dist, ref


@pytest.mark.parametrize("name,kind", ALL)
def test_log_prob_matches_scipy_with_broadcasting(name, kind, precision):
    dist, ref = _setup(name, kind, precision)
    assert dist.batch_shape == (3, 4)
    assert dist.is_discrete
    values = ref.rvs(size=(2, 3, 4), random_state=np.random.default_rng(1))
    values[0, 0] = 0  # include the edge of the support
    lp = dist.log_prob(jnp.asarray(values, jnp.int32))
    assert lp.shape == (2, 3, 4)
    assert lp.dtype == np.dtype(precision)
    np.testing.assert_allclose(np.asarray(lp, np.float64), ref.logpmf(values),
                               rtol=RTOL[precision], atol=ATOL[precision])
    # float-valued observations give the same answer
    lp_float = dist.log_prob(jnp.asarray(values, precision))
    np.testing.assert_allclose(lp_float, lp, rtol=RTOL[precision], atol=ATOL[precision])


@pytest.mark.parametrize("name,kind", ALL)
def test_log_prob_jit_and_vmap(name, kind, precision):
    dist, ref = _setup(name, kind, precision)
    values = ref.rvs(size=(2, 3, 4), random_state=np.random.default_rng(1))
    jitted, mapped = jax.jit(lambda d, v: (d.log_prob(v), jax.vmap(d.log_prob)(v)))(
        dist, jnp.asarray(values, jnp.int32))
    tol = dict(rtol=RTOL[precision], atol=ATOL[precision])
    np.testing.assert_allclose(np.asarray(jitted, np.float64), ref.logpmf(values), **tol)
    np.testing.assert_allclose(np.asarray(mapped, np.float64), ref.logpmf(values), **tol)


@pytest.mark.parametrize("name,kind", ALL)
def test_mean_and_variance_match_scipy(name, kind, precision):
    dist, ref = _setup(name, kind, precision)
    mean, var = dist.mean(), dist.variance()
    assert mean.shape == var.shape == (3, 4)
    assert mean.dtype == np.dtype(precision)
    rtol = 1e-5 if precision == "float32" else 1e-12
    np.testing.assert_allclose(np.asarray(mean, np.float64), ref.mean(), rtol=rtol)
    np.testing.assert_allclose(np.asarray(var, np.float64), ref.var(), rtol=rtol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_sample_moments(name, precision):
    """Sample mean/variance within 5 standard errors: SE(mean) = sqrt(var / n) and
    SE(variance) = sqrt((mu4 - var**2) / n), mu4 = (excess kurtosis + 3) var**2 from scipy.
    Also the empirical pmf at the mode within 5 SE of scipy's."""
    kind = KINDS.get(name, ("probs",))[0]
    dist, ref = _setup(name, kind, precision)
    x = dist.sample(N_DRAWS, seed=11)
    assert x.shape == (N_DRAWS, 3, 4)
    assert x.dtype == jnp.int32
    x = np.asarray(x, np.float64)
    assert np.all(dist.support.check(x))
    n = N_DRAWS
    mean, var, _, kurt = (np.broadcast_to(m, (3, 4)) for m in ref.stats(moments="mvsk"))
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * np.sqrt(var / n))
    np.testing.assert_array_less(np.abs(x.var(0, ddof=1) - var), 5 * var * np.sqrt((kurt + 2) / n))
    mode = np.floor(np.broadcast_to(ref.median(), (3, 4)))
    p_mode = ref.pmf(mode)
    np.testing.assert_array_less(np.abs(np.mean(x == mode, 0) - p_mode),
                                 5 * np.sqrt(p_mode * (1 - p_mode) / n) + 1e-12)


def test_negative_binomial_logits_sampling(precision):
    """The logits parameterization samples from the same law (gamma-Poisson mixture)."""
    dist, ref = _setup("NegativeBinomial", "logits", precision)
    x = np.asarray(dist.sample(N_DRAWS, seed=5), np.float64)
    mean, var = (np.broadcast_to(m, (3, 4)) for m in ref.stats())
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * np.sqrt(var / N_DRAWS))


def test_negative_binomial_is_tfp_parameterization():
    """Successes (probability `probs`) before `total_count` failures: mean n p / (1 - p)."""
    d = NegativeBinomial(3.0, probs=0.25)
    np.testing.assert_allclose(d.mean(), 3 * 0.25 / 0.75, rtol=1e-6)
    np.testing.assert_allclose(d.variance(), 3 * 0.25 / 0.75**2, rtol=1e-6)
    np.testing.assert_allclose(d.log_prob(0), 3 * np.log(0.75), rtol=1e-6)


# values outside the support for each case (the brief: -inf, never NaN)
OUTSIDE = {
    "Bernoulli": [-1.0, 0.5, 2.0],
    "Binomial": [-1.0, 0.5, 100.0],
    "Poisson": [-1.0, 0.5, -0.5],
    "NegativeBinomial": [-1.0, 0.5, -3.0],
}


@pytest.mark.parametrize("name,kind", ALL)
def test_minus_inf_outside_support_and_finite_gradients(name, kind, precision):
    dist, _ = _setup(name, kind, precision)
    out = jnp.asarray(OUTSIDE[name], precision)[:, None, None]
    lp = dist.log_prob(out)
    assert lp.shape == (3, 3, 4)
    assert np.all(np.asarray(lp) == -np.inf), lp
    # gradients w.r.t. the parameters are finite (no NaN from the -inf branch)
    values = jnp.concatenate([out, jnp.zeros((1, 1, 1), precision),
                              jnp.ones((1, 1, 1), precision)])

    def total(d):
        lp = d.log_prob(values)
        return jnp.sum(jnp.where(jnp.isfinite(lp), lp, 0.0))

    grads = jax.tree_util.tree_leaves(jax.jit(jax.grad(total))(dist))
    assert grads and all(np.all(np.isfinite(np.asarray(g))) for g in grads)


@pytest.mark.parametrize("kind", ["probs", "logits"])
def test_extreme_probabilities(kind, precision):
    """probs 0 and 1 (or huge logits) give exact 0 / -inf log pmfs, never NaN."""
    if kind == "probs":
        b = Bernoulli(probs=jnp.array([0.0, 1.0]))
        np.testing.assert_array_equal(b.log_prob(jnp.array([[0], [1]])),
                                      [[0.0, -np.inf], [-np.inf, 0.0]])
        n = Binomial(5.0, probs=jnp.array([0.0, 1.0]))
        # log C(5, 0) = lgamma(6) - lgamma(1) - lgamma(6) is 0 up to rounding
        np.testing.assert_allclose(n.log_prob(jnp.array([[0], [5]])),
                                   [[0.0, -np.inf], [-np.inf, 0.0]], atol=1e-6)
    else:
        b = Bernoulli(logits=jnp.array([-100.0, 100.0]))
        lp = np.asarray(b.log_prob(jnp.array([[0], [1]])))
        assert np.all(np.isfinite(lp))
        np.testing.assert_allclose(lp, [[0.0, -100.0], [-100.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("name,kind", ALL)
def test_grad_matches_finite_difference(name, kind):
    """d log p / d (probs | logits | rate | log_rate) against a central difference, in float64."""
    with jax.enable_x64(True):
        dist, ref = _setup(name, kind, "float64")
        values = jnp.asarray(ref.rvs(size=(3, 4), random_state=np.random.default_rng(2)), float)
        other = {k: getattr(dist, k) for k in dist.parameter_names if k != "_param"}
        cls = type(dist)

        def f(param):
            return jnp.sum(cls(**other, **{kind: param}).log_prob(values))

        param = dist._param
        grad = np.asarray(jax.grad(f)(param))
        h = 1e-6
        for idx in [(0, 0), (1, 2), (2, 3)]:
            idx = idx[-param.ndim:]
            e = np.zeros(param.shape)
            e[idx] = h
            fd = (f(param + e) - f(param - e)) / (2 * h)
            np.testing.assert_allclose(grad[idx], fd, rtol=1e-6, atol=1e-8)


# ---- enumeration ------------------------------------------------------------------------------


def test_bernoulli_enumerate_support(precision):
    d = Bernoulli(probs=jnp.array([0.2, 0.7]))
    assert d.has_enumerate_support
    support = d.enumerate_support()
    np.testing.assert_array_equal(support, [0, 1])
    assert support.dtype == jnp.int32
    total = jax.nn.logsumexp(d.log_prob(support[:, None]), axis=0)
    np.testing.assert_allclose(total, 0.0, atol=1e-6)


def test_binomial_enumerate_support(precision):
    d = Binomial(jnp.full((2, 3), 4.0), probs=jnp.array([0.1, 0.5, 0.9]))
    assert d.has_enumerate_support
    support = d.enumerate_support()
    np.testing.assert_array_equal(support, np.arange(5))
    assert support.dtype == jnp.int32
    total = jax.nn.logsumexp(d.log_prob(support[:, None, None]), axis=0)
    np.testing.assert_allclose(total, 0.0, atol=1e-5)


def test_binomial_enumerate_support_needs_one_concrete_total_count():
    with pytest.raises(ValueError, match="same `total_count`"):
        Binomial(jnp.array([3.0, 4.0]), probs=0.5).enumerate_support()
    with pytest.raises(TypeError, match="concrete `total_count`"):
        jax.jit(lambda n: Binomial(n, probs=0.5).enumerate_support())(3.0)


def test_poisson_and_negative_binomial_have_no_enumerate_support():
    for d in (Poisson(rate=2.0), NegativeBinomial(2.0, probs=0.5)):
        assert d.is_discrete and not d.has_enumerate_support
        with pytest.raises(TypeError, match="no finite support"):
            d.enumerate_support()


def test_exactly_one_of_probs_or_logits():
    with pytest.raises(ValueError, match="exactly one of `logits` or `probs`"):
        Bernoulli()
    with pytest.raises(ValueError, match="exactly one of `logits` or `probs`"):
        Binomial(3.0, logits=0.0, probs=0.5)
    with pytest.raises(ValueError, match="exactly one of `rate` or `log_rate`"):
        Poisson()


def test_probs_logits_properties(precision):
    p = jnp.array([0.2, 0.6])
    for cls, extra in ((Bernoulli, ()), (Binomial, (3.0,)), (NegativeBinomial, (3.0,))):
        a, b = cls(*extra, probs=p), cls(*extra, logits=jnp.log(p / (1 - p)))
        np.testing.assert_allclose(a.logits, b.logits, rtol=1e-5)
        np.testing.assert_allclose(a.probs, b.probs, rtol=1e-5)
    a, b = Poisson(rate=jnp.array([0.5, 3.0])), Poisson(log_rate=jnp.log(jnp.array([0.5, 3.0])))
    np.testing.assert_allclose(a.rate, b.rate, rtol=1e-5)
    np.testing.assert_allclose(a.log_rate, b.log_rate, rtol=1e-5)
