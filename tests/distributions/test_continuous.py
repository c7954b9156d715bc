"""Continuous distributions against scipy.stats: log densities (inside and outside the support),
jit / vmap / grad (checked against central finite differences in float64), moments and sampling.

Every test runs in float32 and float64 (the ``precision`` fixture).  Parameters are drawn from a
fixed NumPy seed with shapes that exercise batch broadcasting (e.g. ``loc`` (3, 1) with ``scale``
(4,), values (2, 3, 4)).  Parameters and values are rounded to the test dtype *before* being
handed to scipy, so the comparison measures the error of our formulas, not of the input rounding.

Speed: JAX compiles a program per function, shape and dtype (about a second for the gamma-based
samplers), so each test case compiles as few programs as possible: one jitted function checks
log_prob, vmap and gradients together, and the finite differences reuse it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from coromix.distributions import (
    Beta,
    Cauchy,
    Dirichlet,
    Exponential,
    Gamma,
    HalfCauchy,
    HalfNormal,
    InverseGamma,
    Laplace,
    LogNormal,
    MultivariateNormalTriL,
    StudentT,
    Uniform,
)

N_DRAWS = 20_000

# Tolerances for log densities.  rtol is 1e-5 (float32) / 1e-10 (float64).  The atol covers
# results near 0: a log density is a sum of terms of size O(1-10) (log-gamma functions, logs of
# parameters) that can cancel to nearly 0, and each term carries its own rounding error
# (~1e-7 * |term| in float32), so near 0 only an absolute error bound is meaningful.
RTOL = {"float32": 1e-5, "float64": 1e-10}
ATOL = {"float32": 2e-5, "float64": 1e-11}


def _u(rng, low, high, shape):
    return rng.uniform(low, high, size=shape)


# name -> (class, parameter maker rng -> dict of arrays, scipy frozen distribution from the dict,
#          a value outside the support for every batch member or None when the support is R).
# Parameter ranges keep the 4th moment finite (heavy tails: StudentT df > 4, InverseGamma
# concentration > 4) so that the sample-variance check has a meaningful standard error.
SCALAR = {
    "HalfNormal": (
        HalfNormal,
        lambda r: {"scale": _u(r, 0.5, 2.0, (3, 4))},
        lambda p: st.halfnorm(scale=p["scale"]),
        -1.0,
    ),
    "LogNormal": (
        LogNormal,
        lambda r: {"loc": r.normal(0, 0.5, (3, 1)), "scale": _u(r, 0.2, 0.6, (4,))},
        lambda p: st.lognorm(s=p["scale"], scale=np.exp(p["loc"])),
        -1.0,
    ),
    "StudentT": (
        StudentT,
        lambda r: {
            "df": _u(r, 8.0, 15.0, (4,)),
            "loc": r.normal(0, 1, (3, 1)),
            "scale": _u(r, 0.5, 2.0, (4,)),
        },
        lambda p: st.t(p["df"], loc=p["loc"], scale=p["scale"]),
        None,
    ),
    "Cauchy": (
        Cauchy,
        lambda r: {"loc": r.normal(0, 1, (3, 1)), "scale": _u(r, 0.5, 2.0, (4,))},
        lambda p: st.cauchy(loc=p["loc"], scale=p["scale"]),
        None,
    ),
    "HalfCauchy": (
        HalfCauchy,
        lambda r: {"loc": r.normal(0, 1, (3, 1)), "scale": _u(r, 0.5, 2.0, (4,))},
        lambda p: st.halfcauchy(loc=p["loc"], scale=p["scale"]),
        -10.0,
    ),
    "Laplace": (
        Laplace,
        lambda r: {"loc": r.normal(0, 1, (3, 1)), "scale": _u(r, 0.5, 2.0, (4,))},
        lambda p: st.laplace(loc=p["loc"], scale=p["scale"]),
        None,
    ),
    "Exponential": (
        Exponential,
        lambda r: {"rate": _u(r, 0.5, 3.0, (3, 4))},
        lambda p: st.expon(scale=1 / p["rate"]),
        -1.0,
    ),
    "Gamma": (
        Gamma,
        lambda r: {"concentration": _u(r, 0.5, 5.0, (3, 1)), "rate": _u(r, 0.5, 3.0, (4,))},
        lambda p: st.gamma(p["concentration"], scale=1 / p["rate"]),
        -1.0,
    ),
    "InverseGamma": (
        InverseGamma,
        lambda r: {"concentration": _u(r, 9.0, 14.0, (3, 1)), "scale": _u(r, 0.5, 3.0, (4,))},
        lambda p: st.invgamma(p["concentration"], scale=p["scale"]),
        -1.0,
    ),
    "Beta": (
        Beta,
        lambda r: {
            "concentration1": _u(r, 0.5, 4.0, (3, 1)),
            "concentration0": _u(r, 0.5, 4.0, (4,)),
        },
        lambda p: st.beta(p["concentration1"], p["concentration0"]),
        1.5,
    ),
    "Uniform": (
        Uniform,
        lambda r: {"low": _u(r, -2.0, 0.0, (3, 1)), "high": _u(r, 0.5, 2.0, (4,))},
        lambda p: st.uniform(loc=p["low"], scale=p["high"] - p["low"]),
        5.0,
    ),
}
HEAVY_TAILED = {"Cauchy", "HalfCauchy"}  # no finite moments: checked through quantiles only


def _setup(name, dtype, seed=0):
    """The distribution, its scipy twin (on the dtype-rounded parameters) and values (2, 3, 4):
    scipy draws, with row [1, 0] replaced by a value outside the support where there is one."""
    cls, make, to_scipy, outside = SCALAR[name]
    params = {k: np.asarray(v, dtype) for k, v in make(np.random.default_rng(seed)).items()}
    # validate_args=False: values outside the support score -inf (with the default they raise)
    dist = cls(**{k: jnp.asarray(v) for k, v in params.items()}, validate_args=False)
    ref = to_scipy({k: v.astype(np.float64) for k, v in params.items()})
    values = ref.rvs(size=(2, 3, 4), random_state=np.random.default_rng(1)).astype(dtype)
    if outside is not None:
        values[1, 0] = outside
    return dist, ref, values


def _assert_dtype(x, dtype):
    assert x.dtype == np.dtype(dtype), (x.dtype, dtype)


# ---- jit / vmap / grad, shared by every family --------------------------------------------------


def _masked_total(dist, values):
    """Sum of the finite log densities (values outside the support contribute nothing)."""
    lp = dist.log_prob(values)
    return jnp.sum(jnp.where(jnp.isfinite(lp), lp, 0.0))


@jax.jit
def _jit_vmap_grad(dist, values):
    lp = dist.log_prob(values)
    mapped = jax.vmap(dist.log_prob)(values)
    total, (g_dist, g_values) = jax.value_and_grad(_masked_total, argnums=(0, 1))(dist, values)
    return lp, mapped, total, g_dist, g_values


def check_jit_vmap_grad(dist, values, expected, precision, value_fd=True):
    """log_prob inside jit and under vmap equals ``expected``; gradients w.r.t. every parameter
    and the values are finite (also next to values outside the support) and, in float64, match
    central finite differences of the same jitted function."""
    values = jnp.asarray(values)
    lp, mapped, _total, g_dist, g_values = _jit_vmap_grad(dist, values)
    tol = {"rtol": RTOL[precision], "atol": ATOL[precision]}
    np.testing.assert_allclose(np.asarray(lp, np.float64), expected, **tol)
    np.testing.assert_allclose(np.asarray(mapped, np.float64), expected, **tol)
    leaves, tree = jax.tree_util.tree_flatten(dist)
    grads = jax.tree_util.tree_leaves(g_dist)
    assert len(grads) == len(leaves)
    for g in grads + [g_values]:
        assert np.all(np.isfinite(np.asarray(g))), g
    if precision != "float64":
        return
    rng = np.random.default_rng(5)

    def fd(x, rebuild):
        """Central differences at 3 random entries of array x; rebuild(x') -> total."""
        x = np.asarray(x)
        out = []
        for i in rng.choice(x.size, size=min(3, x.size), replace=False):
            h = 1e-6 * max(1.0, abs(x.flat[i]))
            up, down = x.copy(), x.copy()
            up.flat[i] += h
            down.flat[i] -= h
            out.append((i, (float(rebuild(up)) - float(rebuild(down))) / (2 * h)))
        return out

    for k, (leaf, g) in enumerate(zip(leaves, grads)):

        def rebuild(x, k=k):
            new = list(leaves)
            new[k] = jnp.asarray(x)
            return _jit_vmap_grad(jax.tree_util.tree_unflatten(tree, new), values)[2]

        for i, d in fd(leaf, rebuild):
            np.testing.assert_allclose(np.asarray(g).flat[i], d, rtol=1e-6, atol=1e-7)
    if value_fd:
        for i, d in fd(values, lambda v: _jit_vmap_grad(dist, jnp.asarray(v))[2]):
            np.testing.assert_allclose(np.asarray(g_values).flat[i], d, rtol=1e-6, atol=1e-7)


# ---- scalar families ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCALAR))
def test_scalar_family_against_scipy(name, precision):
    """One test per family and precision (tests/conftest.py clears JAX's compilation caches around
    every float64 test, so fewer, fuller tests compile less): log_prob eager, under jit and vmap,
    gradients, closed-form moments and sampling, all against scipy."""
    dist, ref, values = _setup(name, precision)
    assert dist.batch_shape == (3, 4) and dist.event_shape == ()
    expected = ref.logpdf(values.astype(np.float64))
    if SCALAR[name][3] is not None:
        assert np.all(expected[1, 0] == -np.inf)
    # eager log_prob, -inf outside the support included
    lp = dist.log_prob(jnp.asarray(values))
    assert lp.shape == (2, 3, 4)
    _assert_dtype(lp, precision)
    np.testing.assert_allclose(
        np.asarray(lp, np.float64), expected, rtol=RTOL[precision], atol=ATOL[precision]
    )
    # jit, vmap, grad (Uniform's density is flat in the value: derivative and difference are 0)
    check_jit_vmap_grad(dist, values, expected, precision)
    # closed-form moments
    mean, var = dist.mean(), dist.variance()
    assert mean.shape == var.shape == dist.batch_shape
    _assert_dtype(mean, precision)
    rtol = 1e-5 if precision == "float32" else 1e-12
    np.testing.assert_allclose(np.asarray(mean, np.float64), ref.mean(), rtol=rtol)
    np.testing.assert_allclose(np.asarray(var, np.float64), ref.var(), rtol=rtol)
    check_sampling(dist, ref, heavy_tailed=name in HEAVY_TAILED, precision=precision)


def check_sampling(dist, ref, heavy_tailed, precision):
    """Sample mean/variance within 5 standard errors of scipy's, and P(X <= q_p) within 5 standard
    errors of p for the scipy quantiles q_p (this checks the whole shape, heavy tails included).

    SE(mean) = sqrt(var / n); SE(variance) = sqrt((mu4 - var**2) / n) with mu4 = (kurtosis + 3)
    var**2 from scipy's excess kurtosis; SE(fraction below q_p) = sqrt(p (1 - p) / n).
    """
    x = dist.sample((2, N_DRAWS // 2), seed=42)
    assert x.shape == (2, N_DRAWS // 2, 3, 4)
    _assert_dtype(x, precision)
    assert np.all(np.asarray(dist.support.check(x)))
    x = np.asarray(x, np.float64).reshape(N_DRAWS, 3, 4)
    n = N_DRAWS
    for p in (0.1, 0.5, 0.9):
        frac = np.mean(x <= ref.ppf(p), axis=0)
        np.testing.assert_array_less(np.abs(frac - p), 5 * np.sqrt(p * (1 - p) / n))
    if heavy_tailed:
        return
    mean, var, _, kurt = (np.broadcast_to(m, (3, 4)) for m in ref.stats(moments="mvsk"))
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * np.sqrt(var / n))
    se_var = var * np.sqrt((kurt + 2) / n)
    np.testing.assert_array_less(np.abs(x.var(0, ddof=1) - var), 5 * se_var)


def test_edge_cases(precision):
    """At the edge of a closed support the log density is the density's limit, as in scipy;
    NaN where a moment is undefined, inf where it diverges (as TFP / scipy)."""
    cases = [
        (HalfNormal(1.5), st.halfnorm(scale=1.5), 0.0),
        (Exponential(2.0), st.expon(scale=0.5), 0.0),
        (HalfCauchy(1.0, 2.0), st.halfcauchy(1.0, 2.0), 1.0),
        (Gamma(1.0, 2.0), st.gamma(1.0, scale=0.5), 0.0),
        (Gamma(2.0, 2.0), st.gamma(2.0, scale=0.5), 0.0),
        (Gamma(0.5, 2.0), st.gamma(0.5, scale=0.5), 0.0),
        (Beta(1.0, 2.0), st.beta(1.0, 2.0), 0.0),
        (Beta(2.0, 0.5), st.beta(2.0, 0.5), 1.0),
        (Uniform(-1.0, 2.0), st.uniform(-1.0, 3.0), -1.0),
        (Uniform(-1.0, 2.0), st.uniform(-1.0, 3.0), 2.0),
        (LogNormal(0.0, 1.0), st.lognorm(1.0), 0.0),
        (InverseGamma(2.0, 1.0), st.invgamma(2.0), 0.0),
    ]
    for dist, ref, x in cases:
        np.testing.assert_allclose(
            float(dist.log_prob(x)), ref.logpdf(x), rtol=1e-6, err_msg=repr(dist)
        )
    t = StudentT(jnp.array([0.5, 1.5, 3.0]), 1.0, 2.0)
    np.testing.assert_array_equal(t.mean(), [np.nan, 1.0, 1.0])  # scipy says inf for df <= 1
    np.testing.assert_allclose(t.variance(), st.t([0.5, 1.5, 3.0], 1.0, 2.0).var(), rtol=1e-6)
    ig = InverseGamma(jnp.array([0.5, 1.5, 3.0]), 2.0)
    ref = st.invgamma([0.5, 1.5, 3.0], scale=2.0)
    np.testing.assert_allclose(ig.mean(), ref.mean(), rtol=1e-6)
    np.testing.assert_allclose(ig.variance(), ref.var(), rtol=1e-6)
    assert np.all(np.isnan(Cauchy(0.0, 1.0).mean())) and np.all(np.isnan(Cauchy().variance()))
    assert np.all(np.isinf(HalfCauchy().mean())) and np.all(np.isinf(HalfCauchy().variance()))
    # gradients of the defined moments stay finite next to undefined ones
    g = jax.grad(lambda df: jnp.sum(jnp.where(df > 2, StudentT(df, 0.0, 1.0).variance(), 0.0)))(
        jnp.array([1.5, 3.0])
    )
    assert np.all(np.isfinite(np.asarray(g)))


def _check_sample_moments(x, mean, var):
    """Mean and variance of draws ``x`` (n, ...) within 5 standard errors; the SE of the variance
    uses the 4th central moment estimated from the draws (light-tailed cases only)."""
    n = x.shape[0]
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * np.sqrt(var / n))
    centered = x - x.mean(0)
    m4 = np.mean(centered**4, axis=0)
    se_var = np.sqrt((m4 - var**2) / n)
    np.testing.assert_array_less(np.abs(x.var(0, ddof=1) - var), 5 * se_var)


# ---- Dirichlet ---------------------------------------------------------------------------------


def _dirichlet_setup(precision):
    """Dirichlet with batch (3,), event (4,), and values (2, 3, 4): draws rounded to the dtype and
    made to sum to 1 exactly in float64 (scipy insists), with two points off the simplex."""
    rng = np.random.default_rng(0)
    alpha = rng.uniform(0.5, 4.0, (3, 4)).astype(precision)
    x = np.stack([rng.dirichlet(a, size=2) for a in alpha.astype(np.float64)], axis=1)
    x = x.astype(precision).astype(np.float64)
    x[..., -1] = 1 - x[..., :-1].sum(-1)
    expected = np.array(
        [
            [st.dirichlet(alpha[j].astype(np.float64)).logpdf(x[i, j]) for j in range(3)]
            for i in range(2)
        ]
    )
    x[1, 0] = [-0.1, 0.3, 0.3, 0.5]  # a negative coordinate
    x[1, 1] = [0.1, 0.2, 0.3, 0.2]  # does not sum to 1
    expected[1, :2] = -np.inf
    return Dirichlet(jnp.asarray(alpha), validate_args=False), x, expected  # -inf off the simplex


def test_dirichlet_against_scipy(precision):
    dist, x, expected = _dirichlet_setup(precision)
    assert dist.batch_shape == (3,) and dist.event_shape == (4,)
    lp = dist.log_prob(jnp.asarray(x, precision))
    assert lp.shape == (2, 3)
    _assert_dtype(lp, precision)
    # float32: the last coordinate is re-rounded after the exact float64 renormalization.
    rtol = RTOL[precision] if precision == "float64" else 2e-5
    np.testing.assert_allclose(
        np.asarray(lp, np.float64), expected, rtol=rtol, atol=ATOL[precision]
    )
    # values must stay on the simplex: no finite differences in the values
    check_jit_vmap_grad(dist, x.astype(precision), expected, precision, value_fd=False)
    # moments and sampling
    alpha = np.asarray(dist.concentration, np.float64)
    np.testing.assert_allclose(dist.mean(), alpha / alpha.sum(-1, keepdims=True), rtol=1e-5)
    expected_var = np.stack([st.dirichlet(a).var() for a in alpha])
    np.testing.assert_allclose(dist.variance(), expected_var, rtol=1e-5)
    draws = dist.sample(N_DRAWS, seed=3)
    assert draws.shape == (N_DRAWS, 3, 4)
    _assert_dtype(draws, precision)
    draws = np.asarray(draws, np.float64)
    np.testing.assert_allclose(draws.sum(-1), 1.0, atol=1e-5)
    _check_sample_moments(draws, np.asarray(dist.mean(), np.float64), expected_var)


# ---- MultivariateNormalTriL --------------------------------------------------------------------


def _random_tril(rng, shape, d, negative_diag=False):
    tril = np.tril(rng.normal(0, 0.5, shape + (d, d)), -1)
    diag = np.exp(rng.normal(0, 0.3, shape + (d,)))
    if negative_diag:
        diag = diag * rng.choice([-1.0, 1.0], size=diag.shape)
    return tril + diag[..., None] * np.eye(d)


def _mvn_setup(precision, negative_diag=False):
    """loc (3, 1, d) and scale_tril (4, d, d): batch (3, 4); values (2, 3, 4, d)."""
    rng = np.random.default_rng(0)
    d = 3
    loc = rng.normal(0, 1, (3, 1, d)).astype(precision)
    tril = _random_tril(rng, (4,), d, negative_diag).astype(precision)
    x = rng.normal(0, 1.5, (2, 3, 4, d)).astype(precision)
    loc64, tril64, x64 = (a.astype(np.float64) for a in (loc, tril, x))
    cov = tril64 @ np.swapaxes(tril64, -1, -2)
    expected = np.array(
        [
            [
                [st.multivariate_normal(loc64[i, 0], cov[j]).logpdf(x64[s, i, j]) for j in range(4)]
                for i in range(3)
            ]
            for s in range(2)
        ]
    )
    return MultivariateNormalTriL(jnp.asarray(loc), jnp.asarray(tril)), x, expected, cov


def test_mvn_against_scipy(precision):
    for negative_diag in (False, True):  # TFP allows a negative diagonal: |det L| is used
        dist, x, expected, cov = _mvn_setup(precision, negative_diag)
        d = x.shape[-1]
        assert dist.batch_shape == (3, 4) and dist.event_shape == (d,)
        lp = dist.log_prob(jnp.asarray(x))
        assert lp.shape == (2, 3, 4)
        _assert_dtype(lp, precision)
        np.testing.assert_allclose(
            np.asarray(lp, np.float64), expected, rtol=RTOL[precision], atol=ATOL[precision]
        )
        np.testing.assert_allclose(
            np.asarray(dist.covariance(), np.float64), np.broadcast_to(cov, (3, 4, d, d)), rtol=1e-5
        )
        np.testing.assert_allclose(
            np.asarray(dist.variance(), np.float64),
            np.broadcast_to(np.diagonal(cov, axis1=-2, axis2=-1), (3, 4, d)),
            rtol=1e-5,
        )
        np.testing.assert_array_equal(dist.mean(), np.broadcast_to(dist.loc, (3, 4, d)))
    check_jit_vmap_grad(dist, x, expected, precision)
    # only the lower triangle of scale_tril is used (as TFP)
    tril = np.array([[1.0, 0.0], [0.5, 2.0]])
    messy = tril + np.array([[0.0, 7.0], [0.0, 0.0]])
    v = jnp.array([0.3, -1.2])
    np.testing.assert_allclose(
        MultivariateNormalTriL(jnp.zeros(2), tril).log_prob(v),
        MultivariateNormalTriL(jnp.zeros(2), messy).log_prob(v),
        rtol=1e-6,
    )
    # sampling: means, variances and covariances within 5 standard errors
    rng = np.random.default_rng(0)
    d = 3
    loc = rng.normal(0, 1, (2, d))
    tril = _random_tril(rng, (2,), d)
    dist = MultivariateNormalTriL(jnp.asarray(loc, precision), jnp.asarray(tril, precision))
    x = dist.sample(N_DRAWS, seed=7)
    assert x.shape == (N_DRAWS, 2, d)
    _assert_dtype(x, precision)
    x = np.asarray(x, np.float64)
    cov = tril @ np.swapaxes(tril, -1, -2)
    var = np.diagonal(cov, axis1=-2, axis2=-1)
    _check_sample_moments(x, loc, var)
    # for Gaussian data var(x_i x_j) = S_ii S_jj + S_ij**2
    centered = x - x.mean(0)
    sample_cov = np.einsum("nbi,nbj->bij", centered, centered) / (N_DRAWS - 1)
    se = np.sqrt((var[..., :, None] * var[..., None, :] + cov**2) / N_DRAWS)
    np.testing.assert_array_less(np.abs(sample_cov - cov), 5 * se)


def test_mvn_shape_errors():
    with pytest.raises(ValueError, match="scale_tril"):
        MultivariateNormalTriL(jnp.zeros(3), jnp.eye(2))
    with pytest.raises(ValueError, match="do not broadcast"):
        MultivariateNormalTriL(jnp.zeros((2, 3)), jnp.broadcast_to(jnp.eye(3), (4, 3, 3)))
    with pytest.raises(ValueError, match="nonzero diagonal"):
        MultivariateNormalTriL(jnp.zeros(2), jnp.array([[1.0, 0.0], [1.0, 0.0]]))
