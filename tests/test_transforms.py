"""Bijections onto supports: round trips, support membership, log-det-Jacobians, push-forwards."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

from coromix import constraints
from coromix import transforms as T


# --- cases: constraint, unconstrained shape, sampler of constrained values, free coordinates -----
def _corr_cholesky(rng, batch, d):
    a = rng.normal(size=batch + (d, d + 2))
    cov = a @ np.swapaxes(a, -1, -2)
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    corr = cov / sd[..., :, None] / sd[..., None, :]
    return np.linalg.cholesky(corr)


def _lower_cholesky(rng, batch, d):
    a = rng.normal(size=batch + (d, d + 2))
    return np.linalg.cholesky(a @ np.swapaxes(a, -1, -2))


def _strict_lower(x):
    rows, cols = np.tril_indices(x.shape[-1], -1)
    return x[..., rows, cols]


def _lower(x):
    rows, cols = np.tril_indices(x.shape[-1])
    return x[..., rows, cols]


LOW, HIGH = np.array([-1.0, 0.0, 2.5]), np.array([1.0, 0.5, 10.0])

# name: (constraint, unconstrained y shape, sampler(rng) -> x, free(x_event) -> vector or None)
CASES = {
    "real": (constraints.real, (4, 3), lambda r: r.normal(size=(4, 3)), None),
    "real_vector": (constraints.real_vector, (4, 3), lambda r: r.normal(size=(4, 3)), jnp.ravel),
    "positive": (constraints.positive, (4, 3), lambda r: r.gamma(2.0, size=(4, 3)), None),
    "greater_than_array": (
        constraints.GreaterThan(np.array([0.0, 1.0, -2.0])),
        (4, 3),
        lambda r: np.array([0.0, 1.0, -2.0]) + r.gamma(2.0, size=(4, 3)),
        None,
    ),
    "unit_interval": (
        constraints.unit_interval,
        (4, 3),
        lambda r: r.beta(2.0, 3.0, size=(4, 3)),
        None,
    ),
    "interval_array": (
        constraints.Interval(LOW, HIGH),
        (4, 3),
        lambda r: LOW + (HIGH - LOW) * r.beta(2.0, 2.0, size=(4, 3)),
        None,
    ),
    "simplex": (
        constraints.simplex,
        (5, 3),
        lambda r: r.dirichlet([1.0, 2.0, 0.5, 3.0], size=5),
        lambda x: x[:-1],
    ),
    "ordered": (
        constraints.ordered_vector,
        (5, 4),
        lambda r: np.sort(r.normal(size=(5, 4)), axis=-1),
        jnp.ravel,
    ),
    "positive_ordered": (
        constraints.positive_ordered_vector,
        (5, 4),
        lambda r: np.sort(r.gamma(2.0, size=(5, 4)), axis=-1),
        jnp.ravel,
    ),
    "corr_cholesky": (
        constraints.corr_cholesky,
        (5, 6),
        lambda r: _corr_cholesky(r, (5,), 4),
        _strict_lower,
    ),
    "lower_cholesky": (
        constraints.lower_cholesky,
        (5, 6),
        lambda r: _lower_cholesky(r, (5,), 3),
        _lower,
    ),
    "independent_simplex": (
        constraints.Independent(constraints.simplex, 1),
        (2, 3, 2),
        lambda r: r.dirichlet([1.0, 2.0, 3.0], size=(2, 3)),
        lambda x: x[..., :-1].ravel(),
    ),
}


def _tols(precision):
    return {"rtol": 1e-5, "atol": 1e-5} if precision == "float64" else {"rtol": 1e-4, "atol": 1e-4}


def _case(name, seed=0):
    constraint, yshape, sampler, free = CASES[name]
    rng = np.random.default_rng(seed)
    y = jnp.asarray(1.5 * rng.normal(size=yshape), dtype=float)
    x = jnp.asarray(sampler(rng), dtype=float)
    return constraint, T.biject_to(constraint), y, x, free


def _reference_log_det(t, y, free):
    """log |det| of the Jacobian of y -> free(x), computed by jax.jacfwd."""
    if free is None:  # elementwise map: the Jacobian is diagonal
        return jnp.log(jnp.abs(jax.grad(lambda v: jnp.sum(t.forward(v)))(y)))
    uevent = y.shape[y.ndim - t.unconstrained_event_ndim :]
    batch = y.shape[: y.ndim - len(uevent)]
    flat = y.reshape((-1, math.prod(uevent)))

    def f(v):
        return free(t.forward(v.reshape(uevent)))

    jac = jax.vmap(jax.jacfwd(f))(flat)
    return jnp.linalg.slogdet(jac)[1].reshape(batch)


EXTREME_SCALES = (30.0, 80.0, 1000.0)  # past 80, float32 sums of exp(y) overflow


@functools.partial(jax.jit, static_argnames=("free",))
def _report(t, y, x, free):
    """Everything the per-case tests look at, in one compiled function (compiling is the cost of
    these tests); the transform is a pytree argument, so this also exercises jit.  Row 0 of the
    ``all_*`` arrays is ``y``, the others ``s * sign(y)`` for ``s`` in ``EXTREME_SCALES``."""

    def objective(v):
        fwd, ld = t.forward(v), t.forward_log_det_jacobian(v)
        return jnp.sum(jnp.sin(fwd)) + jnp.sum(ld), (fwd, ld)

    ys = jnp.stack([y] + [s * jnp.sign(y) for s in EXTREME_SCALES])
    (_, (fwds, lds)), grads = jax.value_and_grad(objective, has_aux=True)(ys)
    fwd = fwds[0]
    out = {
        "fwd": fwd,
        "ld": lds[0],
        "y_round_trip": t.inverse(fwd),
        "x_round_trip": t.forward(t.inverse(x)),
        "ref_ld": _reference_log_det(t, y, free),
        "ild": t.inverse_log_det_jacobian(fwd),
        "all_fwd": fwds,
        "all_ld": lds,
        "all_grad": grads,
        "all_in_support": t.codomain.check(fwds),
    }
    if y.ndim > t.unconstrained_event_ndim:
        out["vmap_fwd"] = jax.vmap(t.forward)(y)
        out["vmap_ld"] = jax.vmap(t.forward_log_det_jacobian)(y)
    return out


@functools.cache
def _results(name, precision):
    """(y, x, report) for a case; computed once per case and precision (compiling is the cost)."""
    _, t, y, x, free = _case(name)
    return t, y, x, jax.tree_util.tree_map(np.asarray, _report(t, y, x, free))


@pytest.mark.parametrize("name", list(CASES))
def test_round_trips(name, precision):
    _, y, x, r = _results(name, precision)
    assert r["fwd"].dtype == np.dtype(precision)
    np.testing.assert_allclose(r["y_round_trip"], y, **_tols(precision))
    np.testing.assert_allclose(r["x_round_trip"], x, **_tols(precision))


@pytest.mark.parametrize("name", list(CASES))
def test_forward_lands_in_support(name, precision):
    constraint, t, y, _, _ = _case(name)
    *_, r = _results(name, precision)
    assert r["fwd"].shape == t.constrained_shape(y.shape)
    assert t.unconstrained_shape(r["fwd"].shape) == y.shape
    assert type(t.codomain) is type(constraint) and t.event_ndim == constraint.event_ndim
    assert np.all(r["all_in_support"][0])


@pytest.mark.parametrize("name", list(CASES))
def test_log_det_jacobian_matches_autodiff(name, precision):
    *_, r = _results(name, precision)
    assert r["ld"].shape == r["ref_ld"].shape
    np.testing.assert_allclose(r["ld"], r["ref_ld"], **_tols(precision))
    np.testing.assert_allclose(r["ild"], -r["ld"], **_tols(precision))


@pytest.mark.parametrize("name", list(CASES))
def test_jit_vmap_grad(name, precision):
    _t, y, _x, r = _results(name, precision)
    if "vmap_fwd" in r:
        np.testing.assert_allclose(r["vmap_fwd"], r["fwd"], **_tols(precision))
        np.testing.assert_allclose(r["vmap_ld"], r["ld"], **_tols(precision))
    assert r["all_grad"].shape == (1 + len(EXTREME_SCALES),) + y.shape
    assert np.all(np.isfinite(r["all_grad"][0]))


@pytest.mark.parametrize("name", list(CASES))
def test_extreme_inputs_stay_finite(name, precision):
    *_, r = _results(name, precision)
    r = {k: v for k, v in r.items() if k.startswith("all_")}
    if "ordered" in name:
        # Sums of exp(1000) overflow, and exp(-80) steps vanish next to O(1) values (ties): both
        # are unavoidable in floating point, so ask only for finite values up to |y| = 80.
        r = {k: v[:3] for k, v in r.items()}
    for key in ("all_fwd", "all_ld", "all_grad"):
        assert np.all(np.isfinite(r[key])), key
    if "ordered" not in name:
        assert np.all(r["all_in_support"])


def test_eager_calls_and_zero_maps_to_centre():
    """Outside jit too (default precision); y = 0 gives the uniform simplex, the identity
    correlation, the midpoint."""
    t = T.CorrCholeskyTransform()
    x, ld = _forward_and_log_det(t, jnp.zeros(6))
    np.testing.assert_allclose(x, np.eye(4), atol=1e-7)
    np.testing.assert_allclose(ld, 0.0, atol=1e-7)
    np.testing.assert_allclose(
        T.StickBreakingTransform().forward(jnp.zeros(4)), np.full(5, 0.2), rtol=1e-6
    )
    np.testing.assert_allclose(T.SigmoidTransform().forward(0.0), 0.5)
    np.testing.assert_allclose(T.IntervalTransform(2.0, 5.0).forward(0.0), 3.5)


def test_corr_cholesky_gives_correlation_matrix(precision):
    _, _, _, r = _results("corr_cholesky", precision)
    L = r["fwd"].astype(np.float64)
    corr = L @ np.swapaxes(L, -1, -2)
    np.testing.assert_allclose(np.diagonal(corr, axis1=-2, axis2=-1), 1.0, **_tols(precision))
    assert np.all(np.linalg.eigvalsh(corr) > 0)


def test_shapes():
    assert T.StickBreakingTransform().unconstrained_shape((5, 4)) == (5, 3)
    assert T.StickBreakingTransform().constrained_shape((3,)) == (4,)
    assert T.CorrCholeskyTransform().unconstrained_shape((2, 4, 4)) == (2, 6)
    assert T.CorrCholeskyTransform().constrained_shape((2, 6)) == (2, 4, 4)
    assert T.CorrCholeskyTransform().constrained_shape((0,)) == (1, 1)
    assert T.LowerCholeskyTransform().unconstrained_shape((3, 3)) == (6,)
    assert T.LowerCholeskyTransform().constrained_shape((6,)) == (3, 3)
    assert T.ExpTransform().unconstrained_shape((2, 3)) == (2, 3)
    ind = T.biject_to(constraints.Independent(constraints.simplex, 2))
    assert ind.unconstrained_shape((2, 3, 4)) == (2, 3, 3)
    assert ind.unconstrained_event_ndim == 3 and ind.event_ndim == 3
    with pytest.raises(ValueError, match="d\\(d-1\\)/2"):
        T.CorrCholeskyTransform().constrained_shape((5,))
    with pytest.raises(ValueError):
        T.CorrCholeskyTransform().forward(jnp.zeros(4))


def test_degenerate_sizes():
    np.testing.assert_allclose(
        T.StickBreakingTransform().forward(jnp.zeros((2, 0))), np.ones((2, 1))
    )
    np.testing.assert_allclose(T.CorrCholeskyTransform().forward(jnp.zeros((0,))), np.eye(1))
    assert T.CorrCholeskyTransform().forward_log_det_jacobian(jnp.zeros((3, 0))).shape == (3,)
    np.testing.assert_allclose(T.OrderedTransform().forward(jnp.array([[1.5]])), [[1.5]])


def test_independent_sums_log_det(precision):
    base = T.ExpTransform()
    t = T.biject_to(constraints.Independent(constraints.positive, 2))
    assert isinstance(t, T.IndependentTransform)
    y = jnp.asarray(np.random.default_rng(2).normal(size=(2, 3, 4)), dtype=float)
    np.testing.assert_allclose(
        t.forward_log_det_jacobian(y),
        base.forward_log_det_jacobian(y).sum((-1, -2)),
        **_tols(precision),
    )
    assert T.biject_to(constraints.Independent(constraints.real, 0)).codomain is constraints.real


def test_biject_to_dispatch():
    expected = {
        constraints.real: T.IdentityTransform,
        constraints.real_vector: T.IdentityTransform,
        constraints.positive: T.ExpTransform,
        constraints.GreaterThan(1.0): T.LowerBoundTransform,
        constraints.unit_interval: T.SigmoidTransform,
        constraints.Interval(0.0, 2.0): T.IntervalTransform,
        constraints.simplex: T.StickBreakingTransform,
        constraints.ordered_vector: T.OrderedTransform,
        constraints.positive_ordered_vector: T.PositiveOrderedTransform,
        constraints.corr_cholesky: T.CorrCholeskyTransform,
        constraints.lower_cholesky: T.LowerCholeskyTransform,
    }
    for constraint, kind in expected.items():
        t = T.biject_to(constraint)
        assert type(t) is kind, constraint
        assert t.event_ndim == constraint.event_ndim


@pytest.mark.parametrize(
    "constraint",
    [
        constraints.boolean,
        constraints.nonnegative_integer,
        constraints.IntegerInterval(0, 4),
        constraints.Independent(constraints.boolean, 1),
    ],
)
def test_biject_to_rejects_discrete(constraint):
    with pytest.raises(TypeError, match="discrete support") as err:
        T.biject_to(constraint)
    assert str(constraint) in str(err.value)


def test_biject_to_rejects_unknown():
    class Weird(constraints.Constraint):
        def __str__(self):
            return "weird set"

    with pytest.raises(TypeError, match="weird set"):
        T.biject_to(Weird())
    with pytest.raises(TypeError, match="constraint"):
        T.biject_to("positive")


# --- push-forward densities integrate to one --------------------------------------------------
DENSITIES_1D = {
    "halfnormal_exp": (constraints.positive, stats.halfnorm(scale=2.0).logpdf),
    "gamma_exp": (constraints.positive, stats.gamma(2.5, scale=1.3).logpdf),
    "gamma_small_shape_exp": (constraints.positive, stats.gamma(0.6).logpdf),
    "expon_shifted_exp": (constraints.GreaterThan(1.0), stats.expon(loc=1.0, scale=0.5).logpdf),
    "beta_sigmoid": (constraints.unit_interval, stats.beta(2.0, 3.5).logpdf),
    "beta_u_sigmoid": (constraints.unit_interval, stats.beta(0.5, 0.7).logpdf),
    "uniform_interval": (constraints.Interval(2.0, 5.0), stats.uniform(2.0, 3.0).logpdf),
    "normal_identity": (constraints.real, stats.norm(1.0, 3.0).logpdf),
}


@jax.jit
def _forward_and_log_det(t, y):
    return t.forward(y), t.forward_log_det_jacobian(y)


@pytest.mark.parametrize("name", list(DENSITIES_1D))
def test_pushforward_density_integrates_to_one(name, precision):
    constraint, logpdf = DENSITIES_1D[name]
    t = T.biject_to(constraint)

    def integrand(y):
        x, ld = _forward_and_log_det(t, y)
        with np.errstate(over="ignore"):  # scipy squares x = exp(y) far out in the tails
            lp = logpdf(float(x)) + float(ld)
        return math.exp(lp) if np.isfinite(lp) else 0.0

    tol = 1e-10 if precision == "float64" else 1e-6  # float32 values carry ~1e-7 noise
    total, _ = integrate.quad(integrand, -np.inf, np.inf, limit=200, epsabs=tol, epsrel=tol)
    assert abs(total - 1.0) < (1e-6 if precision == "float64" else 1e-4)


def test_pushforward_dirichlet_integrates_to_one(precision):
    alpha = np.array([2.0, 3.0, 1.5])
    t = T.biject_to(constraints.simplex)
    log_norm = float(np.sum(special.gammaln(alpha)) - special.gammaln(alpha.sum()))
    x0 = np.array([0.2, 0.5, 0.3])  # the density below is scipy's Dirichlet
    assert math.isclose(
        np.sum((alpha - 1) * np.log(x0)) - log_norm, stats.dirichlet(alpha).logpdf(x0)
    )

    @jax.jit
    def log_integrand(y1, y2):
        x, ld = _forward_and_log_det(t, jnp.stack([y1, y2]))
        return jnp.sum((alpha - 1) * jnp.log(x)) - log_norm + ld

    # Outside [-30, 30]^2 the push-forward density is below exp(-40).
    total, _ = integrate.dblquad(
        lambda y2, y1: math.exp(float(log_integrand(y1, y2))),
        -30.0,
        30.0,
        -30.0,
        30.0,
        epsabs=1e-6,
        epsrel=1e-6,
    )
    assert abs(total - 1.0) < (1e-5 if precision == "float64" else 1e-4)
