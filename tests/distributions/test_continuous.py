"""Continuous distributions against scipy.stats: log densities, moments, sampling, edge cases.

Every test runs in float32 and float64 (the ``precision`` fixture).  Parameters are drawn from a
fixed NumPy seed with shapes that exercise batch broadcasting (e.g. ``loc`` (3, 1) with ``scale``
(4,), values (2, 3, 4)).  Parameters and values are rounded to the test dtype *before* being
handed to scipy, so the comparison measures the error of our formulas, not of the input rounding.
"""

import numpy as np
import pytest
import scipy.stats as st

import jax
import jax.numpy as jnp

from coromix.distributions import (Beta, Cauchy, Dirichlet, Exponential, Gamma, HalfCauchy,
                                   HalfNormal, InverseGamma, Laplace, LogNormal,
                                   MultivariateNormalTriL, StudentT, Uniform)

N_DRAWS = 20_000

# Tolerances for log densities.  rtol is the brief's 1e-5 (float32) / 1e-10 (float64).  The atol
# covers results near 0: a log density is a sum of terms of size O(1-10) (log-gamma functions,
# logs of parameters) that can cancel to nearly 0, and each term carries its own rounding error
# (~1e-7 * |term| in float32), so near 0 only an absolute error bound is meaningful.
RTOL = {"float32": 1e-5, "float64": 1e-10}
ATOL = {"float32": 2e-5, "float64": 1e-11}


def _u(rng, low, high, shape):
    return rng.uniform(low, high, size=shape)


# name -> (class, parameter maker rng -> dict of arrays, scipy frozen distribution from the dict).
# Parameter ranges keep the 4th moment finite (heavy tails: StudentT df > 4, InverseGamma
# concentration > 4) so that the sample-variance check has a meaningful standard error.
SCALAR = {
    "HalfNormal": (HalfNormal,
                   lambda r: {"scale": _u(r, 0.5, 2.0, (3, 4))},
                   lambda p: st.halfnorm(scale=p["scale"])),
    "LogNormal": (LogNormal,
                  lambda r: {"loc": r.normal(0, 0.5, (3, 1)), "scale": _u(r, 0.2, 0.6, (4,))},
                  lambda p: st.lognorm(s=p["scale"], scale=np.exp(p["loc"]))),
    "StudentT": (StudentT,
                 lambda r: {"df": _u(r, 8.0, 15.0, (4,)), "loc": r.normal(0, 1, (3, 1)),
                            "scale": _u(r, 0.5, 2.0, (4,))},
                 lambda p: st.t(p["df"], loc=p["loc"], scale=p["scale"])),
    "Cauchy": (Cauchy,
               lambda r: {"loc": r.normal(0, 1, (3, 1)), "scale": _u(r, 0.5, 2.0, (4,))},
               lambda p: st.cauchy(loc=p["loc"], scale=p["scale"])),
    "HalfCauchy": (HalfCauchy,
                   lambda r: {"loc": r.normal(0, 1, (3, 1)), "scale": _u(r, 0.5, 2.0, (4,))},
                   lambda p: st.halfcauchy(loc=p["loc"], scale=p["scale"])),
    "Laplace": (Laplace,
                lambda r: {"loc": r.normal(0, 1, (3, 1)), "scale": _u(r, 0.5, 2.0, (4,))},
                lambda p: st.laplace(loc=p["loc"], scale=p["scale"])),
    "Exponential": (Exponential,
                    lambda r: {"rate": _u(r, 0.5, 3.0, (3, 4))},
                    lambda p: st.expon(scale=1 / p["rate"])),
    "Gamma": (Gamma,
              lambda r: {"concentration": _u(r, 0.5, 5.0, (3, 1)), "rate": _u(r, 0.5, 3.0, (4,))},
              lambda p: st.gamma(p["concentration"], scale=1 / p["rate"])),
    "InverseGamma": (InverseGamma,
                     lambda r: {"concentration": _u(r, 9.0, 14.0, (3, 1)),
                                "scale": _u(r, 0.5, 3.0, (4,))},
                     lambda p: st.invgamma(p["concentration"], scale=p["scale"])),
    "Beta": (Beta,
             lambda r: {"concentration1": _u(r, 0.5, 4.0, (3, 1)),
                        "concentration0": _u(r, 0.5, 4.0, (4,))},
             lambda p: st.beta(p["concentration1"], p["concentration0"])),
    "Uniform": (Uniform,
                lambda r: {"low": _u(r, -2.0, 0.0, (3, 1)), "high": _u(r, 0.5, 2.0, (4,))},
                lambda p: st.uniform(loc=p["low"], scale=p["high"] - p["low"])),
}
HEAVY_TAILED = {"Cauchy", "HalfCauchy"}  # no finite moments: checked through quantiles only


