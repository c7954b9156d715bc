"""Property tests: parameters of random shapes broadcast as in TFP and NumPy.

For each family, hypothesis draws parameter shapes that broadcast (from the right, dims equal or 1,
leading dims optional), a sample shape and a value shape that broadcasts with the batch; then
``batch_shape`` is ``np.broadcast_shapes`` of the parameters' batch shapes, ``sample(shape)`` has
shape ``sample_shape + batch_shape + event_shape``, and ``log_prob(value)`` has the broadcast shape
of the value's batch dims and ``batch_shape`` and equals SciPy's ``logpdf``/``logpmf`` element by
element (float64, 1e-10).  Parameters whose shapes do not broadcast raise a ``ValueError`` at
construction naming both parameters and their shapes; values that do not broadcast with the batch
raise one at ``log_prob`` naming the value's shape.

Speed (200 examples in the default suite): the distributions are built eagerly without their checks
of parameter values (``validate_args=False``; the shape checks run either way), the shape of a draw is found by ``jax.eval_shape`` (compiling a sampler per
shape costs seconds), and ``log_prob`` runs through one jitted function compiled once per shape
signature (a distribution is a pytree).  The slow suite builds them with
``validate_args=True``, draws for real (checking the draws are in the support) and calls
``log_prob`` eagerly, with its value checks.
"""

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import stats

import coromix.distributions as tfd

SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}
EXAMPLES = 25  # per family: 8 families, 200 examples


@st.composite
def shapes(draw, max_rank=3):
    return tuple(draw(st.lists(st.integers(1, 3), max_size=max_rank)))


@st.composite
def broadcasting_to(draw, target):
    """A shape that broadcasts to ``target``: trailing dims of it, some of them set to 1."""
    rank = draw(st.integers(0, len(target)))
    tail = target[len(target) - rank :]
    return tuple(1 if draw(st.booleans()) else d for d in tail)


@st.composite
def value_batch(draw, batch):
    """A value batch shape that broadcasts with ``batch``: maybe extra leading dims, dims of
    ``batch`` kept, set to 1, or (where ``batch`` has 1) widened."""
    out = []
    for d in batch:
        choice = draw(st.integers(0, 2))
        widened = draw(st.integers(1, 3)) if d == 1 else d
        out.append(d if choice == 0 else 1 if choice == 1 else widened)
    lead = draw(st.lists(st.integers(1, 2), max_size=1))
    if len(out) > 0 and draw(st.booleans()):  # drop leading dims of the batch
        out = out[draw(st.integers(0, len(out))) :]
        lead = []
    return tuple(lead) + tuple(out)


def param_shapes(draw, count):
    target = draw(shapes())
    return [draw(broadcasting_to(target)) for _ in range(count)]


# --- families: each gives (distribution, parameter batch shapes, value maker, reference) -------
# ``v``: keyword arguments of the constructors (``validate_args``)


def normal(draw, rng, v):
    a, b = param_shapes(draw, 2)
    loc, scale = rng.normal(0, 3, a), rng.uniform(0.2, 3, b)
    return (
        tfd.Normal(loc, scale, **v),
        [a, b],
        lambda vb: rng.normal(0, 3, vb),
        lambda x: stats.norm.logpdf(x, loc, scale),
    )


def categorical(draw, rng, v):
    (a,) = param_shapes(draw, 1)
    k = draw(st.integers(1, 4))
    probs = rng.dirichlet(np.ones(k), size=a)
    use_logits = draw(st.booleans())
    shift = rng.normal(0, 2, a + (1,))  # logits are defined up to a constant per distribution
    dist = (
        tfd.Categorical(logits=np.log(probs) + shift, **v)
        if use_logits
        else tfd.Categorical(probs=probs, **v)
    )
    return (
        dist,
        [a],
        lambda vb: rng.integers(0, k, vb),
        lambda x: stats.multinomial.logpmf(np.eye(k)[x], 1, probs),
    )


def poisson(draw, rng, v):
    (a,) = param_shapes(draw, 1)
    rate = rng.uniform(0.1, 6, a)
    return (
        tfd.Poisson(rate, **v),
        [a],
        lambda vb: rng.poisson(3, vb),
        lambda x: stats.poisson.logpmf(x, rate),
    )


def gamma(draw, rng, v):
    a, b = param_shapes(draw, 2)
    conc, rate = rng.uniform(0.5, 5, a), rng.uniform(0.2, 4, b)
    return (
        tfd.Gamma(conc, rate, **v),
        [a, b],
        lambda vb: rng.uniform(0.05, 5, vb),
        lambda x: stats.gamma.logpdf(x, conc, scale=1 / rate),
    )


