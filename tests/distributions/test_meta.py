"""Independent and Sample; shapes, dtypes, pytrees (jit / vmap / grad) and validation errors
for every distribution family."""

import numpy as np
import pytest
import scipy.stats as st

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions import (Bernoulli, Beta, Binomial, Categorical, Cauchy, Dirichlet,
                                   Distribution, Exponential, Gamma, HalfCauchy, HalfNormal,
                                   Independent, InverseGamma, Laplace, LogNormal,
                                   MultivariateNormalTriL, NegativeBinomial, Normal, Poisson,
                                   Sample, StudentT, Uniform)

# One example per family, batch shape (3,): name -> (constructor from parameters, parameters).
# Parameters are NumPy arrays so each test builds them in its own precision.
_r = np.random.default_rng(0)
_pos = _r.uniform(0.5, 2.0, 3)
_real = _r.normal(0, 1, 3)
_prob = _r.uniform(0.1, 0.9, 3)
_tril = np.tril(_r.normal(0, 0.3, (3, 2, 2)), -1) + np.eye(2) * _r.uniform(0.5, 1.5, (3, 2, 1))
EXAMPLES = {
    "Normal": (Normal, dict(loc=_real, scale=_pos)),
    "HalfNormal": (HalfNormal, dict(scale=_pos)),
    "LogNormal": (LogNormal, dict(loc=_real, scale=_pos)),
    "StudentT": (StudentT, dict(df=_pos + 3, loc=_real, scale=_pos)),
    "Cauchy": (Cauchy, dict(loc=_real, scale=_pos)),
    "HalfCauchy": (HalfCauchy, dict(loc=_real, scale=_pos)),
    "Laplace": (Laplace, dict(loc=_real, scale=_pos)),
    "Exponential": (Exponential, dict(rate=_pos)),
    "Gamma": (Gamma, dict(concentration=_pos + 1, rate=_pos)),
    "InverseGamma": (InverseGamma, dict(concentration=_pos + 1, scale=_pos)),
    "Beta": (Beta, dict(concentration1=_pos + 1, concentration0=_pos + 0.5)),
    "Uniform": (Uniform, dict(low=_real, high=_real + _pos)),
    "Dirichlet": (Dirichlet, dict(concentration=np.stack([_pos, _pos + 1, _pos + 2], -1))),
    "MultivariateNormalTriL": (MultivariateNormalTriL, dict(loc=_r.normal(0, 1, (3, 2)),
                                                            scale_tril=_tril)),
    "Bernoulli": (Bernoulli, dict(probs=_prob)),
    "Binomial": (Binomial, dict(total_count=np.array([3.0, 5.0, 7.0]), probs=_prob)),
    "Poisson": (Poisson, dict(rate=_pos * 3)),
    "NegativeBinomial": (NegativeBinomial, dict(total_count=_pos * 2, probs=_prob)),
    "Categorical": (Categorical, dict(probs=np.array([[0.2, 0.3, 0.5]] * 3))),
}
EVENT = {"Dirichlet": (3,), "MultivariateNormalTriL": (2,)}
CONTINUOUS = [n for n, (c, _) in EXAMPLES.items() if not c.is_discrete]
DISCRETE = [n for n, (c, _) in EXAMPLES.items() if c.is_discrete]


# Sampling compiles a program per distribution, shape and dtype (the gamma-based samplers take
# about a second each); sharing one jitted sampler between the tests below keeps them fast.
_sample_2x5 = jax.jit(lambda dist, key: dist.sample((2, 5), seed=key))


_log_prob_and_mean = jax.jit(lambda dist, x: (dist.log_prob(x), dist.mean()))
# vmap over the batch of distributions (axis 0 of every parameter) and axis 2 of the values
_vmapped_log_prob = jax.jit(jax.vmap(lambda dist, v: dist.log_prob(v), in_axes=(0, 2), out_axes=2))


