"""The misuse catalogue (issue 13): what a careless user does, and the error each mistake gets.

Every case asserts the error type and, with a precise pattern, that the message names the
variable or argument, what it got and what was expected; nothing may come back as a silent NaN or
-inf, or as a raw JAX / NumPy / h5py error.  Errors are raised where the mistake is made
(construction, ``pin``, the sampler's arguments), before anything compiles, so the whole file
runs in seconds.  Cases whose fix lies in files owned elsewhere are marked
``xfail(strict=True)`` with the reason.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import coromix as cm
from coromix import enumerate as enum
from coromix.cli import cache, main
from coromix.cli import fit as fit_module
from coromix.cli.errors import FitError
from coromix.results import Posterior
from coromix.runner import ControlFlowError, ModelDefinitionError

tfd = cm.distributions
nan, inf = float("nan"), float("inf")


def case(call, error, pattern, *, marks=(), id=None):
    """One misuse: ``call()`` must raise ``error`` whose message matches ``pattern``."""
    return pytest.param(call, error, pattern, marks=marks, id=id)


def check(call, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        call()
    message = str(info.value)
    for raw in ("Tracer", "MLIR", "h5py", "jaxlib", "ufunc"):
        assert raw not in message, f"raw library words in: {message}"
    return info.value


# --- distributions: bad parameters, at construction --------------------------------------------

PARAMETERS = [
    case(
        lambda: tfd.Normal("zero", 1.0),
        TypeError,
        r"Normal: parameter `loc` must be a number or an array of numbers; got str 'zero'",
        id="string-loc",
    ),
    case(
        lambda: tfd.Normal(0.0, "1", name="x"),
        TypeError,
        r"Normal 'x': parameter `scale` must be a number or an array of numbers; got str '1'",
        id="string-scale-named",
    ),
    case(
        lambda: tfd.Normal(0.0, None),
        TypeError,
        r"parameter `scale` must be a number or an array of numbers; got NoneType None",
        id="none-scale",
    ),
    case(
        lambda: tfd.Gamma(["a", "b"], 1.0),
        TypeError,
        r"Gamma: parameter `concentration` must be .* got list \['a', 'b'\]",
        id="list-of-strings",
    ),
    case(
        lambda: tfd.Poisson(rate=1 + 2j),
        TypeError,
        r"Poisson: parameter `rate` must be a number or an array of numbers; got complex",
        id="complex-rate",
    ),
    case(
        lambda: tfd.Categorical(probs="uniform"),
        TypeError,
        r"Categorical: parameter `probs` must be a number or an array of numbers; got str",
        id="string-probs",
    ),
    case(
        lambda: tfd.Normal(0.0, 1.0, name=123),
        TypeError,
        r"Normal: name must be a string \(the variable's name\) or None; got int 123",
        id="name-not-a-string",
    ),
    case(
        lambda: tfd.Normal(jnp.zeros(3), jnp.ones(2)),
        ValueError,
        r"Normal: the parameters' shapes do not broadcast to one batch shape: `loc` \(3,\), "
        r"`scale` \(2,\)",
        id="shapes-loc-scale",
    ),
    case(
        lambda: tfd.Gamma(jnp.ones((2, 3)), jnp.ones(4), name="g"),
        ValueError,
        r"Gamma 'g': the parameters' shapes do not broadcast .* `concentration` \(2, 3\), "
        r"`rate` \(4,\)",
        id="shapes-gamma",
    ),
    case(
        lambda: tfd.StudentT(jnp.ones(2), jnp.zeros(3), 1.0),
        ValueError,
        r"StudentT: .* do not broadcast .* `df` \(2,\), `loc` \(3,\), `scale` \(\)",
        id="shapes-student",
    ),
    case(
        lambda: tfd.Binomial(jnp.full(3, 5.0), probs=jnp.full(2, 0.5)),
        ValueError,
        r"Binomial: .* do not broadcast .* `total_count` \(3,\), `probs` \(2,\)",
        id="shapes-binomial",
    ),
    case(
        lambda: tfd.MultivariateNormalTriL(jnp.zeros(2), jnp.eye(3)),
        ValueError,
        r"`scale_tril` must have shape \(\.\.\., 2, 2\) to match `loc` of shape \(2,\); "
        r"got \(3, 3\)",
        id="mvn-shapes",
    ),
    case(
        lambda: tfd.Normal(nan, 1.0),
        ValueError,
        r"Normal: parameter `loc` must be finite; got nan",
        id="nan-loc",
    ),
    case(
        lambda: tfd.Normal(jnp.array([0.0, inf]), 1.0),
        ValueError,
        r"parameter `loc` must be finite; got inf at \[1\] \(1 of 2 values\)",
        id="inf-loc",
    ),
    case(
        lambda: tfd.Normal(0.0, -1.0),
        ValueError,
        r"Normal: parameter `scale` must be positive; got -1.0",
        id="negative-scale",
    ),
    case(
        lambda: tfd.Normal(0.0, jnp.array([1.0, -2.0, 3.0])),
        ValueError,
        r"parameter `scale` must be positive; got -2.0 at \[1\] \(1 of 3 values\)",
        id="negative-scale-element",
    ),
    case(
        lambda: tfd.HalfNormal(0.0),
        ValueError,
        r"HalfNormal: parameter `scale` must be positive; got 0.0",
        id="zero-scale",
    ),
    case(
        lambda: tfd.Gamma(-1.0, 1.0),
        ValueError,
        r"Gamma: parameter `concentration` must be positive; got -1.0",
        id="gamma-concentration",
    ),
    case(
        lambda: tfd.Beta(1.0, 0.0),
        ValueError,
        r"Beta: parameter `concentration0` must be positive; got 0.0",
        id="beta-concentration0",
    ),
    case(
        lambda: tfd.Uniform(1.0, 0.0),
        ValueError,
        r"Uniform: parameter `high` must be greater than `low`; got 0.0",
        id="uniform-high-below-low",
    ),
    case(
        lambda: tfd.Uniform(nan, 1.0),
        ValueError,
        r"Uniform: parameter `low` must be finite; got nan",
        id="uniform-nan-low",
    ),
    case(
        lambda: tfd.Exponential(-2.0),
        ValueError,
        r"Exponential: parameter `rate` must be positive; got -2.0",
        id="exponential-rate",
    ),
    case(
        lambda: tfd.Poisson(-1.0),
        ValueError,
        r"Poisson: parameter `rate` must be nonnegative; got -1.0",
        id="poisson-rate",
    ),
    case(
        lambda: tfd.Poisson(rate=1.0, log_rate=0.0),
        ValueError,
        r"Poisson: give exactly one of `rate` or `log_rate`",
        id="poisson-both",
    ),
    case(
        lambda: tfd.Categorical(probs=[0.5, 0.6]),
        ValueError,
        r"Categorical: parameter `probs` must be probabilities \(nonnegative, summing to 1 over "
        r"the last axis\); got \[0.5 0.6\]",
        id="probs-sum",
    ),
    case(
        lambda: tfd.Categorical(probs=0.5),
        ValueError,
        r"Categorical: `probs` needs a last axis of K categories; got a scalar",
        id="probs-scalar",
    ),
    case(
        lambda: tfd.Categorical(logits=[0.0, nan]),
        ValueError,
        r"Categorical: parameter `logits` must be numbers below \+inf \(not NaN\); got nan at "
        r"\[1\] "
        r"\(1 of 2 values\)",
        id="nan-logits",
    ),
    case(
        lambda: tfd.Categorical(logits=[0.0, inf]),
        ValueError,
        r"Categorical: parameter `logits` must be numbers below \+inf .* got inf at \[1\]",
        id="inf-logits",
    ),
    case(
        lambda: tfd.MultivariateNormalTriL(jnp.array([0.0, nan]), jnp.eye(2)),
        ValueError,
        r"MultivariateNormalTriL: parameter `loc` must be finite; got nan at \[1\]",
        id="mvn-nan-loc",
    ),
    case(
        lambda: tfd.Categorical(probs=[0.5, 0.5], logits=[0.0, 0.0]),
        ValueError,
        r"Categorical: give exactly one of `logits` or `probs`",
        id="probs-and-logits",
    ),
    case(
        lambda: tfd.Bernoulli(probs=1.5),
        ValueError,
        r"Bernoulli: parameter `probs` must be in \[0, 1\]; got 1.5",
        id="bernoulli-probs",
    ),
    case(
        lambda: tfd.Binomial(2.5, probs=0.5),
        ValueError,
        r"Binomial: parameter `total_count` must be a nonnegative integer; got 2.5",
        id="binomial-count",
    ),
    case(
        lambda: tfd.NegativeBinomial(3.0, logits=nan),
        ValueError,
        r"NegativeBinomial: parameter `logits` must be numbers \(not NaN\); got nan",
        id="negbin-nan-logits",
    ),
    case(
        lambda: tfd.Dirichlet(jnp.array([1.0, -1.0])),
        ValueError,
        r"Dirichlet: parameter `concentration` must be positive; got -1.0 at \[1\]",
        id="dirichlet-concentration",
    ),
    case(
        lambda: tfd.StudentT(0.0, 0.0, 1.0),
        ValueError,
        r"StudentT: parameter `df` must be positive; got 0.0",
        id="student-df",
    ),
    case(
        lambda: tfd.Factor(nan),
        ValueError,
        r"Factor: parameter `log_weight` must be a number or -inf, not NaN; got nan",
        id="factor-nan",
    ),
    case(
        lambda: tfd.Independent(tfd.Normal(jnp.zeros(3), 1.0), 2),
        ValueError,
        r"`reinterpreted_batch_ndims` must be an integer in \[0, 1\] .* got 2",
        id="independent-ndims",
    ),
    case(
        lambda: tfd.Mixture(tfd.Categorical(probs=[0.5, 0.5]), [tfd.Normal(0.0, 1.0)]),
        ValueError,
        r"Mixture: `cat` has K = 2 categories .* but 1 components were given",
        id="mixture-count",
    ),
]


@pytest.mark.parametrize(("call", "error", "pattern"), PARAMETERS)
def test_bad_parameters(call, error, pattern):
    check(call, error, pattern)


# --- distributions: concrete values outside the support ---------------------------------------


def _value_cases():
    gamma_or_exponential = tfd.Mixture(
        tfd.Categorical(probs=[0.5, 0.5]), [tfd.Gamma(2.0, 1.0), tfd.Exponential(1.0)]
    )
    msf = tfd.MixtureSameFamily(
        tfd.Categorical(probs=[0.5, 0.5]), tfd.Normal(jnp.array([-1.0, 1.0]), 1.0)
    )
    return [
        (tfd.Normal(0.0, 1.0), nan, r"Normal: value outside the support \(real\); got nan"),
        (tfd.Normal(0.0, 1.0, name="y"), inf, r"Normal 'y': value outside .* got inf"),
        (
            tfd.HalfNormal(1.0),
            jnp.array([1.0, -2.0, 3.0]),
            (
                r"HalfNormal: value outside the support \(positive\); got -2.0 at \[1\] "
                r"\(1 of 3 values\)"
            ),
        ),
        (tfd.Gamma(2.0, 1.0), -1.0, r"Gamma: value outside the support \(positive\); got -1.0"),
        (tfd.Exponential(1.0), -0.5, r"Exponential: value outside .* got -0.5"),
        (tfd.LogNormal(0.0, 1.0), -3.0, r"LogNormal: value outside .* got -3.0"),
        (tfd.InverseGamma(2.0, 1.0), -1.0, r"InverseGamma: value outside .* got -1.0"),
        (tfd.Beta(2.0, 2.0), 1.5, r"Beta: value outside the support \(unit interval"),
        (
            tfd.Categorical(probs=[0.5, 0.5]),
            2,
            r"Categorical: value outside the support \(integers in \[0, 1\]\); got 2",
        ),
        (tfd.Categorical(logits=[0.0, 0.0, 0.0]), -1, r"integers in \[0, 2\]\); got -1"),
        (tfd.Categorical(probs=[0.5, 0.5]), 0.5, r"integers in \[0, 1\]\); got 0.5"),
        (tfd.Bernoulli(probs=0.3), 2, r"Bernoulli: value outside .* \[0, 1\]\); got 2"),
        (tfd.Poisson(3.0), -1, r"Poisson: value outside .* \(nonnegative integers\); got -1"),
        (tfd.Poisson(3.0), 1.5, r"Poisson: value outside .* got 1.5"),
        (tfd.NegativeBinomial(3.0, probs=0.5), -2, r"NegativeBinomial: value outside .* -2"),
        (tfd.Binomial(5.0, probs=0.5), -1, r"Binomial: value outside .* got -1"),
        (
            tfd.Dirichlet(jnp.ones(3)),
            jnp.array([0.5, 0.6, 0.1]),
            r"Dirichlet: value outside the support \(simplex .*\); got \[0.5 0.6 0.1\]",
        ),
        (
            tfd.MultivariateNormalTriL(jnp.zeros(2), jnp.eye(2)),
            jnp.array([[0.0, 0.0], [nan, 1.0]]),
            r"MultivariateNormalTriL: value outside .* at \[1\] \(1 of 2 events\)",
        ),
        (
            tfd.Independent(tfd.Normal(jnp.zeros(3), 1.0), 1),
            jnp.array([0.0, nan, 0.0]),
            r"Normal: value outside the support \(real\); got nan at \[1\]",
        ),
        (
            tfd.Sample(tfd.Poisson(1.0), 3),
            jnp.array([1.0, -1.0, 2.0]),
            r"Poisson: value outside .* got -1.0 at \[1\]",
        ),
        (
            tfd.Ordered(tfd.Normal(jnp.zeros(3), 1.0)),
            jnp.array([1.0, 0.0, 2.0]),
            r"Ordered: value outside the support \(ordered vector",
        ),
        (gamma_or_exponential, -1.0, r"Mixture: value outside the support \(positive\); got -1"),
        (msf, nan, r"Normal: value outside .* got nan"),
    ]


VALUE_KINDS = [
    case(
        lambda: tfd.Normal(0.0, 1.0).log_prob("a"),
        TypeError,
        r"Normal: the value must be a number or an array of numbers; got str 'a'",
        id="string-value",
    ),
    case(
        lambda: tfd.Poisson(2.0, validate_args=False).log_prob(None),
        TypeError,
        r"Poisson: the value must be a number or an array of numbers; got NoneType None",
        id="none-value",
    ),
    case(
        lambda: tfd.Normal(jnp.zeros(3), 1.0).log_prob(jnp.zeros(4)),
        ValueError,
        r"Normal: a value of shape \(4,\) does not broadcast with its shape \(3,\) \(batch_shape "
        r"\(3,\) \+ event_shape \(\)\)",
        id="value-shape",
    ),
    case(
        lambda: tfd.Dirichlet(jnp.ones(3), validate_args=False).log_prob(jnp.ones(4) / 4),
        ValueError,
        r"Dirichlet: a value of shape \(4,\) does not broadcast with its shape \(3,\)",
        id="event-shape",
    ),
]


@pytest.mark.parametrize(("call", "error", "pattern"), VALUE_KINDS)
def test_values_that_are_not_numbers_or_do_not_fit(call, error, pattern):
    check(call, error, pattern)


@pytest.mark.parametrize(
    ("dist", "value", "pattern"),
    _value_cases(),
    ids=lambda x: type(x).__name__ if isinstance(x, tfd.Distribution) else None,
)
def test_values_outside_the_support(dist, value, pattern):
    check(lambda: dist.log_prob(value), ValueError, pattern)


def test_values_outside_the_support_are_minus_inf_when_asked_or_traced():
    """validate_args=False scores them -inf (a mixture component, say); traced values are never
    checked (jit, vmap, grad still work); boundary points keep the density's limit."""
    assert tfd.HalfNormal(1.0, validate_args=False).log_prob(-1.0) == -np.inf
    assert tfd.Categorical(probs=[0.5, 0.5], validate_args=False).log_prob(2) == -np.inf
    assert jax.jit(tfd.HalfNormal(1.0).log_prob)(-1.0) == -np.inf
    lp = jax.vmap(tfd.Categorical(probs=[0.5, 0.5]).log_prob)(jnp.array([0, 3]))
    assert lp[1] == -np.inf and np.isclose(lp[0], np.log(0.5))
    grad = jax.grad(lambda s: tfd.Normal(0.0, s).log_prob(1.0))(2.0)
    np.testing.assert_allclose(grad, -1 / 2 + 1 / 8, rtol=1e-6)
    np.testing.assert_allclose(tfd.Gamma(1.0, 2.0).log_prob(0.0), np.log(2.0), rtol=1e-6)
    # a mixture of supports: a value inside one component's is fine
    mixed = tfd.Mixture(
        tfd.Categorical(probs=[0.5, 0.5]), [tfd.Gamma(2.0, 1.0), tfd.Normal(0.0, 1.0)]
    )
    np.testing.assert_allclose(
        mixed.log_prob(-1.0), np.log(0.5) - 0.5 - 0.5 * np.log(2 * np.pi), rtol=1e-5
    )
    # bounds that come from parameters may differ by component: -inf, not an error
    assert tfd.Uniform(0.0, 1.0).log_prob(2.0) == -np.inf


