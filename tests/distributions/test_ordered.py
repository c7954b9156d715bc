"""Ordered: a base restricted to strictly increasing (optionally positive) vectors."""

import copy
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


def assert_outside(d, x):
    """A value outside the support: an error by default, log density -inf without validation."""
    with pytest.raises(ValueError, match="value outside the support"):
        d.log_prob(x)
    unchecked = copy.copy(d)
    unchecked.validate_args = False
    assert unchecked.log_prob(x) == -np.inf


def test_log_prob_matches_scipy(precision):
    d = Ordered(Normal(jnp.zeros(3), 2.0))
    assert d.batch_shape == () and d.event_shape == (3,)
    assert d.support is constraints.ordered_vector
    x = np.array([-1.3, 0.2, 2.5])
    expected = stats.norm(0.0, 2.0).logpdf(x).sum() + math.log(6)
    lp = d.log_prob(jnp.asarray(x, dtype=float))
    assert lp.dtype == jnp.dtype(precision)
    np.testing.assert_allclose(lp, expected, rtol=1e-6 if precision == "float64" else 1e-5)
    assert_outside(d, jnp.array([0.2, -1.3, 2.5]))  # unsorted
    assert_outside(d, jnp.array([0.2, 0.2, 2.5]))  # tie: not strictly increasing


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
    assert_outside(d, jnp.array([-0.5, 1.0, 2.0, 3.5]))
    assert np.all(d.support.check(d.sample(10, seed=1)))


def test_is_a_pytree_of_its_base():
    d = Ordered(Normal(jnp.zeros(3), 2.0), name="mu")
    leaves, treedef = jax.tree_util.tree_flatten(d)
    assert len(leaves) == 2  # the base Normal's loc and scale
    d2 = jax.tree_util.tree_unflatten(treedef, leaves)
    assert isinstance(d2, Ordered) and d2.name == "mu" and d2.event_shape == (3,)
    assert Ordered.parameter_names == ("distribution",)


def test_rejects_unsuitable_bases():
    # A base with parameters that differ along K is accepted now (Stan's meaning, tested below).
    assert not Ordered(Normal(jnp.arange(3.0), 1.0)).exchangeable()
    Ordered(Normal(jnp.arange(3.0), 1.0), validate_args=False)
    with pytest.raises(ValueError, match="last batch dimension"):
        Ordered(Normal(0.0, 1.0))
    with pytest.raises(TypeError, match="discrete"):
        Ordered(Categorical(probs=jnp.full((3, 2), 0.5)))


# --- a base with a parameter per element: Stan's `ordered` / `positive_ordered` -------------------


def _reference_draws(loc, scale, positive=False, n=400_000, seed=0):
    """The base conditioned on being increasing (and positive): NumPy draws, kept when sorted."""
    rng = np.random.default_rng(seed)
    x = rng.normal(loc, scale, size=(n, len(loc)))
    keep = np.all(np.diff(x, axis=-1) > 0, axis=-1)
    if positive:
        keep &= x[:, 0] > 0
    return x[keep]


def _moments(x):
    """Per-draw first and second moments (each column a function of one draw)."""
    k = x.shape[-1]
    pairs = [x[:, i] * x[:, j] for i in range(k) for j in range(i, k)]
    return np.column_stack([x, *pairs])


def test_non_exchangeable_log_prob_is_the_sum_of_the_base_densities():
    with jax.enable_x64(True):
        loc, scale = np.array([0.0, 3.0, 3.5]), np.array([1.0, 1.0, 0.5])
        d = Ordered(Normal(jnp.asarray(loc), jnp.asarray(scale)))
        assert d.support is constraints.ordered_vector and not d.exchangeable()
        x = np.array([[0.3, 1.7, 3.9], [-2.0, 4.0, 4.1]])
        expected = stats.norm(loc, scale).logpdf(x).sum(-1)  # no log(K!)
        lp = d.log_prob(jnp.asarray(x))
        assert lp.dtype == jnp.float64
        np.testing.assert_allclose(lp, expected, rtol=0, atol=1e-10)
        lp_jit = jax.jit(lambda dist, v: dist.log_prob(v))(d, jnp.asarray(x))  # traced parameters
        np.testing.assert_allclose(lp_jit, expected, rtol=0, atol=1e-10)
        assert_outside(d, jnp.array([1.7, 0.3, 3.9]))