def make(name, **overrides):
    cls, params = EXAMPLES[name]
    return cls(**{k: jnp.asarray(v) for k, v in {**params, **overrides}.items()})


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_shapes_dtypes_and_support(name, precision):
    d = make(name)
    event = EVENT.get(name, ())
    assert d.batch_shape == (3,) and d.event_shape == event
    x = _sample_2x5(d, jax.random.key(0))  # eager sampling is covered in test_continuous/discrete
    assert x.shape == (2, 5, 3) + event
    expected_dtype = jnp.int32 if d.is_discrete else np.dtype(precision)
    assert x.dtype == expected_dtype == d.dtype
    assert np.all(d.support.check(x))
    lp = d.log_prob(x)
    assert lp.shape == (2, 5, 3)
    assert lp.dtype == np.dtype(precision)
    assert np.all(np.isfinite(np.asarray(lp)))
    assert isinstance(d.support, constraints.Constraint)
    assert d.support.event_ndim == len(event)
    assert d.support.is_discrete == d.is_discrete
    # the same key gives the same draws
    np.testing.assert_array_equal(x, _sample_2x5(d, jax.random.key(0)))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_pytree_jit_and_vmap(name, precision):
    """Distributions are pytrees of their parameters: they go through jit and vmap."""
    d = make(name)
    leaves, tree = jax.tree_util.tree_flatten(d)
    assert len(leaves) == len(d.parameter_names)
    d2 = jax.tree_util.tree_unflatten(tree, leaves)
    assert type(d2) is type(d) and d2.batch_shape == d.batch_shape
    x = _sample_2x5(d, jax.random.key(2))  # sampling inside jit
    lp_jit, mean = _log_prob_and_mean(d, x)
    np.testing.assert_allclose(lp_jit, d.log_prob(x), rtol=2e-5, atol=1e-5)
    if name not in ("Cauchy", "HalfCauchy"):
        np.testing.assert_allclose(mean, d.mean(), rtol=1e-6)
    # vmap over the batch of distributions: each slice is a scalar-batch distribution
    per_member = _vmapped_log_prob(d, x)
    np.testing.assert_allclose(per_member, d.log_prob(x), rtol=2e-5, atol=1e-5)