# --- models ------------------------------------------------------------------------------------


def normal_model():
    mu = yield tfd.Normal(0.0, 1.0)
    s = yield tfd.HalfNormal(1.0)
    x = yield tfd.Normal(jnp.full(5, mu), s)


def yields_array():
    mu = yield tfd.Normal(0.0, 1.0)
    x = yield jnp.zeros(3) + mu


def yields_none():
    mu = yield tfd.Normal(0.0, 1.0)
    yield


def sub_model():
    a = yield tfd.Normal(0.0, 1.0)


def yields_generator():
    mu = yield tfd.Normal(0.0, 1.0)
    b = yield sub_model()


def yields_text():
    mu = yield "Normal(0, 1)"


def not_a_generator():
    return tfd.Normal(0.0, 1.0)


def if_on_batch():
    mu = yield tfd.Normal(0.0, 1.0)
    x = yield tfd.Normal(jnp.zeros(3), 1.0)
    if x > 0:
        y = yield tfd.Normal(mu, 1.0)


def if_on_continuous():
    mu = yield tfd.Normal(0.0, 1.0)
    if mu > 0:
        x = yield tfd.Normal(1.0, 1.0)
    else:
        x = yield tfd.Normal(-1.0, 1.0)


def if_on_plate():
    z = yield tfd.Categorical(probs=jnp.full((4, 2), 0.5))
    if z == 0:
        x = yield tfd.Normal(jnp.zeros(4), 1.0)
    else:
        x = yield tfd.Normal(jnp.ones(4), 1.0)


