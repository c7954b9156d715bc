"""Ordered: an exchangeable base restricted to strictly increasing vectors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from coromix import constraints
from coromix.distributions.categorical import Categorical
from coromix.distributions.distribution import Distribution, batch_of
from coromix.distributions.normal import Normal
from coromix.distributions.ordered import Ordered
from coromix.utils import promote_floats


class _Exponential(Distribution):
    """A positive-support base for the tests (rate-1 exponential, scaled)."""

    parameter_names = ("scale",)

    def __init__(self, scale, *, validate_args=True, name=None):
        (self.scale,) = promote_floats(scale)
        self._init_common(name, validate_args)

    @property
    def batch_shape(self):
        return batch_of(self.scale)

    @property
    def support(self):
        return constraints.positive

    def _sample(self, key, shape):
        return self.scale * jax.random.exponential(key, shape, self.dtype)

    def log_prob(self, value):
        return jnp.where(value > 0, -value / self.scale - jnp.log(self.scale), -jnp.inf)


def test_log_prob_matches_scipy(precision):
    d = Ordered(Normal(jnp.zeros(3), 2.0))
    assert d.batch_shape == () and d.event_shape == (3,)
    assert d.support is constraints.ordered_vector
    x = np.array([-1.3, 0.2, 2.5])
    expected = stats.norm(0.0, 2.0).logpdf(x).sum() + math.log(6)
    lp = d.log_prob(jnp.asarray(x, dtype=float))
    assert lp.dtype == jnp.dtype(precision)
    np.testing.assert_allclose(lp, expected, rtol=1e-6 if precision == "float64" else 1e-5)
    assert d.log_prob(jnp.array([0.2, -1.3, 2.5])) == -np.inf  # unsorted
    assert d.log_prob(jnp.array([0.2, 0.2, 2.5])) == -np.inf  # tie: not strictly increasing


def test_batched_log_prob_and_jit():
    d = Ordered(Normal(jnp.zeros((2, 3)), jnp.array([[1.0], [3.0]])))
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    x = jnp.array(
        [[[-1.0, 0.0, 1.0], [-2.0, 0.5, 4.0]], [[0.0, -1.0, 1.0], [-2.0, 0.5, 4.0]]]
    )  # sample shape (2,) + batch + event
    lp = jax.jit(lambda dist, v: dist.log_prob(v))(d, x)
    assert lp.shape == (2, 2)
    scales = np.array([[1.0], [3.0]])
    expected = stats.norm(0.0, scales).logpdf(np.asarray(x)).sum(-1) + math.log(6)
    np.testing.assert_allclose(lp[0], expected[0], rtol=1e-5)
    assert lp[1, 0] == -np.inf and np.isclose(lp[1, 1], expected[1, 1], rtol=1e-5)
    g = jax.grad(lambda v: d.log_prob(v).sum())(x[0])
    np.testing.assert_allclose(g, -np.asarray(x[0]) / scales**2, rtol=1e-5)


def test_sample_is_sorted_with_right_shape():
    d = Ordered(Normal(jnp.zeros((4, 3)), 2.0))
    draws = jax.jit(lambda dist, key: dist.sample((500, 2), seed=key))(d, jax.random.key(0))
    assert draws.shape == (500, 2, 4, 3)
    assert np.all(np.diff(np.asarray(draws), axis=-1) > 0)
    assert np.all(d.support.check(draws))
    # The smallest of 3 iid N(0, 4) has mean -2 * 0.8463 (expected minimum of 3 standard normals).
    np.testing.assert_allclose(np.mean(draws[..., 0]), -2 * 0.8462843753, atol=0.08)
    np.testing.assert_allclose(np.mean(draws[..., 1]), 0.0, atol=0.08)


def test_two_dimensional_density_integrates_to_one():
    d = Ordered(Normal(jnp.zeros(2), 1.5))
    lp = jax.jit(lambda a, b: d.log_prob(jnp.stack([a, b])))
    total, _ = integrate.dblquad(
        lambda b, a: math.exp(float(lp(a, b))), -12, 12, lambda a: a, 12, epsabs=1e-7
    )
    assert abs(total - 1.0) < 1e-4


def test_positive_base_gives_positive_ordered_support():
    d = Ordered(_Exponential(jnp.ones(4)))
    assert d.support is constraints.positive_ordered_vector
    x = jnp.array([0.5, 1.0, 2.0, 3.5])
    np.testing.assert_allclose(d.log_prob(x), -7.0 + math.log(24), rtol=1e-6)
    assert d.log_prob(jnp.array([-0.5, 1.0, 2.0, 3.5])) == -np.inf
    assert np.all(d.support.check(d.sample(10, seed=1)))


def test_is_a_pytree_of_its_base():
    d = Ordered(Normal(jnp.zeros(3), 2.0), name="mu")
    leaves, treedef = jax.tree_util.tree_flatten(d)
    assert len(leaves) == 2  # the base Normal's loc and scale
    d2 = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(d2, Ordered) and d2.name == "mu" and d2.event_shape == (3,)
    assert Ordered.parameter_names == ("distribution",)


def test_rejects_unsuitable_bases():
    with pytest.raises(ValueError, match="exchangeable"):
        Ordered(Normal(jnp.arange(3.0), 1.0))
    Ordered(Normal(jnp.arange(3.0), 1.0), validate_args=False)  # the user's responsibility
    with pytest.raises(ValueError, match="last batch dimension"):
        Ordered(Normal(0.0, 1.0))
    with pytest.raises(TypeError, match="discrete"):
        Ordered(Categorical(probs=jnp.full((3, 2), 0.5)))
