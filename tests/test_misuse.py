"""Misuses get a clear error naming the argument, what it got and what was expected.

The start of the misuse catalogue (issue 13): each case asserts the error type and the message.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import coromix as cm
from coromix.results import Posterior

tfd = cm.distributions


def normal_model():
    mu = yield tfd.Normal(0.0, 1.0)
    x = yield tfd.Normal(mu, 1.0)


def other_model():
    theta = yield tfd.Normal(0.0, 1.0)
    x = yield tfd.Normal(theta, 1.0)


JD = tfd.JointDistributionCoroutine(normal_model)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: JD.sample(value={"muu": 1.0}),
            ValueError,
            (
                r"sample\(value=...\): no variable named \['muu'\] in model 'normal_model'; its "
                r"variables are \['mu', 'x'\]"
            ),
        ),
        (lambda: JD.sample(-3), ValueError, r"sample_shape must be made of integers >= 0; got -3"),
        (lambda: JD.sample((2.5,)), ValueError, r"sample_shape .* got \(2.5,\)"),
        (
            lambda: JD.sample("ten"),
            ValueError,
            r"sample_shape must be made of integers >= 0; got 'ten'",
        ),
        (lambda: JD.sample(object()), TypeError, r"sample_shape must be an int or a tuple of ints"),
        (
            lambda: JD.sample(2, seed="abc"),
            TypeError,
            r"seed must be an int, a JAX PRNG key or None; got str 'abc'",
        ),
        (lambda: JD.sample(2, seed=1.5), TypeError, r"seed must be .* got float 1.5"),
        (
            lambda: cm.nuts(normal_model, {"x": 1.0}, init="map"),
            ValueError,
            r"init must be None, 'mode', 'uniform', 'prior' or a mapping .* got 'map'",
        ),
    ],
)
def test_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_loading_a_fit_with_another_model_is_an_error(tmp_path):
    post = Posterior({"mu": np.zeros((1, 3))}, observed={"x": np.array(1.0)}, model=JD)
    path = tmp_path / "fit.nc"
    post.save(str(path))
    loaded = Posterior.load(str(path), model=JD)
    np.testing.assert_array_equal(loaded.samples["mu"], post.samples["mu"])
    other = tfd.JointDistributionCoroutine(other_model)
    with pytest.raises(
        ValueError,
        match=r"fit.nc holds a fit of model 'normal_model' with "
        r"variables \['mu'\]; the model given, 'other_model'",
    ):
        Posterior.load(str(path), model=other)
    assert jnp.shape(loaded.prior_predictive(5)["x"]) == (1, 5)