def list_index_on_plate():
    z = yield tfd.Categorical(probs=jnp.full((4, 2), 0.5))
    x = yield tfd.Normal([0.0, 3.0][z], 1.0)


def numpy_on_traced():
    mu = yield tfd.Normal(0.0, 1.0)
    x = yield tfd.Normal(np.exp(mu), 1.0)


def while_on_continuous():
    mu = yield tfd.Normal(0.0, 1.0)
    while mu < 3:
        mu = mu + 1
    x = yield tfd.Normal(mu, 1.0)


def twice_named():
    a = yield tfd.Normal(0.0, 1.0, name="x")
    b = yield tfd.Normal(0.0, 1.0, name="x")


def twice_assigned():
    x = yield tfd.Normal(0.0, 1.0)
    x = yield tfd.Normal(x, 1.0)


def branch_on_scalar_choice():
    z = yield tfd.Categorical(probs=[0.6, 0.4])
    if z == 0:
        x = yield tfd.Normal(0.0, 1.0)
    else:
        x = yield tfd.Normal(3.0, 1.0)


def latent_poisson():
    k = yield tfd.Poisson(3.0)
    x = yield tfd.Normal(k, 1.0)


def many_paths():
    total = 0
    for _ in range(3):
        z = yield tfd.Categorical(probs=[0.5, 0.5])
        total = total + (1 if z == 1 else 0)
    x = yield tfd.Normal(total, 1.0)