def beta(draw, rng, v):
    a, b = param_shapes(draw, 2)
    c1, c0 = rng.uniform(0.5, 5, a), rng.uniform(0.5, 5, b)
    return (
        tfd.Beta(c1, c0, **v),
        [a, b],
        lambda vb: rng.uniform(0.02, 0.98, vb),
        lambda x: stats.beta.logpdf(x, c1, c0),
    )


def elementwise(ref, batch_shape, *arrays_and_event_ranks):
    """``ref(*elements)`` over the broadcast batch of arrays with trailing event dims."""
    out = np.empty(batch_shape)
    full = [
        np.broadcast_to(x, batch_shape + x.shape[x.ndim - r :]) for x, r in arrays_and_event_ranks
    ]
    for i in np.ndindex(batch_shape):
        out[i] = ref(*(x[i] for x in full))
    return out


def dirichlet(draw, rng, v):
    (a,) = param_shapes(draw, 1)
    k = draw(st.integers(2, 4))
    conc = rng.uniform(0.5, 4, a + (k,))

    def ref(x):
        batch = np.broadcast_shapes(x.shape[:-1], a)
        return elementwise(stats.dirichlet.logpdf, batch, (x, 1), (conc, 1))

    return (tfd.Dirichlet(conc, **v), [a], lambda vb: rng.dirichlet(np.ones(k), size=vb), ref)


def mvn_tril(draw, rng, v):
    a, b = param_shapes(draw, 2)
    d = draw(st.integers(1, 3))
    loc = rng.normal(0, 2, a + (d,))
    # SciPy factors the covariance L L^T again (eigh): its error grows with L's condition
    # number squared, so L is kept well conditioned
    tril = np.tril(rng.normal(0, 0.5, b + (d, d)))
    diag = np.arange(d)
    tril[..., diag, diag] = rng.uniform(0.7, 2, b + (d,)) * rng.choice([-1, 1], b + (d,))
    cov = tril @ np.swapaxes(tril, -1, -2)

    def ref(x):
        batch = np.broadcast_shapes(x.shape[:-1], a, b)
        return elementwise(
            lambda xi, m, c: stats.multivariate_normal.logpdf(xi, m, c),
            batch,
            (x, 1),
            (loc, 1),
            (cov, 2),
        )

    return (
        tfd.MultivariateNormalTriL(loc, tril, **v),
        [a, b],
        lambda vb: rng.normal(0, 2, vb + (d,)),
        ref,
    )


def independent(draw, rng, v):
    """Independent over a Normal or a Poisson: the reinterpreted dims move to the event."""
    a, b = param_shapes(draw, 2)
    base_batch = np.broadcast_shapes(a, b)
    n = draw(st.integers(0, len(base_batch)))
    if draw(st.booleans()):
        loc, scale = rng.normal(0, 3, a), rng.uniform(0.2, 3, b)
        base, params = tfd.Normal(loc, scale, **v), [a, b]
        draw_value = lambda vb: rng.normal(0, 3, vb)
        per_element = lambda x: stats.norm.logpdf(x, loc, scale)
    else:
        rate = rng.uniform(0.1, 6, a)
        base, params = tfd.Poisson(rate, **v), [a]
        base_batch = a
        n = min(n, len(a))
        draw_value = lambda vb: rng.poisson(3, vb)
        per_element = lambda x: stats.poisson.logpmf(x, rate)
    event = tuple(base_batch[len(base_batch) - n :])
    cut = [p[: max(len(p) - n, 0)] for p in params]  # parameter dims left in the batch

    def ref(x):
        lp = np.broadcast_to(per_element(x), np.broadcast_shapes(x.shape, base_batch))
        return lp.sum(tuple(range(lp.ndim - n, lp.ndim)))

    return (
        tfd.Independent(base, reinterpreted_batch_ndims=n, **v),
        cut,
        lambda vb: draw_value(vb + event),
        ref,
    )


FAMILIES = {
    "Normal": normal,
    "Categorical": categorical,
    "Poisson": poisson,
    "Gamma": gamma,
    "Beta": beta,
    "Dirichlet": dirichlet,
    "MultivariateNormalTriL": mvn_tril,
    "Independent": independent,
}


def in_support(name, x):
    if name == "Categorical":
        return np.all((x >= 0) & (x == np.round(x)))
    if name in ("Poisson",):
        return np.all((x >= 0) & (x == np.round(x)))
    if name == "Gamma":
        return np.all(x > 0)
    if name == "Beta":
        return np.all((x > 0) & (x < 1))
    if name == "Dirichlet":
        return np.all(x >= 0) and np.allclose(x.sum(-1), 1.0, atol=1e-12)
    return np.all(np.isfinite(x))