def _setup(name, dtype, seed=0):
    """The distribution, its scipy twin (on the dtype-rounded parameters) and the parameters."""
    cls, make, to_scipy = SCALAR[name]
    params = {k: np.asarray(v, dtype) for k, v in make(np.random.default_rng(seed)).items()}
    dist = cls(**{k: jnp.asarray(v) for k, v in params.items()})
    ref = to_scipy({k: v.astype(np.float64) for k, v in params.items()})
    return dist, ref, params


def _assert_dtype(x, dtype):
    assert x.dtype == np.dtype(dtype), (x.dtype, dtype)


@pytest.mark.parametrize("name", sorted(SCALAR))
def test_log_prob_matches_scipy_with_broadcasting(name, precision):
    dist, ref, _ = _setup(name, precision)
    assert dist.batch_shape == (3, 4)
    values = ref.rvs(size=(2, 3, 4), random_state=np.random.default_rng(1)).astype(precision)
    lp = dist.log_prob(jnp.asarray(values))
    assert lp.shape == (2, 3, 4)
    _assert_dtype(lp, precision)
    expected = ref.logpdf(values.astype(np.float64))
    np.testing.assert_allclose(np.asarray(lp, np.float64), expected,
                               rtol=RTOL[precision], atol=ATOL[precision])


@pytest.mark.parametrize("name", sorted(SCALAR))
def test_mean_and_variance_match_scipy(name, precision):
    dist, ref, _ = _setup(name, precision)
    mean, var = dist.mean(), dist.variance()
    assert mean.shape == var.shape == dist.batch_shape
    _assert_dtype(mean, precision)
    rtol = 1e-5 if precision == "float32" else 1e-12
    np.testing.assert_allclose(np.asarray(mean, np.float64), ref.mean(), rtol=rtol)
    np.testing.assert_allclose(np.asarray(var, np.float64), ref.var(), rtol=rtol)


@pytest.mark.parametrize("name", sorted(SCALAR))
def test_sample_moments_and_quantiles(name, precision):
    """Sample mean/variance within 5 standard errors of scipy's, and P(X <= q_p) within 5 standard
    errors of p for the scipy quantiles q_p (this checks the whole shape, heavy tails included).

    SE(mean) = sqrt(var / n); SE(variance) = sqrt((mu4 - var**2) / n) with mu4 = (kurtosis + 3)
    var**2 from scipy's excess kurtosis; SE(fraction below q_p) = sqrt(p (1 - p) / n).
    """
    dist, ref, _ = _setup(name, precision)
    x = dist.sample(N_DRAWS, seed=42)
    assert x.shape == (N_DRAWS, 3, 4)
    _assert_dtype(x, precision)
    x = np.asarray(x, np.float64)
    assert np.all(np.isfinite(x))
    n = N_DRAWS
    for p in (0.1, 0.5, 0.9):
        frac = np.mean(x <= ref.ppf(p), axis=0)
        np.testing.assert_array_less(np.abs(frac - p), 5 * np.sqrt(p * (1 - p) / n))
    if name in HEAVY_TAILED:
        return
    mean, var, _, kurt = (np.broadcast_to(m, (3, 4)) for m in ref.stats(moments="mvsk"))
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * np.sqrt(var / n))
    se_var = var * np.sqrt((kurt + 2) / n)
    np.testing.assert_array_less(np.abs(x.var(0, ddof=1) - var), 5 * se_var)