def _finite_difference_check(f, x, h=1e-6, rtol=1e-6, atol=1e-8):
    grad = np.asarray(jax.jit(jax.grad(f))(x))
    f = jax.jit(f)
    x = np.asarray(x)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        e = e.reshape(x.shape)
        fd = (f(jnp.asarray(x + e)) - f(jnp.asarray(x - e))) / (2 * h)
        np.testing.assert_allclose(grad.reshape(-1)[i], fd, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_grad_matches_finite_difference(name):
    """d log p / d parameter (each parameter) and d log p / d value, float64."""
    with jax.enable_x64(True):
        d = make(name)
        cls, params = EXAMPLES[name]
        x = _sample_2x5(d, jax.random.key(4))[0, :2]
        for pname in params:
            def f(p, pname=pname):
                return jnp.sum(make(name, **{pname: p}).log_prob(x))
            if pname == "scale_tril":  # perturb only the lower triangle (the upper is ignored)
                _finite_difference_check(lambda t: f(jnp.tril(t)), jnp.asarray(params[pname]))
            else:
                _finite_difference_check(f, jnp.asarray(params[pname]))
        # Uniform's density is flat in the value; Dirichlet's values must stay on the simplex
        if name not in ("Uniform", "Dirichlet"):
            _finite_difference_check(lambda v: jnp.sum(d.log_prob(v)), x)


# ---- validation -------------------------------------------------------------------------------

BAD = [
    (HalfNormal, dict(scale=-1.0), "scale", "positive"),
    (LogNormal, dict(loc=0.0, scale=0.0), "scale", "positive"),
    (StudentT, dict(df=-2.0, loc=0.0, scale=1.0), "df", "positive"),
    (StudentT, dict(df=2.0, loc=0.0, scale=-1.0), "scale", "positive"),
    (Cauchy, dict(loc=0.0, scale=-1.0), "scale", "positive"),
    (HalfCauchy, dict(loc=0.0, scale=-1.0), "scale", "positive"),
    (Laplace, dict(loc=0.0, scale=np.nan), "scale", "positive"),
    (Exponential, dict(rate=-1.0), "rate", "positive"),
    (Gamma, dict(concentration=-1.0, rate=1.0), "concentration", "positive"),
    (Gamma, dict(concentration=1.0, rate=-1.0), "rate", "positive"),
    (InverseGamma, dict(concentration=1.0, scale=-1.0), "scale", "positive"),
    (InverseGamma, dict(concentration=0.0, scale=1.0), "concentration", "positive"),
    (Beta, dict(concentration1=-1.0, concentration0=1.0), "concentration1", "positive"),
    (Beta, dict(concentration1=1.0, concentration0=0.0), "concentration0", "positive"),
    (Uniform, dict(low=1.0, high=0.0), "high", "greater than `low`"),
    (Dirichlet, dict(concentration=[1.0, -1.0]), "concentration", "positive"),
    (MultivariateNormalTriL, dict(loc=[0.0, 0.0], scale_tril=[[1.0, 0.0], [0.0, 0.0]]),
     "scale_tril", "finite with a nonzero diagonal"),
    (Bernoulli, dict(probs=1.5), "probs", "in [0, 1]"),
    (Binomial, dict(total_count=2.5, probs=0.5), "total_count", "a nonnegative integer"),
    (Binomial, dict(total_count=-1.0, probs=0.5), "total_count", "a nonnegative integer"),
    (Binomial, dict(total_count=3.0, probs=-0.1), "probs", "in [0, 1]"),
    (Poisson, dict(rate=-1.0), "rate", "nonnegative"),
    (NegativeBinomial, dict(total_count=0.0, probs=0.5), "total_count", "positive"),
    (NegativeBinomial, dict(total_count=2.0, probs=1.0), "probs", "in [0, 1)"),
]


@pytest.mark.parametrize("cls,kwargs,param,expected", BAD,
                         ids=[f"{c.__name__}-{p}" for c, _, p, _ in BAD])
def test_validation_errors_name_the_parameter(cls, kwargs, param, expected):
    with pytest.raises(ValueError) as info:
        cls(**kwargs, name="d")
    message = str(info.value)
    assert message.startswith(f"{cls.__name__} 'd': parameter `{param}` must be {expected}")
    assert "; got " in message
    # validate_args=False skips the checks; inside jit the values are not known and not checked
    cls(**kwargs, validate_args=False)
    jax.jit(lambda kw: cls(**kw).batch_shape and 0)(
        {k: jnp.asarray(v, float) for k, v in kwargs.items()})


def test_validation_message_example():
    with pytest.raises(ValueError, match=r"^Gamma 'g': parameter `rate` must be positive; got -1.0$"):
        Gamma(2.0, -1.0, name="g")
    with pytest.raises(ValueError, match="Dirichlet: `concentration` needs a last axis"):
        Dirichlet(1.0)


# ---- Independent --------------------------------------------------------------------------------


def test_independent_shapes_and_log_prob(precision):
    base = Normal(jnp.zeros((2, 3, 4)), jnp.ones(4))
    for n, batch, event in [(None, (), (2, 3, 4)), (0, (2, 3, 4), ()), (1, (2, 3), (4,)),
                            (2, (2,), (3, 4))]:
        d = Independent(base, n)
        assert d.batch_shape == batch and d.event_shape == event
        assert d.reinterpreted_batch_ndims == (3 if n is None else n)
        x = d.sample((5,), seed=0)
        assert x.shape == (5, 2, 3, 4)
        assert x.dtype == np.dtype(precision)
        lp = d.log_prob(x)
        assert lp.shape == (5,) + batch
        k = d.reinterpreted_batch_ndims
        expected = base.log_prob(x).sum(axis=tuple(range(4 - k, 4)))
        np.testing.assert_allclose(lp, expected, rtol=1e-5)
        assert d.support.event_ndim == k
        assert d.mean().shape == d.variance().shape == batch + event
        assert d.support.check(x).shape == (5,) + batch
    # of a distribution with an event shape: batch (2,), event (3,) -> event (2, 3)
    d = Independent(Dirichlet(jnp.ones((2, 3))), 1)
    assert d.batch_shape == () and d.event_shape == (2, 3)
    assert d.support.event_ndim == 2
    x = d.sample(4, seed=1)
    np.testing.assert_allclose(d.log_prob(x), Dirichlet(jnp.ones((2, 3))).log_prob(x).sum(-1),
                               rtol=1e-5)


def test_independent_discrete_and_errors():
    d = Independent(Bernoulli(probs=jnp.full((3,), 0.3)), 1)
    assert d.is_discrete and not d.has_enumerate_support and d.dtype == jnp.int32
    assert d.support.is_discrete
    assert not Independent(Normal(jnp.zeros(3), 1.0)).is_discrete
    np.testing.assert_allclose(d.log_prob(jnp.array([1, 0, 0])), np.log(0.3 * 0.7 * 0.7),
                               rtol=1e-5)
    assert d.log_prob(jnp.array([1, 0, 2])) == -np.inf
    with pytest.raises(ValueError, match="reinterpreted_batch_ndims"):
        Independent(Normal(jnp.zeros(3), 1.0), 2)
    with pytest.raises(TypeError, match="Distribution"):
        Independent(st.norm(), 0)


def test_independent_pytree_jit_vmap_grad(precision):
    d = Independent(Normal(jnp.zeros((2, 3)), jnp.ones((2, 3))), 1)
    leaves, tree = jax.tree_util.tree_flatten(d)
    assert len(leaves) == 2
    x = jnp.arange(6.0).reshape(2, 3) / 6
    np.testing.assert_allclose(jax.jit(lambda d, x: d.log_prob(x))(d, x), d.log_prob(x),
                               rtol=1e-6)
    per_row = jax.vmap(lambda d, x: d.log_prob(x))(d, x)
    np.testing.assert_allclose(per_row, d.log_prob(x), rtol=1e-6)
    g = jax.grad(lambda loc: jnp.sum(Independent(Normal(loc, 1.0), 1).log_prob(x)))(jnp.zeros(3))
    np.testing.assert_allclose(g, x.sum(0), rtol=1e-6)


# ---- Sample -------------------------------------------------------------------------------------


def test_sample_shapes_and_layout(precision):
    loc = jnp.array([0.0, 100.0])          # batch (2,)
    d = Sample(Normal(loc, 1.0), (4, 5))
    assert d.batch_shape == (2,) and d.event_shape == (4, 5) and d.sample_shape == (4, 5)
    x = d.sample((3,), seed=0)
    assert x.shape == (3, 2, 4, 5)
    assert x.dtype == np.dtype(precision)
    # sample dims sit between the batch and the base's event: x[:, b] is near loc[b]
    assert np.all(np.abs(np.asarray(x[:, 0])) < 10) and np.all(np.asarray(x[:, 1]) > 90)
    lp = d.log_prob(x)
    assert lp.shape == (3, 2)
    expected = Normal(loc[:, None, None], 1.0).log_prob(x).sum((-1, -2))
    np.testing.assert_allclose(lp, expected, rtol=1e-5)
    assert d.mean().shape == d.variance().shape == (2, 4, 5)
    np.testing.assert_array_equal(d.mean()[1], 100.0)
    assert d.support.event_ndim == 2 and d.support.check(x).shape == (3, 2)
    # an int sample_shape means (n,)
    assert Sample(Normal(0.0, 1.0), 3).event_shape == (3,)


def test_sample_of_a_vector_distribution(precision):
    base = Dirichlet(jnp.array([[1.0, 2.0, 3.0], [5.0, 1.0, 1.0]]))  # batch (2,), event (3,)
    d = Sample(base, 4)
    assert d.batch_shape == (2,) and d.event_shape == (4, 3)
    x = d.sample(6, seed=1)
    assert x.shape == (6, 2, 4, 3)
    lp = d.log_prob(x)
    assert lp.shape == (6, 2)
    expected = sum(base.log_prob(x[:, :, i]) for i in range(4))
    np.testing.assert_allclose(lp, expected, rtol=1e-5)
    np.testing.assert_allclose(d.mean()[:, 2], base.mean(), rtol=1e-6)
    # values broadcast against the batch: one event of shape (4, 3) for both members
    one = x[0, 0]
    assert d.log_prob(one).shape == (2,)


def test_sample_discrete_pytree_jit_grad(precision):
    d = Sample(Poisson(rate=jnp.array([1.0, 4.0])), 3)
    assert d.is_discrete and not d.has_enumerate_support and d.dtype == jnp.int32
    x = d.sample(2, seed=0)
    assert x.shape == (2, 2, 3) and x.dtype == jnp.int32
    leaves, _ = jax.tree_util.tree_flatten(d)
    assert len(leaves) == 1
    np.testing.assert_allclose(jax.jit(lambda d, x: d.log_prob(x))(d, x), d.log_prob(x),
                               rtol=1e-6)
    np.testing.assert_allclose(jax.vmap(lambda d, x: d.log_prob(x), in_axes=(0, 1))(d, x).T,
                               d.log_prob(x), rtol=1e-6)
    k = jnp.array([0.0, 2.0, 5.0])
    g = jax.grad(lambda r: jnp.sum(Sample(Poisson(rate=r), 3).log_prob(k)))(jnp.array([1.0, 4.0]))
    np.testing.assert_allclose(g, k.sum() / jnp.array([1.0, 4.0]) - 3, rtol=1e-5)


def test_sample_errors():
    with pytest.raises(ValueError, match="sample_shape"):
        Sample(Normal(0.0, 1.0), (-1,))
    with pytest.raises(TypeError, match="Distribution"):
        Sample(st.norm(), 2)


def test_all_exported():
    import coromix.distributions as D

    for name in list(EXAMPLES) + ["Independent", "Sample", "Distribution"]:
        assert name in D.__all__ and issubclass(getattr(D, name), Distribution)
