"""MAP by optimization: the mode of the constrained posterior density."""

import jax.numpy as jnp
import numpy as np
import pytest

import coromix as cm

tfd = cm.distributions

Y = np.array([1.2, 0.4, 2.1, 0.9, 1.7])
COUNTS = np.array([3.0, 5.0, 2.0, 4.0])


def conjugate_model():
    mu = yield tfd.Normal(0.0, 2.0)
    y = yield tfd.Normal(jnp.broadcast_to(mu, Y.shape), 1.0)
    rate = yield tfd.Gamma(3.0, 2.0)
    counts = yield tfd.Poisson(jnp.broadcast_to(rate, COUNTS.shape))


def test_map_is_the_closed_form_mode():
    estimate = cm.map(conjugate_model, {"y": Y, "counts": COUNTS})
    assert list(estimate) == ["mu", "rate"]
    precision = 1 / 2.0**2 + len(Y)
    np.testing.assert_allclose(estimate.mu, Y.sum() / precision, atol=1e-3)
    # the mode of Gamma(3 + sum, 2 + n), without the Jacobian of the log transform
    np.testing.assert_allclose(estimate.rate, (3.0 + COUNTS.sum() - 1) / (2.0 + len(COUNTS)),
                               atol=1e-3)
    jd = tfd.JointDistributionCoroutine(conjugate_model)
    np.testing.assert_allclose(estimate.log_density,
                               jd.log_prob(mu=estimate.mu, rate=estimate.rate, y=Y, counts=COUNTS),
                               rtol=1e-5)


def test_map_sums_out_discrete_choices():
    def switch():
        z = yield tfd.Bernoulli(probs=0.3)
        mu = yield tfd.Normal(0.0, 1.0)
        x = yield tfd.Normal(mu + 2.0 * z, 1.0)

    # log p(mu, x) = log N(mu; 0, 1) + log(0.7 N(x; mu, 1) + 0.3 N(x; mu + 2, 1))
    grid = np.linspace(-3, 3, 600001)
    norm = lambda v, m: -0.5 * (v - m) ** 2
    log_p = norm(grid, 0) + np.logaddexp(np.log(0.7) + norm(1.5, grid),
                                         np.log(0.3) + norm(1.5, grid + 2))
    estimate = cm.map(tfd.JointDistributionCoroutine(switch), {"x": 1.5})
    np.testing.assert_allclose(estimate.mu, grid[np.argmax(log_p)], atol=1e-3)


def test_map_error_when_no_restart_is_finite():
    def exponential_model():
        rate = yield tfd.Exponential(1.0)
        t = yield tfd.Exponential(jnp.broadcast_to(rate, (2,)))

    with pytest.raises(ValueError, match=r"all 3 restarts .*\['rate'\]"):
        cm.map(exponential_model, {"t": jnp.array([1.0, -1.0])}, num_restarts=3, num_steps=10)
    with pytest.raises(ValueError, match="num_steps must be an integer >= 1"):
        cm.map(exponential_model, {"t": jnp.array([1.0, 1.0])}, num_steps=0)