@pytest.mark.parametrize("name", sorted(SCALAR))
def test_log_prob_jit_and_vmap(name, precision):
    """The distribution goes through jit as a pytree argument; vmap over values (inside jit)."""
    dist, ref, _ = _setup(name, precision)
    values = ref.rvs(size=(2, 3, 4), random_state=np.random.default_rng(1)).astype(precision)
    jitted, mapped = jax.jit(lambda d, v: (d.log_prob(v), jax.vmap(d.log_prob)(v)))(
        dist, jnp.asarray(values))
    _assert_dtype(jitted, precision)
    expected = ref.logpdf(values.astype(np.float64))
    tol = dict(rtol=RTOL[precision], atol=ATOL[precision])
    np.testing.assert_allclose(np.asarray(jitted, np.float64), expected, **tol)
    np.testing.assert_allclose(np.asarray(mapped, np.float64), expected, **tol)


# name -> (distribution, points outside the support, points inside it)
OUTSIDE = {
    "HalfNormal": (lambda: HalfNormal(1.5), [-1.0, -1e-3], [0.0, 0.5]),
    "LogNormal": (lambda: LogNormal(0.2, 0.7), [-1.0, 0.0], [0.5, 3.0]),
    "HalfCauchy": (lambda: HalfCauchy(1.0, 2.0), [0.0, 0.999], [1.0, 4.0]),
    "Exponential": (lambda: Exponential(2.0), [-1.0, -1e-3], [0.0, 0.5]),
    "Gamma": (lambda: Gamma(2.5, 1.5), [-1.0, -1e-3], [0.5, 3.0]),
    "InverseGamma": (lambda: InverseGamma(2.5, 1.5), [-1.0, 0.0], [0.5, 3.0]),
    "Beta": (lambda: Beta(2.5, 1.5), [-0.5, 1.5], [0.2, 0.7]),
    "Uniform": (lambda: Uniform(-1.0, 2.0), [-1.5, 2.5], [-1.0, 0.0, 2.0]),
    "Dirichlet": (lambda: Dirichlet(jnp.array([1.5, 2.0, 3.0])),
                  [[-0.1, 0.5, 0.6], [0.2, 0.2, 0.2]], [[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]),
}


@pytest.mark.parametrize("name", sorted(OUTSIDE))
def test_minus_inf_outside_support_and_finite_gradients(name, precision):
    make, outside, inside = OUTSIDE[name]
    dist = make()
    lp_out = dist.log_prob(jnp.asarray(outside, precision))
    assert np.all(np.asarray(lp_out) == -np.inf), lp_out
    lp_in = dist.log_prob(jnp.asarray(inside, precision))
    assert np.all(np.isfinite(np.asarray(lp_in))), lp_in
    # Gradients w.r.t. every parameter stay finite when some values are outside the support
    # (the -inf branch contributes 0, never NaN), and so do gradients w.r.t. values inside it.
    values = jnp.asarray(outside + inside, precision)

    def total(d, v):
        lp = d.log_prob(v)
        return jnp.sum(jnp.where(jnp.isfinite(lp), lp, 0.0))

    g_dist, g_values = jax.jit(jax.grad(total, argnums=(0, 1)))(dist, values)
    grads = jax.tree_util.tree_leaves(g_dist)
    assert grads and all(np.all(np.isfinite(np.asarray(g))) for g in grads)
    assert np.all(np.isfinite(np.asarray(g_values)))


def test_boundary_values_match_scipy(precision):
    """At the edge of a closed support the log density is the density's limit, as in scipy."""
    cases = [(HalfNormal(1.5), st.halfnorm(scale=1.5), 0.0),
             (Exponential(2.0), st.expon(scale=0.5), 0.0),
             (HalfCauchy(1.0, 2.0), st.halfcauchy(1.0, 2.0), 1.0),
             (Gamma(1.0, 2.0), st.gamma(1.0, scale=0.5), 0.0),
             (Gamma(2.0, 2.0), st.gamma(2.0, scale=0.5), 0.0),
             (Gamma(0.5, 2.0), st.gamma(0.5, scale=0.5), 0.0),
             (Beta(1.0, 2.0), st.beta(1.0, 2.0), 0.0),
             (Beta(2.0, 0.5), st.beta(2.0, 0.5), 1.0),
             (Uniform(-1.0, 2.0), st.uniform(-1.0, 3.0), -1.0)]
    for dist, ref, x in cases:
        np.testing.assert_allclose(float(dist.log_prob(x)), ref.logpdf(x), rtol=1e-6,
                                   err_msg=repr(dist))


def test_undefined_and_infinite_moments(precision):
    """NaN where a moment is undefined, inf where it diverges (as TFP / scipy)."""
    t = StudentT(jnp.array([0.5, 1.5, 3.0]), 1.0, 2.0)
    np.testing.assert_array_equal(t.mean(), [np.nan, 1.0, 1.0])   # scipy says inf for df <= 1
    np.testing.assert_allclose(t.variance(), st.t([0.5, 1.5, 3.0], 1.0, 2.0).var(), rtol=1e-6)
    ig = InverseGamma(jnp.array([0.5, 1.5, 3.0]), 2.0)
    ref = st.invgamma([0.5, 1.5, 3.0], scale=2.0)
    np.testing.assert_allclose(ig.mean(), ref.mean(), rtol=1e-6)
    np.testing.assert_allclose(ig.variance(), ref.var(), rtol=1e-6)
    assert np.all(np.isnan(Cauchy(0.0, 1.0).mean())) and np.all(np.isnan(Cauchy().variance()))
    assert np.all(np.isinf(HalfCauchy().mean())) and np.all(np.isinf(HalfCauchy().variance()))
    # gradients of the defined moments stay finite next to undefined ones
    g = jax.grad(lambda df: jnp.sum(jnp.where(df > 2, StudentT(df, 0.0, 1.0).variance(), 0.0)))(
        jnp.array([1.5, 3.0]))
    assert np.all(np.isfinite(np.asarray(g)))


# ---- Dirichlet -------------------------------------------------------------------------------


def _dirichlet_values(alpha, dtype, rng):
    """Dirichlet draws (2, 3, K) rounded to dtype, then made to sum to 1 exactly in float64."""
    x = np.stack([rng.dirichlet(a, size=2) for a in alpha], axis=1)  # (2, 3, K)
    x = x.astype(dtype).astype(np.float64)
    x[..., -1] = 1 - x[..., :-1].sum(-1)
    return x


def test_dirichlet_log_prob_matches_scipy(precision):
    rng = np.random.default_rng(0)
    alpha = rng.uniform(0.5, 4.0, (3, 4)).astype(precision)
    dist = Dirichlet(jnp.asarray(alpha))
    assert dist.batch_shape == (3,) and dist.event_shape == (4,)
    x = _dirichlet_values(alpha.astype(np.float64), precision, rng)
    lp = dist.log_prob(jnp.asarray(x, precision))
    assert lp.shape == (2, 3)
    _assert_dtype(lp, precision)
    expected = np.array([[st.dirichlet(alpha[j].astype(np.float64)).logpdf(x[i, j])
                          for j in range(3)] for i in range(2)])
    # float32: the last coordinate is re-rounded after the exact float64 renormalization.
    rtol = RTOL[precision] if precision == "float64" else 2e-5
    np.testing.assert_allclose(np.asarray(lp, np.float64), expected, rtol=rtol,
                               atol=ATOL[precision])


def test_dirichlet_moments(precision):
    rng = np.random.default_rng(0)
    alpha = rng.uniform(0.5, 4.0, (3, 4))
    dist = Dirichlet(jnp.asarray(alpha, precision))
    np.testing.assert_allclose(dist.mean(), alpha / alpha.sum(-1, keepdims=True), rtol=1e-5)
    expected_var = np.stack([st.dirichlet(a).var() for a in alpha])
    np.testing.assert_allclose(dist.variance(), expected_var, rtol=1e-5)
    x = dist.sample(N_DRAWS, seed=3)
    assert x.shape == (N_DRAWS, 3, 4)
    _assert_dtype(x, precision)
    _check_sample_moments(np.asarray(x, np.float64), np.asarray(dist.mean(), np.float64),
                          expected_var)
    np.testing.assert_allclose(np.asarray(x, np.float64).sum(-1), 1.0, atol=1e-5)


def _check_sample_moments(x, mean, var):
    """Mean and variance of draws ``x`` (n, ...) within 5 standard errors; the SE of the variance
    uses the 4th central moment estimated from the draws (light-tailed cases only)."""
    n = x.shape[0]
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * np.sqrt(var / n))
    centered = x - x.mean(0)
    m4 = np.mean(centered**4, axis=0)
    se_var = np.sqrt((m4 - var**2) / n)
    np.testing.assert_array_less(np.abs(x.var(0, ddof=1) - var), 5 * se_var)