def different_paths():
    z = yield tfd.Categorical(probs=[0.5, 0.5])
    if z == 0:
        x = yield tfd.Normal(0.0, 1.0)
    else:
        y = yield tfd.Normal(0.0, 1.0)


def jd(model):
    return tfd.JointDistributionCoroutine(model)


def fresh_normal():
    return jd(normal_model)


CONTROL_FLOW_FIX = r".*Fix: index with it \(mu\[z\]\) or use jnp.where\(condition, a, b\)"

MODELS = [
    case(
        lambda: jd(yields_array).sample(2, seed=0),
        ModelDefinitionError,
        r"model 'yields_array', line \d+: yielded an array of shape \(3,\) and dtype float32 "
        r"after 'mu'; a model yields coromix distributions only",
        id="yield-array",
    ),
    case(
        lambda: jd(yields_none).sample(seed=0),
        ModelDefinitionError,
        r"model 'yields_none', line \d+: yielded None \(a bare `yield`\) after 'mu'",
        id="yield-none",
    ),
    case(
        lambda: jd(yields_generator).sample(seed=0),
        ModelDefinitionError,
        r"yielded a generator \(run a sub-model with `yield from submodel\(\)`",
        id="yield-generator",
    ),
    case(
        lambda: jd(yields_text).sample(seed=0),
        ModelDefinitionError,
        r"model 'yields_text', line \d+: yielded a builtins.str as its first variable",
        id="yield-string",
    ),
    case(
        lambda: jd(not_a_generator).sample(seed=0),
        ModelDefinitionError,
        r"the model must be a generator function .* calling it returned Normal",
        id="not-a-generator",
    ),
    case(
        lambda: tfd.JointDistributionCoroutine(42),
        TypeError,
        r"JointDistributionCoroutine needs a generator function; got int",
        id="not-callable",
    ),
    case(
        lambda: jd(if_on_batch).sample(2, seed=0),
        ControlFlowError,
        r"model 'if_on_batch', test_misuse_catalogue.py line \d+ \(`if x > 0:`\): Python control "
        r"flow \(if, while, and, or\) needs one True/False value, but 'x' has shape \(3,\)"
        + CONTROL_FLOW_FIX,
        id="if-batch-sample",
    ),
    case(
        lambda: jd(if_on_batch).log_prob(mu=0.0, x=np.zeros(3)),
        ValueError,  # NumPy's "truth value is ambiguous" on concrete data, re-raised
        r"\(`if x > 0:`\): .* 'x' has shape \(3,\)" + CONTROL_FLOW_FIX,
        id="if-batch-log-prob",
    ),
    case(
        lambda: jd(if_on_continuous).sample(seed=0),
        TypeError,  # JAX's TracerBoolConversionError, re-raised
        r"\(`if mu > 0:`\): .* but 'mu' is traced" + CONTROL_FLOW_FIX,
        id="if-traced",
    ),
    case(
        lambda: jd(while_on_continuous).log_prob(mu=0.5, x=1.0),
        ControlFlowError,
        r"\(`while mu < 3:`\): .* 'mu' is traced",
        id="while-traced",
    ),
    case(
        lambda: jd(if_on_plate).log_prob(x=np.ones(4)),
        ControlFlowError,
        r"\(`if z == 0:`\): .* 'z' has shape \(4,\)" + CONTROL_FLOW_FIX,
        id="if-plate",
    ),
    case(
        lambda: jd(list_index_on_plate).log_prob(x=np.ones(4)),
        ControlFlowError,
        r"a Python integer \(a list index, range\(\), int\(\)\) needs one concrete integer, but "
        r"'z' has shape \(4,\).* Fix: index a JAX array instead",
        id="list-index-plate",
    ),
    case(
        lambda: jd(numpy_on_traced).sample(seed=0),
        ControlFlowError,
        r"\(`x = yield tfd.Normal\(np.exp\(mu\), 1.0\)`\): a NumPy function \(np.\*\) needs a "
        r"concrete array, but 'mu' is traced.* Fix: use the jax.numpy function",
        id="numpy-traced",
    ),
    case(
        lambda: jd(twice_named).sample(seed=0),
        ModelDefinitionError,
        r"two variables are named 'x' \(the second at line \d+\); names must be unique",
        id="same-name",
    ),
    case(
        lambda: jd(twice_assigned).sample(seed=0),
        ModelDefinitionError,
        r"variable 'x' is assigned by two yields .* rename one or pass name=",
        id="same-target",
    ),
    case(
        lambda: fresh_normal().sample(value={"muu": 1.0}),
        ValueError,
        r"no variable named \['muu'\] in model 'normal_model'; its variables are "
        r"\['mu', 's', 'x'\]",
        id="sample-value-name",
    ),
    case(
        lambda: fresh_normal().pin(xx=np.zeros(5)),
        ValueError,
        r"observed values: no variable named \['xx'\] in model 'normal_model'; its variables "
        r"are \['mu', 's', 'x'\]; did you mean 'x'\?",
        id="pin-name",
    ),
    case(
        lambda: fresh_normal().pin(x="abc"),
        TypeError,
        r"observed value for 'x' must be a number or an array of numbers; got str 'abc'",
        id="pin-string",
    ),
    case(
        lambda: fresh_normal().pin(x=[1.0, 2.0, None, 3.0, 4.0]),
        TypeError,
        r"observed value for 'x' must be a number or an array of numbers; got list \[1.0, 2.0, "
        r"None",
        id="pin-none-in-list",
    ),
    case(
        lambda: fresh_normal().sample(value={"mu": "abc"}),
        TypeError,
        r"value for 'mu' in sample\(value=...\) must be a number or an array of numbers; got "
        r"str 'abc'",
        id="sample-value-string",
    ),
    case(
        lambda: fresh_normal().log_prob(mu=0.0, s=1.0, x="abc"),
        TypeError,
        r"value for 'x' must be a number or an array of numbers; got str 'abc'",
        id="log-prob-string",
    ),
    case(
        lambda: fresh_normal().sample(3, value={"x": np.zeros(4)}),
        ValueError,
        r"sample\(value=...\): value for 'x' has shape \(4,\); expected shape \(5,\)",
        id="sample-value-shape",
    ),
    case(
        lambda: fresh_normal().log_prob(muu=0.0, s=1.0, x=np.zeros(5)),
        ValueError,
        r"no variable named \['muu'\] in the model; its variables are \['mu', 's', 'x'\]",
        id="log-prob-name",
    ),
    case(
        lambda: fresh_normal().log_prob(s=1.0, x=np.zeros(5)),
        ValueError,
        r"no value for the continuous variable 'mu': only finite discrete variables are summed "
        r"out; give 'mu' a value",
        id="log-prob-missing",
    ),
    case(
        lambda: fresh_normal().log_prob(mu=0.0, s=1.0, x=np.zeros(4)),
        ValueError,
        r"value for 'x' has shape \(4,\); expected shape \(5,\)",
        id="log-prob-shape",
    ),
    case(
        lambda: fresh_normal().pin(x=np.zeros((2, 5))),
        ValueError,
        r"observed value for 'x' has shape \(2, 5\); pin\(\) takes one draw's shape \(5,\)",
        id="pin-shape",
    ),
    case(
        lambda: fresh_normal().log_prob(mu=0.0, s=1.0, x=np.array([0.0, nan, 0.0, 0.0, 0.0])),
        ValueError,
        r"variable 'x' \(Normal\): Normal: value outside the support \(real\); got nan at \[1\]",
        id="log-prob-nan",
    ),
    case(
        lambda: fresh_normal().log_prob(mu=0.0, s=-1.0, x=np.zeros(5)),
        ValueError,
        r"variable 's' \(HalfNormal\): HalfNormal: value outside the support \(positive\); "
        r"got -1.0",
        id="log-prob-negative-scale-value",
    ),
    case(
        lambda: jd(branch_on_scalar_choice).log_prob(z=2, x=1.0),
        ValueError,
        r"variable 'z' \(Categorical\): Categorical: value outside the support \(integers in "
        r"\[0, 1\]\); got 2",
        id="log-prob-category-range",
    ),
    case(
        lambda: fresh_normal().pin(x=np.array([0.0, nan, 1.0, nan, 2.0])),
        ValueError,
        r"observed value for 'x' has NaN at rows \[1, 3\] \(2 of 5\); coromix does not skip "
        r"missing values",
        id="pin-nan-rows",
    ),
    case(
        lambda: jd(branch_on_scalar_choice).pin(x=nan),
        ValueError,
        r"observed value for 'x' has NaN \(the value\)",
        id="pin-nan-scalar",
    ),
    case(
        lambda: fresh_normal().pin(x=np.array([0.0, 1.0, inf, 0.0, 0.0])),
        ValueError,
        r"observed value for 'x' is outside the support of its Normal \(real\) at rows \[2\] "
        r"\(1 of 5\): inf",
        id="pin-inf",
    ),
    case(
        lambda: jd(_poisson_counts).pin(y=np.array([1, -2, 3, 1.5])),
        ValueError,
        r"observed value for 'y' is outside the support of its Poisson \(nonnegative "
        r"integers\) at rows \[1, 3\] \(2 of 4\): -2.0, 1.5",
        id="pin-poisson-support",
    ),
    case(
        lambda: jd(_cluster_labels).pin(z=np.array([0, 1, 3, 2])),
        ValueError,
        r"observed value for 'z' is outside the support of its Categorical \(integers in "
        r"\[0, 2\]\) at rows \[2\] \(1 of 4\): 3",
        id="pin-category-range",
    ),
    case(
        lambda: fresh_normal().pin(x=np.zeros(5)).unnormalized_log_prob({"mu": 0.0}),
        ValueError,
        r"expected values for the free continuous variables \['mu', 's'\]; missing \['s'\], "
        r"unexpected \[\]",
        id="pinned-missing",
    ),
    case(
        lambda: fresh_normal().pin(x=np.zeros(5)).to_unconstrained({"mu": jnp.zeros(3), "s": 1}),
        ValueError,
        r"value for 'mu' has shape \(3,\); expected shape \(\) \(one draw of model "
        r"'normal_model'\)",
        id="pinned-shape",
    ),
]