# A distribution is a pytree: one jitted function, compiled once per shape signature (eager
# calls compile each operation per new shape and run the value checks: slower).  The graphs are
# tiny: XLA's optimizations cost more compile time than they save.
score = jax.jit(
    lambda dist, value: dist.log_prob(value),
    compiler_options={"xla_backend_optimization_level": 0},
)


def check_family(family, data, seed, eager=False):
    """Shapes of the batch, of a draw and of log_prob, and log_prob against SciPy; ``eager``:
    real draws (checked in the support) and log_prob called eagerly (with its value checks)."""
    rng = np.random.default_rng(seed)
    # the checks of parameter values (concrete, op by op) are left to the eager run: they are
    # not about shapes (parameter shapes are checked either way) and cost a compilation per op
    v = {} if eager else {"validate_args": False}
    dist, param_batches, make_value, reference = FAMILIES[family](data.draw, rng, v)
    batch = np.broadcast_shapes(*param_batches)
    assert tuple(dist.batch_shape) == batch

    sample_shape = data.draw(shapes(max_rank=2), label="sample_shape")
    if eager:
        x = np.asarray(dist.sample(sample_shape, seed=seed % 1000))
        assert in_support(family, x)
    else:  # the shape of a draw without drawing (compiling a sampler per shape costs seconds)
        x = jax.eval_shape(lambda key: dist.sample(sample_shape, seed=key), jax.random.key(0))
    assert x.shape == sample_shape + batch + tuple(dist.event_shape)

    vb = data.draw(value_batch(batch), label="value batch shape")
    value = make_value(vb)
    lp = np.asarray(dist.log_prob(value) if eager else score(dist, value))
    assert lp.shape == np.broadcast_shapes(vb, batch)
    np.testing.assert_allclose(lp, reference(value), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("family", list(FAMILIES))
@settings(max_examples=EXAMPLES, **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_shapes_broadcast_and_log_prob_equals_scipy(x64, family, data, seed):
    check_family(family, data, seed)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
@settings(max_examples=15, **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_real_draws_and_eager_log_prob(x64, family, data, seed):
    check_family(family, data, seed, eager=True)


# --- shapes that do not broadcast ---------------------------------------------------------


@st.composite
def conflicting(draw):
    """Two shapes that do not broadcast: sizes 2 and 3 at the same place from the right."""
    tail = draw(shapes(max_rank=2))

    def some_ones():
        return tuple(1 if draw(st.booleans()) else d for d in tail)

    d1, d2 = draw(st.permutations([2, 3]))
    a = draw(shapes(max_rank=1)) + (d1,) + some_ones()
    b = (d2,) + some_ones()
    return (a, b) if draw(st.booleans()) else (b, a)


TWO_PARAMETERS = {
    "Normal": (lambda a, b: tfd.Normal(np.zeros(a), np.ones(b)), "loc", "scale"),
    "Gamma": (lambda a, b: tfd.Gamma(np.ones(a), np.ones(b)), "concentration", "rate"),
    "Beta": (lambda a, b: tfd.Beta(np.ones(a), np.ones(b)), "concentration1", "concentration0"),
    "MultivariateNormalTriL": (
        lambda a, b: tfd.MultivariateNormalTriL(
            np.zeros(a + (2,)), np.broadcast_to(np.eye(2), b + (2, 2))
        ),
        "loc",
        "scale_tril",
    ),
}


@pytest.mark.parametrize("family", list(TWO_PARAMETERS))
@settings(max_examples=10, **SETTINGS)
@given(ab=conflicting())
def test_parameters_that_do_not_broadcast_raise_naming_them(x64, family, ab):
    make, first, second = TWO_PARAMETERS[family]
    a, b = ab
    with pytest.raises(ValueError) as info:
        make(a, b)
    message = str(info.value)
    assert f"`{first}` {a}" in message and f"`{second}` {b}" in message, message


@pytest.mark.parametrize("family", list(FAMILIES))
@settings(max_examples=5, **SETTINGS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_values_that_do_not_broadcast_raise_naming_the_shapes(x64, family, data, seed):
    rng = np.random.default_rng(seed)
    for _ in range(50):  # a distribution with a batch dim > 1 (Independent often has none)
        dist, _, make_value, _ = FAMILIES[family](data.draw, rng, {"validate_args": False})
        batch = tuple(dist.batch_shape)
        if any(d > 1 for d in batch):
            break
    assume(any(d > 1 for d in batch))
    value = make_value(tuple(2 if d == 3 else 3 for d in batch))  # 3 against 2, 2 against 3
    with pytest.raises(ValueError, match="does not broadcast") as info:
        dist.log_prob(value)
    assert str(np.shape(value)) in str(info.value)
