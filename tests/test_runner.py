"""The coroutine runner: naming of sites, Root, errors for malformed models."""

import jax.numpy as jnp
import pytest

import coromix.distributions as tfd
from coromix.runner import ModelDefinitionError, run


def names(model):
    return [site.name for site in run(model, lambda name, dist: dist.sample(seed=0))]


def test_names_from_assignment_targets():
    def model():
        mu1 = yield tfd.Normal(0.0, 1.0)
        sigma = yield tfd.HalfNormal(2.0)
        observed_data = yield tfd.Normal(mu1, sigma)

    assert names(model) == ["mu1", "sigma", "observed_data"]


def test_explicit_name_wins_and_bare_yield_gets_position_name():
    def model():
        a = yield tfd.Normal(0.0, 1.0, name="alpha")
        yield tfd.Normal(a, 1.0)
        xs = []
        xs.append((yield tfd.Normal(a, 1.0)))

    assert names(model) == ["alpha", "var1", "var2"]


def test_loop_names_get_occurrence_suffix():
    def model():
        mu = yield tfd.Normal(0.0, 1.0)
        for _ in range(3):
            x = yield tfd.Normal(mu, 1.0)
        n = 0
        while n < 2:
            y = yield tfd.Normal(x, 1.0)
            n += 1

    assert names(model) == ["mu", "x_0", "x_1", "x_2", "y_0", "y_1"]


def test_same_target_in_two_branches_is_one_variable():
    def model():
        z = yield tfd.Categorical(probs=[0.5, 0.5])
        if z == 0:
            x = yield tfd.Normal(0.0, 1.0)
        else:
            x = yield tfd.Normal(5.0, 1.0)

    assert names(model) == ["z", "x"]


def test_yield_from_submodel_names_and_loops():
    def component():
        loc = yield tfd.Normal(0.0, 1.0)
        return loc

    def model():
        first = yield from component()
        for _ in range(2):
            yield from component()
        x = yield tfd.Normal(first, 1.0)

    assert names(model) == ["loc", "loc_0", "loc_1", "x"]


def test_duplicate_names_are_errors():
    def model():
        x = yield tfd.Normal(0.0, 1.0)
        x = yield tfd.Normal(x, 1.0)

    with pytest.raises(ModelDefinitionError, match="'x' is assigned by two yields"):
        names(model)

    def explicit():
        yield tfd.Normal(0.0, 1.0, name="a")
        yield tfd.Normal(0.0, 1.0, name="a")

    with pytest.raises(ModelDefinitionError, match="two variables are named 'a'"):
        names(explicit)


def test_root_changes_nothing():
    Root = tfd.JointDistributionCoroutine.Root

    def model():
        mu = yield Root(tfd.Normal(0.0, 1.0))
        x = yield tfd.Normal(mu, 1.0)

    assert names(model) == ["mu", "x"]


def test_non_generator_and_bad_yield_are_clear_errors():
    with pytest.raises(ModelDefinitionError, match="generator function"):
        run(lambda: 3, lambda n, d: 0.0)

    def model():
        yield tfd.Normal(0.0, 1.0)
        yield jnp.zeros(3)

    with pytest.raises(
        ModelDefinitionError, match=r"yielded an array of shape \(3,\) and dtype float32 after"
    ):
        names(model)