def _poisson_counts():
    rate = yield tfd.Gamma(2.0, 1.0)
    y = yield tfd.Poisson(jnp.full(4, rate))


def _cluster_labels():
    w = yield tfd.Dirichlet(jnp.ones(3))
    z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (4, 3)))


@pytest.mark.parametrize(("call", "error", "pattern"), MODELS)
def test_model_misuse(call, error, pattern):
    check(call, error, pattern)


def test_branching_on_a_scalar_choice_still_works():
    """The re-raised control-flow error must not break the automatic fallback to paths."""
    model = jd(branch_on_scalar_choice)
    x = 1.2
    density = [np.exp(-0.5 * (x - m) ** 2) / np.sqrt(2 * np.pi) for m in (0.0, 3.0)]
    expected = np.log(0.6 * density[0] + 0.4 * density[1])
    np.testing.assert_allclose(model.log_prob(x=x), expected, rtol=1e-5)


def test_log_prob_with_nan_raises_on_every_call():
    model = fresh_normal()
    values = {"mu": 0.0, "s": 1.0}
    model.log_prob(**values, x=np.zeros(5))  # the first call runs eagerly
    with pytest.raises(ValueError, match=r"variable 'x'.*got nan"):
        model.log_prob(**values, x=np.full(5, nan))


# --- enumeration -------------------------------------------------------------------------------

ENUMERATION = [
    case(
        lambda: jd(latent_poisson).log_prob(x=1.0),
        enum.EnumerationError,
        r"variable 'k' \(Poisson\) has an infinite support, so it cannot be summed out; give it "
        r"a value",
        id="infinite-support",
    ),
    case(
        lambda: tfd.JointDistributionCoroutine(many_paths, max_paths=4).log_prob(x=1.0),
        enum.EnumerationError,
        r"more than max_paths=4 .* Use the vectorized form",
        id="max-paths",
    ),
    case(
        lambda: jd(different_paths).log_prob(x=1.0),
        enum.EnumerationError,
        r"the model yields different variables on different paths \(first path: \['z', "
        r"'x'\]\); every path must yield the same variables",
        id="different-paths",
    ),
    case(
        lambda: jd(branch_on_scalar_choice).discrete_posterior(xx=1.0),
        ValueError,
        r"no variable named \['xx'\] in the model; its variables are \['z', 'x'\]",
        id="discrete-posterior-name",
    ),
    case(
        lambda: jd(branch_on_scalar_choice).pointwise_log_likelihood({"x": 1.0}, ["y"]),
        ValueError,
        r"observed=\['y'\]: no such variable in the model; its variables are \['z', 'x'\]",
        id="pointwise-name",
    ),
]


