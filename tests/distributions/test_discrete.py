"""Discrete distributions against scipy.stats: log pmfs (probs and logits), moments, sampling,
values outside the support and enumeration.

Every test runs in float32 and float64 (the ``precision`` fixture).  Parameters are drawn from a
fixed NumPy seed and rounded to the test dtype before being handed to scipy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

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
    "Bernoulli": (
        Bernoulli,
        lambda r: ({}, _u(r, 0.05, 0.95, (3, 4))),
        lambda o, p: st.bernoulli(p),
    ),
    "Binomial": (
        Binomial,
        lambda r: (
            {"total_count": r.integers(1, 20, (3, 1)).astype(float)},
            _u(r, 0.05, 0.95, (4,)),
        ),
        lambda o, p: st.binom(o["total_count"].astype(int), p),
    ),
    "Poisson": (Poisson, lambda r: ({}, _u(r, 0.5, 10.0, (3, 4))), lambda o, p: st.poisson(p)),
    "NegativeBinomial": (
        NegativeBinomial,
        lambda r: ({"total_count": _u(r, 0.5, 10.0, (3, 1))}, _u(r, 0.1, 0.8, (4,))),
        lambda o, p: st.nbinom(o["total_count"], 1 - p),
    ),
}
KINDS = {"Poisson": ("rate", "log_rate")}
ALL = [(name, kind) for name in sorted(CASES) for kind in KINDS.get(name, ("probs", "logits"))]


def _setup(name, kind, dtype, seed=0):
    cls, make, to_scipy = CASES[name]
    other, p = make(np.random.default_rng(seed))
    other = {k: np.asarray(v, dtype) for k, v in other.items()}
    natural = kind in ("probs", "rate")
    given = np.asarray(p if natural else (_logit(p) if kind == "logits" else np.log(p)), dtype)
    # validate_args=False: values outside the support score -inf (with the default they raise)
    dist = cls(
        **{k: jnp.asarray(v) for k, v in other.items()},
        **{kind: jnp.asarray(given)},
        validate_args=False,
    )
    g64 = given.astype(np.float64)
    p64 = g64 if natural else (1 / (1 + np.exp(-g64)) if kind == "logits" else np.exp(g64))
    ref = to_scipy({k: v.astype(np.float64) for k, v in other.items()}, p64)
    return dist, ref


def _values(ref):
    """scipy draws (2, 3, 4) with the support's edge 0 at [0, 0] and, in row [1, 0], values
    outside the support (a negative, a non-integer, and above total_count for Binomial)."""
    values = ref.rvs(size=(2, 3, 4), random_state=np.random.default_rng(1)).astype(np.float64)
    values[0, 0] = 0
    values[1, 0] = [-1.0, 0.5, 2.5, 1000.0]
    return values


@jax.jit
def _jit_vmap_grad(dist, values):
    def masked_total(d):
        lp = d.log_prob(values)
        return jnp.sum(jnp.where(jnp.isfinite(lp), lp, 0.0))

    total, grads = jax.value_and_grad(masked_total)(dist)
    return dist.log_prob(values), jax.vmap(dist.log_prob)(values), total, grads


SAMPLED = {(n, KINDS.get(n, ("probs",))[0]) for n in CASES} | {("NegativeBinomial", "logits")}


@pytest.mark.parametrize("name,kind", ALL)
def test_discrete_family_against_scipy(name, kind, precision):
    """One test per family, parameterization and precision (tests/conftest.py clears JAX's
    compilation caches around every float64 test, so fewer, fuller tests compile less): log_prob
    eager, under jit and vmap, gradients, closed-form moments and sampling, against scipy."""
    dist, ref = _setup(name, kind, precision)
    assert dist.batch_shape == (3, 4) and dist.event_shape == ()
    assert dist.is_discrete and dist.support.is_discrete
    values = _values(ref)
    expected = ref.logpmf(values)
    assert np.all(expected[1, 0, :3] == -np.inf)
    # eager log_prob, -inf outside the support included
    lp = dist.log_prob(jnp.asarray(values, precision))
    assert lp.shape == (2, 3, 4)
    assert lp.dtype == np.dtype(precision)
    tol = {"rtol": RTOL[precision], "atol": ATOL[precision]}
    np.testing.assert_allclose(np.asarray(lp, np.float64), expected, **tol)
    # integer-valued observations give the same answer
    lp_int = dist.log_prob(jnp.asarray(values[0], jnp.int32))
    np.testing.assert_allclose(lp_int, lp[0], **tol)
    check_jit_vmap_grad(name, dist, values, expected, precision)
    # closed-form moments
    mean, var = dist.mean(), dist.variance()
    assert mean.shape == var.shape == (3, 4)
    assert mean.dtype == np.dtype(precision)
    rtol = 1e-5 if precision == "float32" else 1e-12
    np.testing.assert_allclose(np.asarray(mean, np.float64), ref.mean(), rtol=rtol)
    np.testing.assert_allclose(np.asarray(var, np.float64), ref.var(), rtol=rtol)
    # sampling: one parameterization per family, and NegativeBinomial's logits (its sampler
    # uses the odds exp(logits) directly)
    if (name, kind) in SAMPLED:
        check_sampling(dist, ref)


def check_jit_vmap_grad(name, dist, values, expected, precision):
    """log_prob inside jit and under vmap equals scipy's; gradients w.r.t. the parameters are
    finite next to values outside the support and, in float64, match central differences of the
    same jitted function (d/d probs, logits, rate, log_rate; NegativeBinomial's total_count too)."""
    lp, mapped, _total, g_dist = _jit_vmap_grad(dist, jnp.asarray(values, precision))
    tol = {"rtol": RTOL[precision], "atol": ATOL[precision]}
    np.testing.assert_allclose(np.asarray(lp, np.float64), expected, **tol)
    np.testing.assert_allclose(np.asarray(mapped, np.float64), expected, **tol)
    leaves, tree = jax.tree_util.tree_flatten(dist)
    grads = jax.tree_util.tree_leaves(g_dist)
    assert len(grads) == len(leaves)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    if precision != "float64":
        return
    rng = np.random.default_rng(5)
    for k, (pname, leaf, g) in enumerate(zip(dist.parameter_names, leaves, grads)):
        if name == "Binomial" and pname == "total_count":
            continue  # an integer parameter
        leaf = np.asarray(leaf)
        for i in rng.choice(leaf.size, size=3, replace=False):
            h = 1e-6 * max(1.0, abs(leaf.flat[i]))
            up, down = leaf.copy(), leaf.copy()
            up.flat[i] += h
            down.flat[i] -= h

            def at(x, k=k):
                new = list(leaves)
                new[k] = jnp.asarray(x)
                return float(
                    _jit_vmap_grad(jax.tree_util.tree_unflatten(tree, new), jnp.asarray(values))[2]
                )

            fd = (at(up) - at(down)) / (2 * h)
            np.testing.assert_allclose(np.asarray(g).flat[i], fd, rtol=1e-6, atol=1e-7)


def check_sampling(dist, ref):
    """Sample mean/variance within 5 standard errors: SE(mean) = sqrt(var / n) and
    SE(variance) = sqrt((mu4 - var**2) / n), mu4 = (excess kurtosis + 3) var**2 from scipy.
    Also the empirical frequency of the median value within 5 SE of scipy's pmf there."""
    x = dist.sample((2, N_DRAWS // 2), seed=11)
    assert x.shape == (2, N_DRAWS // 2, 3, 4)
    assert x.dtype == jnp.int32
    assert np.all(np.asarray(dist.support.check(x)))
    x = np.asarray(x, np.float64).reshape(N_DRAWS, 3, 4)
    n = N_DRAWS
    mean, var, _, kurt = (np.broadcast_to(m, (3, 4)) for m in ref.stats(moments="mvsk"))
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * np.sqrt(var / n))
    np.testing.assert_array_less(np.abs(x.var(0, ddof=1) - var), 5 * var * np.sqrt((kurt + 2) / n))
    mode = np.floor(np.broadcast_to(ref.median(), (3, 4)))
    p_mode = ref.pmf(mode)
    np.testing.assert_array_less(
        np.abs(np.mean(x == mode, 0) - p_mode), 5 * np.sqrt(p_mode * (1 - p_mode) / n) + 1e-12
    )


def test_negative_binomial_is_tfp_parameterization():
    """Successes (probability `probs`) before `total_count` failures: mean n p / (1 - p)."""
    d = NegativeBinomial(3.0, probs=0.25)
    np.testing.assert_allclose(d.mean(), 3 * 0.25 / 0.75, rtol=1e-6)
    np.testing.assert_allclose(d.variance(), 3 * 0.25 / 0.75**2, rtol=1e-6)
    np.testing.assert_allclose(d.log_prob(0), 3 * np.log(0.75), rtol=1e-6)


def test_extreme_probabilities_and_enumeration(precision):
    """probs 0 and 1 (or huge logits) give exact 0 / -inf log pmfs, never NaN; the enumerated
    supports of Bernoulli and Binomial carry all the probability."""
    b = Bernoulli(probs=jnp.array([0.0, 1.0]))
    np.testing.assert_array_equal(
        b.log_prob(jnp.array([[0], [1]])), [[0.0, -np.inf], [-np.inf, 0.0]]
    )
    n = Binomial(5.0, probs=jnp.array([0.0, 1.0]))
    # log C(5, 0) = lgamma(6) - lgamma(1) - lgamma(6) is 0 up to rounding
    np.testing.assert_allclose(
        n.log_prob(jnp.array([[0], [5]])), [[0.0, -np.inf], [-np.inf, 0.0]], atol=1e-6
    )
    b = Bernoulli(logits=jnp.array([-100.0, 100.0]))
    lp = np.asarray(b.log_prob(jnp.array([[0], [1]])))
    assert np.all(np.isfinite(lp))
    np.testing.assert_allclose(lp, [[0.0, -100.0], [-100.0, 0.0]], atol=1e-6)

    d = Bernoulli(probs=jnp.array([0.2, 0.7]))
    assert d.has_enumerate_support
    support = d.enumerate_support()
    np.testing.assert_array_equal(support, [0, 1])
    assert support.dtype == jnp.int32
    total = jax.nn.logsumexp(d.log_prob(support[:, None]), axis=0)
    np.testing.assert_allclose(total, 0.0, atol=1e-6)

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