# ---- MultivariateNormalTriL ------------------------------------------------------------------


def _random_tril(rng, shape, d, negative_diag=False):
    tril = np.tril(rng.normal(0, 0.5, shape + (d, d)), -1)
    diag = np.exp(rng.normal(0, 0.3, shape + (d,)))
    if negative_diag:
        diag = diag * rng.choice([-1.0, 1.0], size=diag.shape)
    return tril + diag[..., None] * np.eye(d)


@pytest.mark.parametrize("negative_diag", [False, True])
def test_mvn_log_prob_matches_scipy(precision, negative_diag):
    rng = np.random.default_rng(0)
    d = 3
    loc = rng.normal(0, 1, (3, 1, d)).astype(precision)
    tril = _random_tril(rng, (4,), d, negative_diag).astype(precision)
    dist = MultivariateNormalTriL(jnp.asarray(loc), jnp.asarray(tril))
    assert dist.batch_shape == (3, 4) and dist.event_shape == (d,)
    x = rng.normal(0, 1.5, (2, 3, 4, d)).astype(precision)
    lp = dist.log_prob(jnp.asarray(x))
    assert lp.shape == (2, 3, 4)
    _assert_dtype(lp, precision)
    loc64, tril64, x64 = (a.astype(np.float64) for a in (loc, tril, x))
    cov = tril64 @ np.swapaxes(tril64, -1, -2)
    expected = np.array([[[st.multivariate_normal(loc64[i, 0], cov[j]).logpdf(x64[s, i, j])
                           for j in range(4)] for i in range(3)] for s in range(2)])
    np.testing.assert_allclose(np.asarray(lp, np.float64), expected, rtol=RTOL[precision],
                               atol=ATOL[precision])
    np.testing.assert_allclose(np.asarray(dist.covariance(), np.float64),
                               np.broadcast_to(cov, (3, 4, d, d)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(dist.variance(), np.float64),
                               np.broadcast_to(np.diagonal(cov, axis1=-2, axis2=-1), (3, 4, d)),
                               rtol=1e-5)
    np.testing.assert_array_equal(dist.mean(), np.broadcast_to(loc, (3, 4, d)))


def test_mvn_ignores_upper_triangle(precision):
    tril = np.array([[1.0, 0.0], [0.5, 2.0]])
    messy = tril + np.array([[0.0, 7.0], [0.0, 0.0]])
    x = jnp.array([0.3, -1.2])
    a = MultivariateNormalTriL(jnp.zeros(2), tril).log_prob(x)
    b = MultivariateNormalTriL(jnp.zeros(2), messy).log_prob(x)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_mvn_sample_moments(precision):
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
    # covariances: for Gaussian data var(x_i x_j) = S_ii S_jj + S_ij**2
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