@pytest.mark.parametrize(("call", "error", "pattern"), ENUMERATION)
def test_enumeration_misuse(call, error, pattern):
    check(call, error, pattern)


# --- hidden Markov models and regime switching -------------------------------------------------


def _hmm(**kwargs):
    args = {
        "initial_distribution": tfd.Categorical(probs=[0.5, 0.5]),
        "transition_distribution": tfd.Categorical(probs=[[0.9, 0.1], [0.2, 0.8]]),
        "observation_distribution": tfd.Normal(jnp.array([-1.0, 1.0]), 1.0),
        "num_steps": 4,
    }
    return tfd.HiddenMarkovModel(**{**args, **kwargs})


def _two_then_three_regimes():
    def step(prev, inputs):
        probs = jnp.array([0.5, 0.5]) if prev is None else jnp.full(3, 1 / 3)
        s = yield tfd.Categorical(probs=probs)
        y = yield tfd.Normal(jnp.array([-1.0, 0.0, 1.0])[s], 1.0)

    return tfd.RegimeSwitching(step, num_steps=4)


def _step_without_regime(prev, inputs):
    y = yield tfd.Normal(0.0, 1.0)


def _switching_model():
    mu = yield tfd.Normal(0.0, 1.0)

    def step(prev, inputs):
        s = yield tfd.Categorical(probs=[0.5, 0.5])
        y = yield tfd.Normal(jnp.array([-1.0, 1.0])[s] + mu, 1.0)

    y = yield tfd.RegimeSwitching(step, num_steps=4)


def _two_observations():
    mu = yield tfd.Normal(0.0, 1.0)

    def step(prev, inputs):
        s = yield tfd.Categorical(probs=[0.5, 0.5])
        a = yield tfd.Normal(jnp.array([-1.0, 1.0])[s] + mu, 1.0)
        b = yield tfd.Normal(jnp.array([0.0, 2.0])[s], 1.0)

    y = yield tfd.RegimeSwitching(step, num_steps=4)


HMM = [
    case(
        lambda: _hmm(transition_distribution=tfd.Categorical(probs=[[0.5, 0.6], [0.5, 0.5]])),
        ValueError,
        r"parameter `probs` must be probabilities .* got \[\[0.5 0.6\]",
        id="hmm-transition-rows",
    ),
    case(
        lambda: _hmm(initial_distribution=tfd.Categorical(probs=[0.2, 0.3, 0.5])),
        ValueError,
        r"HiddenMarkovModel: transition_distribution has 2 categories but "
        r"initial_distribution has 3",
        id="hmm-state-counts",
    ),
    case(
        lambda: _hmm(num_steps=0),
        ValueError,
        r"HiddenMarkovModel: `num_steps` must be at least 1; got 0",
        id="hmm-num-steps",
    ),
    case(
        lambda: _hmm().log_prob(jnp.zeros(3)),
        ValueError,
        r"observations must have shape \[\.\.\., 4\] .* got \[3\]",
        id="hmm-length",
    ),
    case(
        lambda: _hmm().log_prob(jnp.array([0.0, nan, 0.0, 0.0])),
        ValueError,
        r"HiddenMarkovModel: the observations hold NaN at step 1 \(with no mask\)",
        id="hmm-nan",
    ),
    case(
        lambda: tfd.RegimeSwitching(_step_without_regime, num_steps=3).log_prob(jnp.zeros(3)),
        ValueError,
        r"RegimeSwitching: the step's first yield must be the regime, a scalar finite discrete "
        r"distribution",
        id="switching-no-regime",
    ),
    case(
        lambda: (
            tfd.RegimeSwitching(_step_without_regime, num_steps=3, inputs=jnp.zeros(4)).num_regimes
        ),
        ValueError,
        r"inputs must have a time axis of length num_steps=3 .* got an array of shape \(4,\)",
        id="switching-inputs",
    ),
    case(
        lambda: jd(_switching_model).pin(y=np.array([0.0, nan, 1.0, 0.0])),
        ValueError,
        r"observed value for 'y' has NaN at rows \[1\] \(1 of 4\)",
        id="switching-pin-nan",
    ),
    case(
        lambda: jd(_two_observations).pin(y={"a": np.array([0.0, nan, 0, 0]), "b": np.ones(4)}),
        ValueError,
        r"observed value for y\['a'\] has NaN at rows \[1\] \(1 of 4\)",
        id="switching-two-observations-nan",
    ),
    case(
        lambda: jd(_two_observations).pin(y={"a": np.zeros(4), "c": np.ones(4)}),
        ValueError,
        r"value for 'y' must be a mapping with the keys \['a', 'b'\] .* got dict with keys "
        r"\['a', 'c'\]",
        id="switching-two-observations-keys",
    ),
    case(
        lambda: jax.jit(_two_then_three_regimes().log_prob)(jnp.zeros(4)),
        ValueError,
        r"RegimeSwitching: the regime 's' has 2 values at the first step but 3 at a step with 1 "
        r"previous steps; every step's regime must have the same number of values",
        id="switching-regime-count-changes",
    ),
]


@pytest.mark.parametrize(("call", "error", "pattern"), HMM)
def test_regime_misuse(call, error, pattern):
    check(call, error, pattern)


# --- inference ---------------------------------------------------------------------------------

DATA = {"x": np.linspace(-1.0, 1.0, 5)}


def no_parameters():
    z = yield tfd.Categorical(probs=[0.5, 0.5])
    x = yield tfd.Normal(jnp.full(5, 1.0 * z), 1.0)


