"""Independent and Sample; shapes, dtypes, pytrees (jit / vmap / grad) and validation errors
for every distribution family."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from coromix.distributions import (
    Bernoulli,
    Beta,
    Binomial,
    Categorical,
    Cauchy,
    Dirichlet,
    Distribution,
    Exponential,
    Gamma,
    HalfCauchy,
    HalfNormal,
    Independent,
    InverseGamma,
    Laplace,
    LogNormal,
    MultivariateNormalTriL,
    NegativeBinomial,
    Normal,
    Poisson,
    Sample,
    StudentT,
    Uniform,
)

# One example per family, batch shape (3,): name -> (constructor from parameters, parameters).
# Parameters are NumPy arrays so each test builds them in its own precision.
_r = np.random.default_rng(0)
_pos = _r.uniform(0.5, 2.0, 3)
_real = _r.normal(0, 1, 3)
_prob = _r.uniform(0.1, 0.9, 3)
_tril = np.tril(_r.normal(0, 0.3, (3, 2, 2)), -1) + np.eye(2) * _r.uniform(0.5, 1.5, (3, 2, 1))
EXAMPLES = {
    "Normal": (Normal, {"loc": _real, "scale": _pos}),
    "HalfNormal": (HalfNormal, {"scale": _pos}),
    "LogNormal": (LogNormal, {"loc": _real, "scale": _pos}),
    "StudentT": (StudentT, {"df": _pos + 3, "loc": _real, "scale": _pos}),
    "Cauchy": (Cauchy, {"loc": _real, "scale": _pos}),
    "HalfCauchy": (HalfCauchy, {"loc": _real, "scale": _pos}),
    "Laplace": (Laplace, {"loc": _real, "scale": _pos}),
    "Exponential": (Exponential, {"rate": _pos}),
    "Gamma": (Gamma, {"concentration": _pos + 1, "rate": _pos}),
    "InverseGamma": (InverseGamma, {"concentration": _pos + 1, "scale": _pos}),
    "Beta": (Beta, {"concentration1": _pos + 1, "concentration0": _pos + 0.5}),
    "Uniform": (Uniform, {"low": _real, "high": _real + _pos}),
    "Dirichlet": (Dirichlet, {"concentration": np.stack([_pos, _pos + 1, _pos + 2], -1)}),
    "MultivariateNormalTriL": (
        MultivariateNormalTriL,
        {"loc": _r.normal(0, 1, (3, 2)), "scale_tril": _tril},
    ),
    "Bernoulli": (Bernoulli, {"probs": _prob}),
    "Binomial": (Binomial, {"total_count": np.array([3.0, 5.0, 7.0]), "probs": _prob}),
    "Poisson": (Poisson, {"rate": _pos * 3}),
    "NegativeBinomial": (NegativeBinomial, {"total_count": _pos * 2, "probs": _prob}),
    "Categorical": (Categorical, {"probs": np.array([[0.2, 0.3, 0.5]] * 3)}),
}
EVENT = {"Dirichlet": (3,), "MultivariateNormalTriL": (2,)}


# A valid value (one event) of each example, broadcast against its batch in the tests.
VALUE = {
    "Normal": 0.5,
    "HalfNormal": 0.5,
    "LogNormal": 0.5,
    "StudentT": 0.5,
    "Cauchy": 0.5,
    "HalfCauchy": _real + 0.5,
    "Laplace": 0.5,
    "Exponential": 0.5,
    "Gamma": 0.5,
    "InverseGamma": 0.5,
    "Beta": 0.5,
    "Uniform": _real + _pos / 2,
    "Dirichlet": [0.2, 0.3, 0.5],
    "MultivariateNormalTriL": [0.1, -0.2],
    "Bernoulli": 1,
    "Binomial": 2,
    "Poisson": 2,
    "NegativeBinomial": 2,
    "Categorical": 1,
}


def make(name, **overrides):
    cls, params = EXAMPLES[name]
    return cls(**{k: jnp.asarray(v) for k, v in {**params, **overrides}.items()})


def _value(name, d, precision):
    """A valid value of shape (2, 5) + batch + event."""
    v = np.asarray(VALUE[name], np.float64)
    if v.ndim == 1 and not EVENT.get(name):  # per batch member
        v = v.reshape(3)
    v = np.broadcast_to(v, (2, 5) + d.batch_shape + d.event_shape)
    return jnp.asarray(v, jnp.int32 if d.is_discrete else precision)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_shapes_dtypes_pytree_and_tracing(name, precision):
    """Shapes and dtypes of sample / log_prob / mean / variance, traced under jit and vmap.

    ``jax.eval_shape`` traces the functions with abstract values, which is where jit and vmap
    fail (Python control flow or NumPy calls on traced values), without compiling anything; the
    numbers computed under jit and vmap are checked in test_continuous / test_discrete and below.
    """
    d = make(name)
    event = EVENT.get(name, ())
    assert d.batch_shape == (3,) and d.event_shape == event
    float_dtype = np.dtype(precision)
    assert d.dtype == (jnp.int32 if d.is_discrete else float_dtype)
    # pytree: the leaves are the parameters, and unflattening gives back the same distribution
    leaves, tree = jax.tree_util.tree_flatten(d)
    assert len(leaves) == len(d.parameter_names)
    assert all(leaf.dtype == float_dtype for leaf in leaves)
    d2 = jax.tree_util.tree_unflatten(tree, leaves)
    assert type(d2) is type(d) and d2.batch_shape == d.batch_shape and d2.name == d.name

    def everything(dist, key, x):
        draws = dist.sample((2, 5), seed=key)
        per_member = jax.vmap(lambda m, v: m.log_prob(v), in_axes=(0, 2), out_axes=2)(dist, x)
        return draws, dist.log_prob(draws), dist.log_prob(x), per_member, dist.mean()

    x = _value(name, d, precision)
    draws, lp_draws, lp, per_member, mean = jax.eval_shape(
        jax.jit(everything), d, jax.random.key(0), x
    )
    assert draws.shape == (2, 5, 3) + event and draws.dtype == d.dtype
    for out in (lp_draws, lp, per_member):
        assert out.shape == (2, 5, 3) and out.dtype == float_dtype
    assert mean.shape == (3,) + event
    assert jax.eval_shape(lambda dist: dist.variance(), d).shape == (3,) + event


@jax.jit
def _log_prob_two_ways(dist, x):
    """The batched log_prob and the one computed member by member under vmap."""
    per_member = jax.vmap(lambda m, v: m.log_prob(v), in_axes=(0, 2), out_axes=2)(dist, x)
    return dist.log_prob(x), per_member


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_vmap_over_distributions(name):
    """vmap over a batch of distributions (axis 0 of every parameter) gives the batched
    log_prob (float32; each family's log_prob is checked against scipy elsewhere)."""
    d = make(name)
    x = _value(name, d, "float32")
    lp, per_member = _log_prob_two_ways(d, x)
    assert np.all(np.isfinite(np.asarray(lp)))
    np.testing.assert_allclose(per_member, lp, rtol=1e-6, atol=1e-6)


# ---- validation -------------------------------------------------------------------------------

BAD = [
    (HalfNormal, {"scale": -1.0}, "scale", "positive"),
    (LogNormal, {"loc": 0.0, "scale": 0.0}, "scale", "positive"),
    (StudentT, {"df": -2.0, "loc": 0.0, "scale": 1.0}, "df", "positive"),
    (StudentT, {"df": 2.0, "loc": 0.0, "scale": -1.0}, "scale", "positive"),
    (Cauchy, {"loc": 0.0, "scale": -1.0}, "scale", "positive"),
    (HalfCauchy, {"loc": 0.0, "scale": -1.0}, "scale", "positive"),
    (Laplace, {"loc": 0.0, "scale": np.nan}, "scale", "positive"),
    (Exponential, {"rate": -1.0}, "rate", "positive"),
    (Gamma, {"concentration": -1.0, "rate": 1.0}, "concentration", "positive"),
    (Gamma, {"concentration": 1.0, "rate": -1.0}, "rate", "positive"),
    (InverseGamma, {"concentration": 1.0, "scale": -1.0}, "scale", "positive"),
    (InverseGamma, {"concentration": 0.0, "scale": 1.0}, "concentration", "positive"),
    (Beta, {"concentration1": -1.0, "concentration0": 1.0}, "concentration1", "positive"),
    (Beta, {"concentration1": 1.0, "concentration0": 0.0}, "concentration0", "positive"),
    (Uniform, {"low": 1.0, "high": 0.0}, "high", "greater than `low`"),
    (Dirichlet, {"concentration": [1.0, -1.0]}, "concentration", "positive"),
    (
        MultivariateNormalTriL,
        {"loc": [0.0, 0.0], "scale_tril": [[1.0, 0.0], [0.0, 0.0]]},
        "scale_tril",
        "finite with a nonzero diagonal",
    ),
    (Bernoulli, {"probs": 1.5}, "probs", "in [0, 1]"),
    (Binomial, {"total_count": 2.5, "probs": 0.5}, "total_count", "a nonnegative integer"),
    (Binomial, {"total_count": -1.0, "probs": 0.5}, "total_count", "a nonnegative integer"),
    (Binomial, {"total_count": 3.0, "probs": -0.1}, "probs", "in [0, 1]"),
    (Poisson, {"rate": -1.0}, "rate", "nonnegative"),
    (NegativeBinomial, {"total_count": 0.0, "probs": 0.5}, "total_count", "positive"),
    (NegativeBinomial, {"total_count": 2.0, "probs": 1.0}, "probs", "in [0, 1)"),
]


@pytest.mark.parametrize(
    "cls,kwargs,param,expected", BAD, ids=[f"{c.__name__}-{p}" for c, _, p, _ in BAD]
)
def test_validation_errors_name_the_parameter(cls, kwargs, param, expected):
    with pytest.raises(ValueError) as info:
        cls(**kwargs, name="d")
    message = str(info.value)
    assert message.startswith(f"{cls.__name__} 'd': parameter `{param}` must be {expected}")
    assert "; got " in message
    # validate_args=False skips the checks; inside jit the values are not known and not checked
    cls(**kwargs, validate_args=False)
    jax.eval_shape(
        lambda kw: cls(**kw).mean(), {k: jnp.asarray(v, float) for k, v in kwargs.items()}
    )


def test_validation_message_example():
    with pytest.raises(
        ValueError, match=r"^Gamma 'g': parameter `rate` must be positive; got -1.0$"
    ):
        Gamma(2.0, -1.0, name="g")
    with pytest.raises(ValueError, match="Dirichlet: `concentration` needs a last axis"):
        Dirichlet(1.0)


# ---- Independent --------------------------------------------------------------------------------


@jax.jit
def _lp_vmap_grad(dist, x):
    """log_prob, log_prob under vmap over the distribution and the values (axis 0), and the
    gradient of the summed log_prob w.r.t. the distribution's parameters."""
    per_row = jax.vmap(lambda d, v: d.log_prob(v))(dist, x)
    grads = jax.grad(lambda d: jnp.sum(d.log_prob(x)))(dist)
    return dist.log_prob(x), per_row, grads


def test_independent(precision):
    base = Normal(jnp.linspace(-1.0, 1.0, 24).reshape(2, 3, 4), jnp.ones(4))
    x = base.sample((5,), seed=0)
    assert x.shape == (5, 2, 3, 4) and x.dtype == np.dtype(precision)
    base_lp = np.asarray(base.log_prob(x), np.float64)
    for n, batch, event in [
        (None, (), (2, 3, 4)),
        (0, (2, 3, 4), ()),
        (1, (2, 3), (4,)),
        (2, (2,), (3, 4)),
    ]:
        d = Independent(base, n)
        assert d.batch_shape == batch and d.event_shape == event
        k = d.reinterpreted_batch_ndims
        assert k == (3 if n is None else n)
        assert jax.eval_shape(
            lambda key, d=d: d.sample((5,), seed=key), jax.random.key(0)
        ).shape == (5, 2, 3, 4)
        lp = d.log_prob(x)
        assert lp.shape == (5,) + batch and lp.dtype == np.dtype(precision)
        np.testing.assert_allclose(lp, base_lp.sum(axis=tuple(range(4 - k, 4))), rtol=1e-5)
        assert d.support.event_ndim == k and d.support.check(x).shape == (5,) + batch
        assert d.mean().shape == d.variance().shape == batch + event
        assert d.dtype == np.dtype(precision) and not d.is_discrete
    # of a distribution with an event shape: batch (2,), event (3,) -> event (2, 3)
    mvn = MultivariateNormalTriL(jnp.zeros((2, 3)), jnp.eye(3))
    d = Independent(mvn, 1)
    assert d.batch_shape == () and d.event_shape == (2, 3) and d.support.event_ndim == 2
    y = d.sample(4, seed=1)
    assert y.shape == (4, 2, 3)
    np.testing.assert_allclose(d.log_prob(y), mvn.log_prob(y).sum(-1), rtol=1e-5)
    # a pytree whose leaf is the base's parameters: jit, vmap over distributions, grad
    d = Independent(Normal(jnp.zeros((2, 3)), jnp.ones((2, 3))), 1)
    assert len(jax.tree_util.tree_leaves(d)) == 2
    v = jnp.arange(6.0).reshape(2, 3) / 6
    lp, per_row, grads = _lp_vmap_grad(d, v)
    np.testing.assert_allclose(lp, Normal(0.0, 1.0).log_prob(v).sum(-1), rtol=1e-6)
    np.testing.assert_allclose(per_row, lp, rtol=1e-6)
    assert isinstance(grads, Independent)
    np.testing.assert_allclose(grads.distribution.loc, v, rtol=1e-6)  # d/dloc = (x - loc)


def test_independent_discrete_and_errors():
    d = Independent(Bernoulli(probs=jnp.full((3,), 0.3)), 1)
    assert d.is_discrete and not d.has_enumerate_support and d.dtype == jnp.int32
    assert d.support.is_discrete
    np.testing.assert_allclose(d.log_prob(jnp.array([1, 0, 0])), np.log(0.3 * 0.7 * 0.7), rtol=1e-5)
    with pytest.raises(ValueError, match=r"Bernoulli: value outside the support .* at \[2\]"):
        d.log_prob(jnp.array([1, 0, 2]))
    unchecked = Independent(Bernoulli(probs=jnp.full((3,), 0.3), validate_args=False), 1)
    assert unchecked.log_prob(jnp.array([1, 0, 2])) == -np.inf
    with pytest.raises(ValueError, match="reinterpreted_batch_ndims"):
        Independent(Normal(jnp.zeros(3), 1.0), 2)
    with pytest.raises(TypeError, match="Distribution"):
        Independent(st.norm(), 0)


# ---- Sample -------------------------------------------------------------------------------------


def test_sample(precision):
    loc = jnp.array([0.0, 100.0])  # batch (2,)
    d = Sample(Normal(loc, 1.0), (4, 5))
    assert d.batch_shape == (2,) and d.event_shape == (4, 5) and d.sample_shape == (4, 5)
    x = d.sample((3,), seed=0)
    assert x.shape == (3, 2, 4, 5) and x.dtype == np.dtype(precision)
    # sample dims sit between the batch and the base's event: x[:, b] is near loc[b]
    assert np.all(np.abs(np.asarray(x[:, 0])) < 10) and np.all(np.asarray(x[:, 1]) > 90)
    lp = d.log_prob(x)
    assert lp.shape == (3, 2) and lp.dtype == np.dtype(precision)
    expected = Normal(loc[:, None, None], 1.0).log_prob(x).sum((-1, -2))
    np.testing.assert_allclose(lp, expected, rtol=1e-5)
    assert d.mean().shape == d.variance().shape == (2, 4, 5)
    np.testing.assert_array_equal(d.mean()[1], 100.0)
    assert d.support.event_ndim == 2 and d.support.check(x).shape == (3, 2)
    assert Sample(Normal(0.0, 1.0), 3).event_shape == (3,)  # an int means (n,)
    # of a vector distribution: batch (2,), event (3,) -> event (4, 3)
    base = MultivariateNormalTriL(jnp.array([[1.0, 2.0, 3.0], [-5.0, 1.0, 1.0]]), jnp.eye(3))
    d = Sample(base, 4)
    assert d.batch_shape == (2,) and d.event_shape == (4, 3)
    y = d.sample(6, seed=1)
    assert y.shape == (6, 2, 4, 3)
    lp = d.log_prob(y)
    assert lp.shape == (6, 2)
    np.testing.assert_allclose(lp, base.log_prob(jnp.swapaxes(y, 1, 2)).sum(1), rtol=1e-5)
    np.testing.assert_allclose(d.mean()[:, 2], base.mean(), rtol=1e-6)
    assert d.log_prob(y[0, 0]).shape == (2,)  # one event broadcast against the batch
    # a pytree: jit, vmap over distributions, grad
    d = Sample(Poisson(rate=jnp.array([1.0, 4.0])), 3)
    assert d.is_discrete and not d.has_enumerate_support and d.dtype == jnp.int32
    assert len(jax.tree_util.tree_leaves(d)) == 1
    k = jnp.array([[0.0, 2.0, 5.0], [1.0, 1.0, 1.0]])
    lp, per_row, grads = _lp_vmap_grad(d, k)
    np.testing.assert_allclose(
        lp, Poisson(rate=jnp.array([[1.0], [4.0]])).log_prob(k).sum(-1), rtol=1e-6
    )
    np.testing.assert_allclose(per_row, lp, rtol=1e-6)
    np.testing.assert_allclose(
        grads.distribution._param, k.sum(-1) / jnp.array([1.0, 4.0]) - 3, rtol=1e-5
    )
    # discrete draws
    b = Sample(Bernoulli(probs=jnp.array([0.01, 0.99])), 3)
    draws = b.sample(2, seed=0)
    assert draws.shape == (2, 2, 3) and draws.dtype == jnp.int32
    assert np.sum(np.asarray(draws[:, 0])) <= 2 and np.sum(np.asarray(draws[:, 1])) >= 4


def test_sample_errors():
    with pytest.raises(ValueError, match="sample_shape"):
        Sample(Normal(0.0, 1.0), (-1,))
    with pytest.raises(TypeError, match="Distribution"):
        Sample(st.norm(), 2)


def test_all_exported():
    import coromix.distributions as D

    for name in list(EXAMPLES) + ["Independent", "Sample", "Distribution"]:
        assert name in D.__all__ and issubclass(getattr(D, name), Distribution)