def test_mixed_batch_adds_log_k_factorial_only_where_exchangeable():
    with jax.enable_x64(True):
        loc = np.array([[0.0, 0.0], [0.0, 3.0]])
        d = Ordered(Normal(jnp.asarray(loc), 1.0))
        np.testing.assert_array_equal(d.exchangeable(), [True, False])
        x = np.array([[-0.4, 0.9], [-0.4, 0.9]])
        expected = stats.norm(loc, 1.0).logpdf(x).sum(-1) + np.array([math.log(2), 0.0])
        for lp in (d.log_prob(x), jax.jit(lambda dist, v: dist.log_prob(v))(d, x)):
            np.testing.assert_allclose(lp, expected, rtol=0, atol=1e-10)
        draws = np.asarray(
            jax.jit(lambda dist, k: dist.sample(40_000, seed=k))(d, jax.random.key(3))
        )
    assert draws.shape == (40_000, 2, 2) and np.all(np.diff(draws, axis=-1) > 0)
    # exchangeable row: the sorted pair of iid N(0, 1), whose minimum has mean -1/sqrt(pi)
    np.testing.assert_allclose(draws[:, 0, 0].mean(), -1 / math.sqrt(math.pi), atol=0.02)
    reference = _reference_draws([0.0, 3.0], 1.0)
    se = np.hypot(draws[:, 1].std(0) / 200, reference.std(0) / math.sqrt(len(reference)))
    assert np.all(np.abs(draws[:, 1].mean(0) - reference.mean(0)) < 4 * se)


@pytest.mark.parametrize("positive", [False, True])
def test_unconstrained_density_is_stans_transform(positive):
    from coromix.joint import JointDistributionCoroutine

    def model():
        phi = yield Ordered(Normal(jnp.array([0.0, 3.0, 3.5]), 1.0), positive=positive)

    y = np.array([0.3, -0.2, 0.4])
    if positive:  # Stan's positive_ordered: x_1 = exp(y_1), x_k = x_{k-1} + exp(y_k)
        x, log_jacobian = np.cumsum(np.exp(y)), y.sum()
    else:  # Stan's ordered: x_1 = y_1, x_k = x_{k-1} + exp(y_k)
        x, log_jacobian = np.cumsum(np.r_[y[0], np.exp(y[1:])]), y[1:].sum()
    expected = stats.norm([0.0, 3.0, 3.5], 1.0).logpdf(x).sum() + log_jacobian
    with jax.enable_x64(True):
        posterior = JointDistributionCoroutine(model).pin()
        assert posterior.parameter_shapes == {"phi": (3,)}
        lp = posterior.unconstrained_log_prob({"phi": jnp.asarray(y)})
        np.testing.assert_allclose(lp, expected, rtol=0, atol=1e-10)
        np.testing.assert_allclose(posterior.to_constrained({"phi": y})["phi"], x, rtol=1e-12)


@pytest.mark.parametrize(
    "loc, scale, positive",
    [([0.0, 3.0], 1.0, False), ([0.0, 3.0], 1.0, True), ([0.0, 0.5, 1.0], [1.0, 2.0, 1.0], False)],
)
def test_rejection_sampling_matches_numpy_reference_moments(loc, scale, positive):
    d = Ordered(Normal(jnp.asarray(loc), jnp.asarray(scale)), positive=positive)
    n = 20_000
    draws = np.asarray(d.sample(n, seed=7), dtype=float)
    assert draws.shape == (n, len(loc)) and np.all(d.support.check(draws))
    ours, reference = _moments(draws), _moments(_reference_draws(loc, scale, positive))
    se = np.sqrt(ours.var(0) / n + reference.var(0) / len(reference))
    z = (ours.mean(0) - reference.mean(0)) / se
    assert np.all(np.abs(z) < 4), z