INFERENCE = [
    case(
        lambda: cm.nuts(normal_model, DATA, num_chains=0, progress=False),
        ValueError,
        r"num_chains must be an integer >= 1; got 0",
        id="nuts-chains",
    ),
    case(
        lambda: cm.nuts(normal_model, DATA, num_chains=2.5, progress=False),
        ValueError,
        r"num_chains must be an integer >= 1; got 2.5",
        id="nuts-chains-float",
    ),
    case(
        lambda: cm.nuts(normal_model, DATA, num_warmup=-1, progress=False),
        ValueError,
        r"num_warmup must be an integer >= 0; got -1",
        id="nuts-warmup",
    ),
    case(
        lambda: cm.nuts(normal_model, DATA, num_samples=0, progress=False),
        ValueError,
        r"num_samples must be an integer >= 1; got 0",
        id="nuts-samples",
    ),
    case(
        lambda: cm.nuts(normal_model, DATA, target_accept=1.5, progress=False),
        ValueError,
        r"target_accept must lie in \(0, 1\); got 1.5",
        id="nuts-target-accept",
    ),
    case(
        lambda: cm.nuts(normal_model, DATA, max_tree_depth=0, progress=False),
        ValueError,
        r"max_tree_depth must be an integer >= 1; got 0",
        id="nuts-tree-depth",
    ),
    case(
        lambda: cm.nuts(normal_model, DATA, chain_method="sequential", progress=False),
        ValueError,
        r"chain_method must be one of .*; got 'sequential'",
        id="nuts-chain-method",
    ),
    case(
        lambda: cm.nuts(normal_model, {"y": DATA["x"]}, progress=False),
        ValueError,
        r"observed values: no variable named \['y'\] in model 'normal_model'",
        id="nuts-observed-name",
    ),
    case(
        lambda: cm.nuts(normal_model, [0.0, 1.0, 2.0], progress=False),
        TypeError,
        r"observed must be a mapping of variable names to values, e.g. \{'y': data\}; got list",
        id="nuts-observed-not-a-mapping",
    ),
    case(
        lambda: cm.nuts(normal_model, {"x": np.array([0.0, 1.0, nan, 2.0, 3.0])}, progress=False),
        ValueError,
        r"observed value for 'x' has NaN at rows \[2\] \(1 of 5\)",
        id="nuts-observed-nan",
    ),
    case(
        lambda: cm.nuts(normal_model, {"x": np.zeros(3)}, progress=False),
        ValueError,
        r"value for 'x' has shape \(3,\); expected shape \(5,\)",
        id="nuts-observed-shape",
    ),
    case(
        lambda: cm.nuts(normal_model, DATA, init={"m": 0.0, "s": 1.0}, progress=False),
        ValueError,
        r"init= does not fit model 'normal_model' \(its parameters: \['mu', 's'\]\): .*missing "
        r"\['mu'\], unexpected \['m'\]; did you mean 'mu'\?",
        id="nuts-init-name",
    ),
    case(
        lambda: cm.nuts(normal_model, DATA, init={"mu": jnp.zeros(3), "s": 1.0}, progress=False),
        ValueError,
        r"init= does not fit model 'normal_model' .* value for 'mu' has shape \(3,\); expected "
        r"shape \(\)",
        id="nuts-init-shape",
    ),
    case(
        lambda: cm.nuts(normal_model, DATA, init="map", progress=False),
        ValueError,
        r"init must be None, 'mode', 'uniform', 'prior' or a mapping .* got 'map'",
        id="nuts-init-method",
    ),
    case(
        lambda: cm.nuts(no_parameters, DATA, progress=False),
        ValueError,
        r"model 'no_parameters' has no free continuous variable to infer",
        id="nuts-no-parameters",
    ),
    case(
        lambda: cm.nuts(normal_model, DATA, seed="abc", progress=False),
        TypeError,
        r"seed must be an int, a JAX PRNG key or None; got str 'abc'",
        id="nuts-seed",
    ),
    case(
        lambda: cm.map(normal_model, DATA, num_restarts=0),
        ValueError,
        r"num_restarts must be an integer >= 1; got 0",
        id="map-restarts",
    ),
    case(
        lambda: cm.map(normal_model, {"x": np.full(5, nan)}),
        ValueError,
        r"observed value for 'x' has NaN at rows \[0, 1, 2, 3, 4\]",
        id="map-observed-nan",
    ),
    case(
        lambda: cm.smc(normal_model, DATA, num_particles=0),
        ValueError,
        r"num_particles must be an integer >= 2; got 0",
        id="smc-particles",
    ),
    case(
        lambda: cm.smc(normal_model, DATA, target_ess=2.0),
        ValueError,
        r"target_ess must be a number in \(0, 1\) .* got 2.0",
        id="smc-target-ess",
    ),
    case(
        lambda: cm.smc(normal_model, {"xs": DATA["x"]}),
        ValueError,
        r"observed values: no variable named \['xs'\] .* did you mean 'x'\?",
        id="smc-observed-name",
    ),
]


@pytest.mark.parametrize(("call", "error", "pattern"), INFERENCE)
def test_inference_misuse(call, error, pattern):
    check(call, error, pattern)


# --- files -------------------------------------------------------------------------------------


def test_file_misuse(tmp_path):
    post = Posterior({"mu": np.zeros((1, 3))})
    missing = tmp_path / "nowhere" / "fit.nc"
    check(
        lambda: Posterior.load(missing),
        FileNotFoundError,
        rf"Posterior.load\('{re.escape(str(missing))}'\): no such file",
    )
    check(
        lambda: Posterior.load(tmp_path),
        FileNotFoundError,
        r"Posterior.load\('.*'\): that is a folder, not a file",
    )
    corrupt = tmp_path / "corrupt.nc"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n this is not a fit")
    check(
        lambda: Posterior.load(corrupt),
        ValueError,
        rf"Posterior.load\('{re.escape(str(corrupt))}'\): not a NetCDF file written by "
        r"Posterior.save .* reading it failed with",
    )
    text = tmp_path / "notes.nc"
    text.write_text("mu\n1.0\n")
    check(lambda: Posterior.load(text), ValueError, r"notes.nc'\): not a NetCDF file")
    check(
        lambda: post.save(missing),
        FileNotFoundError,
        rf"Posterior.save\('.*fit.nc'\): no folder {re.escape(str(missing.parent))}",
    )
    check(lambda: post.save(tmp_path), IsADirectoryError, r"that is a folder, not a file")


# --- the command line --------------------------------------------------------------------------

MODEL_FILE = """
    import coromix as cm
    tfd = cm.distributions

    def model(data):
        slope = yield tfd.Normal(0.0, 2.0)
        sigma = yield tfd.HalfNormal(1.0)
        y = yield tfd.Normal(slope * data["x"], sigma)
"""


@pytest.fixture
def inputs(tmp_path):
    model = tmp_path / "model.py"
    model.write_text(textwrap.dedent(MODEL_FILE))
    data = tmp_path / "data.csv"
    data.write_text("x,y\n0.0,0.1\n1.0,1.4\n2.0,3.1\n")
    return model, data


def cli_error(capsys, *args):
    """``coromix fit ...`` must fail with exit code 2 and a one-line message; returns it."""
    code = main(["fit", *map(str, args), "--quiet", "--no-cache"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_cli_misuse(inputs, tmp_path, capsys):
    model, data = inputs
    notes = tmp_path / "notes.txt"
    notes.write_text("not a folder")
    line = cli_error(capsys, model, "--data", data, "--out", notes)
    assert re.search(rf"coromix fit: error: --out {re.escape(str(notes))} is a file, not", line)
    line = cli_error(capsys, model, "--data", data, "--out", notes / "results")
    assert re.search(r"--out .*notes.txt/results: cannot create it, .*notes.txt is a file", line)
    blank = tmp_path / "blank.csv"
    blank.write_text("y\n1.5\n\n2.5\n3.0\n\n")  # a blank line between rows; trailing ones are fine
    line = cli_error(capsys, model, "--data", blank)
    assert re.search(r"data file .*blank.csv: values that are not finite numbers .*column 'y' in "
                     r"data rows 2 \(''\)$", line)  # fmt: skip
    holes = tmp_path / "holes.csv"
    holes.write_text("x,y\n1,2\n,3\n4,\n")
    line = cli_error(capsys, model, "--data", holes)
    assert "column 'x' in data rows 2 (''); column 'y' in data rows 3 ('')" in line
    line = cli_error(capsys, tmp_path / "nope.py", "--data", data)
    assert re.search(r"model file .*nope.py not found", line)
    line = cli_error(capsys, model, "--data", tmp_path / "nope.csv")
    assert re.search(r"data file .*nope.csv not found", line)
    broken = tmp_path / "broken.py"
    broken.write_text("def model(data)\n    yield\n")
    line = cli_error(capsys, broken, "--data", data)
    assert re.search(r"model file .*broken.py is not valid Python: .* \(line 1\)", line)
    extra = tmp_path / "extra.csv"
    extra.write_text("x,y,w\n1,2,3\n")
    line = cli_error(capsys, model, "--data", extra)
    assert "column(s) 'w' of" in line and "neither name a variable" in line
    assert not list(tmp_path.glob("coromix-fit-*"))


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--warmup", "0"], r"argument --warmup: must be at least 1 \(warmup tunes the step size"),
        (["--chains", "0"], r"argument --chains: must be at least 1; got 0"),
        (["--samples", "many"], r"argument --samples: must be an integer; got 'many'"),
        (["--seed", "x"], r"argument --seed: invalid int value: 'x'"),
    ],
)
def test_cli_bad_numbers(inputs, capsys, args, pattern):
    model, data = inputs
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(model), "--data", str(data), *args])
    assert exit_info.value.code == 2
    assert re.search(pattern, capsys.readouterr().err)


def test_fit_run_rejects_zero_warmup():
    with pytest.raises(FitError, match=r"--warmup must be at least 1; got 0"):
        fit_module.run("model.py", "data.csv", warmup=0)


@pytest.mark.parametrize("command", ["fit", "demo"])
def test_help_lists_every_default(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    options = text[text.index("options:") :]
    entries = re.split(r"\n  (?=-)", options)[1:]
    assert len(entries) >= 8
    for entry in entries:
        if entry.startswith(("-h, --help", "--data")):
            continue
        assert "(default: " in " ".join(entry.split()), entry
    for default in ["--chains CHAINS", "(default: 4)", "(default: 0)"]:
        assert default in text
    if command == "fit":
        assert "executed as Python code" in text and "(default: 1000)" in text
        assert "run only model files you trust" in " ".join(text.split())


def test_readme_says_the_model_file_runs_as_python():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## The command line") :]
    section = section[: section.index("\n## ", 3)]
    assert "executed as Python code" in " ".join(section.split())
    assert "COROMIX_CACHE_DIR" in section and "--no-cache" in section


# --- the command line's compilation cache ------------------------------------------------------


@pytest.fixture
def jax_cache_settings():
    saved = cache.settings()
    yield
    cache.restore(saved)


def test_cache_folder_resolution(tmp_path):
    home = {"HOME": str(tmp_path)}
    assert cache.cache_dir(environ=home) == tmp_path / ".cache" / "coromix" / "jax"
    xdg = {**home, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert cache.cache_dir(environ=xdg) == tmp_path / "xdg" / "coromix" / "jax"
    env = {**xdg, "COROMIX_CACHE_DIR": str(tmp_path / "mine")}
    assert cache.cache_dir(environ=env) == tmp_path / "mine"
    assert cache.cache_dir(str(tmp_path / "option"), environ=env) == tmp_path / "option"
    for off in ["off", "OFF", "none", "0"]:
        assert cache.cache_dir(environ={**env, "COROMIX_CACHE_DIR": off}) is None
    assert cache.cache_dir(str(tmp_path / "option"), disabled=True, environ=env) is None


def test_the_command_line_turns_the_cache_on_and_off(
    inputs, tmp_path, monkeypatch, capsys, jax_cache_settings
):
    """``main`` applies the cache settings before running the command (seen from inside the
    command) and puts JAX's settings back afterwards; the library import turns nothing on."""
    seen = []

    def record(*args, **kwargs):
        seen.append({name: getattr(jax.config, name) for name in cache.SETTINGS})
        raise FitError("stop here")

    monkeypatch.setattr(fit_module, "run", record)
    before = cache.settings()
    model, data = inputs
    folder = tmp_path / "cache"
    assert main(["fit", str(model), "--data", str(data), "--cache-dir", str(folder)]) == 2
    assert seen[-1]["jax_enable_compilation_cache"] is True
    assert seen[-1]["jax_compilation_cache_dir"] == str(folder) and folder.is_dir()
    assert seen[-1]["jax_persistent_cache_min_compile_time_secs"] <= 0.1
    assert seen[-1]["jax_persistent_cache_min_entry_size_bytes"] == -1
    assert cache.settings() == before

    monkeypatch.setenv("COROMIX_CACHE_DIR", str(tmp_path / "from-env"))
    assert main(["fit", str(model), "--data", str(data)]) == 2
    assert seen[-1]["jax_compilation_cache_dir"] == str(tmp_path / "from-env")
    assert main(["fit", str(model), "--data", str(data), "--no-cache"]) == 2
    assert seen[-1]["jax_enable_compilation_cache"] is False
    monkeypatch.setenv("COROMIX_CACHE_DIR", "off")
    assert main(["fit", str(model), "--data", str(data)]) == 2
    assert seen[-1]["jax_enable_compilation_cache"] is False
    monkeypatch.delenv("COROMIX_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert main(["fit", str(model), "--data", str(data)]) == 2
    assert seen[-1]["jax_compilation_cache_dir"] == str(tmp_path / "xdg" / "coromix" / "jax")
    assert cache.settings() == before
    capsys.readouterr()


def test_an_unwritable_cache_folder_is_a_warning(tmp_path, capsys, jax_cache_settings):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cache.enable(blocker / "jax") is None
    assert jax.config.jax_enable_compilation_cache is False
    assert re.search(
        r"coromix: warning: no compilation cache \(.*file/jax: ", capsys.readouterr().err
    )