def test_positive_ordered_support_with_a_real_base():
    from coromix import transforms

    d = Ordered(Normal(jnp.array([0.0, 3.0]), 1.0), positive=True)
    assert d.support is constraints.positive_ordered_vector
    bij = transforms.biject_to(d.support)
    x = bij.forward(jnp.array([[-3.0, 0.2], [1.0, -5.0]]))
    assert np.all(x[:, 0] > 0) and np.all(np.diff(np.asarray(x), axis=-1) > 0)
    assert_outside(d, jnp.array([-0.1, 2.0]))  # increasing, not positive
    assert np.isfinite(d.log_prob(jnp.array([0.1, 2.0])))
    # an exchangeable base truncated to x_1 > 0: sorted draws, the negative ones rejected
    e = Ordered(Normal(jnp.zeros(3), 1.0), positive=True)
    draws = np.asarray(e.sample(20_000, seed=2))
    assert np.all(draws[:, 0] > 0) and np.all(np.diff(draws, axis=-1) > 0)
    # the sorted vector of three iid half-normals: its largest has mean 1.2733 (by quadrature)
    top_mean, _ = integrate.quad(
        lambda t: t * 3 * (2 * stats.norm.cdf(t) - 1) ** 2 * 2 * stats.norm.pdf(t), 0, 12
    )
    np.testing.assert_allclose(draws[:, 2].mean(), top_mean, atol=4 * draws[:, 2].std() / 141)
    with pytest.raises(TypeError, match="positive"):
        Ordered(Normal(jnp.zeros(2), 1.0), positive="yes")


def test_hopeless_rejection_sampling_raises_naming_the_variable():
    from coromix.joint import JointDistributionCoroutine

    def model():
        phi = yield Ordered(Normal(jnp.array([5.0, 0.0, -5.0]), 1.0))

    jd = JointDistributionCoroutine(model)
    with pytest.raises(ValueError, match=r"variable 'phi'.*pilot draws.*max_tries=10000"):
        jd.sample(10, seed=0)
    np.testing.assert_allclose(  # the density is fine: Stan's meaning, no normalization
        jd.log_prob({"phi": jnp.array([-1.0, 0.0, 1.0])}),
        stats.norm([5.0, 0.0, -5.0], 1.0).logpdf([-1.0, 0.0, 1.0]).sum(),
        rtol=1e-5,
    )
    # Traced parameters (no pilot): the loop gives up after max_tries and says so, no NaN returned.
    d = Ordered(Normal(jnp.array([5.0, 0.0, -5.0]), 1.0), max_tries=50, name="phi")
    with pytest.raises(
        (ValueError, jax.errors.JaxRuntimeError), match="Ordered 'phi': rejection sampling drew no"
    ):
        jax.jit(lambda dist, k: dist.sample(10, seed=k))(d, jax.random.key(0))
    with pytest.raises(ValueError, match="max_tries must be at least 1"):
        Ordered(Normal(jnp.zeros(2), 1.0), max_tries=0)


def test_map_accepts_a_non_exchangeable_ordered_prior():
    import coromix as cm

    def model():
        phi = yield Ordered(Normal(jnp.array([0.0, 3.0]), 1.0))

    fit = cm.map(model, seed=0)
    np.testing.assert_allclose(fit["phi"], [0.0, 3.0], atol=1e-3)  # the base's mode, inside


@pytest.mark.slow
def test_nuts_on_a_non_exchangeable_ordered_prior_matches_rejection_draws():
    """hmm_drive_0's prior on its emission means: `ordered[2] phi; phi ~ normal([0, 3], 1)`."""
    import coromix as cm

    def model():
        phi = yield Ordered(Normal(jnp.array([0.0, 3.0]), 1.0))

    post = cm.nuts(model, num_chains=4, num_warmup=500, num_samples=500, seed=0, progress=False)
    draws = np.asarray(post.samples["phi"])  # (chain, draw, 2)
    assert draws.shape == (4, 500, 2) and np.all(np.diff(draws, axis=-1) > 0)
    summary = post.summary()
    reference = _reference_draws([0.0, 3.0], 1.0)
    for k in range(2):
        mcse = np.hypot(
            summary.loc[f"phi[{k}]", "mcse_mean"], reference[:, k].std() / np.sqrt(len(reference))
        )
        diff = draws[..., k].mean() - reference[:, k].mean()
        assert abs(diff) < 4 * mcse, (k, draws[..., k].mean(), reference[:, k].mean(), mcse)
    assert float(summary["r_hat"].max()) <= 1.01  # summary rounds to 2 decimals
