"""MAP by optimization: the mode of the constrained posterior density."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import coromix as cm
from coromix.results import ConvergenceWarning

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
    np.testing.assert_allclose(
        estimate.rate, (3.0 + COUNTS.sum() - 1) / (2.0 + len(COUNTS)), atol=1e-3
    )
    jd = tfd.JointDistributionCoroutine(conjugate_model)
    np.testing.assert_allclose(
        estimate.log_density,
        jd.log_prob(mu=estimate.mu, rate=estimate.rate, y=Y, counts=COUNTS),
        rtol=1e-5,
    )


def test_map_sums_out_discrete_choices():
    def switch():
        z = yield tfd.Bernoulli(probs=0.3)
        mu = yield tfd.Normal(0.0, 1.0)
        x = yield tfd.Normal(mu + 2.0 * z, 1.0)

    # log p(mu, x) = log N(mu; 0, 1) + log(0.7 N(x; mu, 1) + 0.3 N(x; mu + 2, 1))
    grid = np.linspace(-3, 3, 600001)
    norm = lambda v, m: -0.5 * (v - m) ** 2
    log_p = norm(grid, 0) + np.logaddexp(
        np.log(0.7) + norm(1.5, grid), np.log(0.3) + norm(1.5, grid + 2)
    )
    estimate = cm.map(tfd.JointDistributionCoroutine(switch), {"x": 1.5})
    np.testing.assert_allclose(estimate.mu, grid[np.argmax(log_p)], atol=1e-3)


def test_map_error_when_no_restart_is_finite():
    def exponential_model():
        rate = yield tfd.Exponential(1.0)
        # t <= rate: zero density wherever a restart can be (rate = exp(u) < e^2 for |u| < 2;
        # an observed value outside the support itself is rejected earlier, at pin)
        t = yield tfd.Uniform(0.0, jnp.broadcast_to(rate, (2,)))

    with pytest.raises(ValueError, match=r"all 3 restarts .*\['rate'\]"):
        cm.map(exponential_model, {"t": jnp.array([1.0, 20.0])}, num_restarts=3, num_steps=10)
    with pytest.raises(ValueError, match="num_steps must be an integer >= 1"):
        cm.map(exponential_model, {"t": jnp.array([1.0, 1.0])}, num_steps=0)


@pytest.mark.slow  # N = 5000, 8 restarts, Hessians in float64 (about 30 s)
def test_map_recovers_a_three_component_mixture_within_three_standard_errors():
    """N = 5000 points from a known 3-component GMM; the estimate's error against the truth is
    compared with the asymptotic standard errors (inverse observed information at the estimate)."""
    true_w, true_mu, true_sigma = (
        np.array([0.5, 0.3, 0.2]),
        np.array([-4.0, 0.0, 3.0]),
        np.array([1.0, 0.7, 1.5]),
    )
    n = 5000
    rng = np.random.default_rng(11)
    z = rng.choice(3, size=n, p=true_w)
    y = rng.normal(true_mu[z], true_sigma[z])

    def gmm():
        w = yield tfd.Dirichlet(jnp.ones(3))
        mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(3), 10.0))
        sigma = yield tfd.HalfNormal(5.0 * jnp.ones(3))
        z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (n, 3)))
        y = yield tfd.Normal(mu[z], sigma[z])

    with jax.enable_x64(True):
        est = cm.map(gmm, {"y": y}, num_restarts=8, num_steps=3000, standard_errors=True)
        theta = jnp.concatenate(
            [jnp.asarray(est.mu), jnp.asarray(est.sigma), jnp.asarray(est.w[:2])]
        )

        def log_lik(t):  # free coordinates: mu, sigma, w_1, w_2 (w_3 = 1 - w_1 - w_2)
            mu, sigma, w = t[:3], t[3:6], jnp.append(t[6:], 1 - t[6:].sum())
            dens = jnp.sum(w * jax.scipy.stats.norm.pdf(jnp.asarray(y)[:, None], mu, sigma), 1)
            return jnp.sum(jnp.log(dens))

        cov = np.linalg.inv(-np.asarray(jax.hessian(log_lik)(theta)))
    se = np.sqrt(np.diag(cov))
    se_w3 = np.sqrt(cov[6, 6] + cov[7, 7] + 2 * cov[6, 7])
    errors = np.concatenate(
        [
            (np.asarray(est.mu) - true_mu) / se[:3],
            (np.asarray(est.sigma) - true_sigma) / se[3:6],
            (np.asarray(est.w[:2]) - true_w[:2]) / se[6:],
            [(np.asarray(est.w)[2] - true_w[2]) / se_w3],
        ]
    )
    print("errors in standard errors:", np.round(errors, 2), "se:", np.round(se, 4))
    assert np.all(np.abs(errors) < 3), errors
    # and the standard errors are those of a well-identified fit (not so wide the check is empty)
    assert np.all(se < 0.1)
    # cm.map's own standard errors (the delta method from its unconstrained Hessian: the simplex,
    # the ordering and the log scale) are these, but for the priors' small curvature
    assert est.converged
    ours = np.concatenate(
        [est.standard_errors.mu, est.standard_errors.sigma, est.standard_errors.w]
    )
    np.testing.assert_allclose(ours, np.append(se, se_w3), rtol=1e-3)


@pytest.mark.slow
def test_map_reports_convergence_and_warns_when_stopped_early(precision):
    estimate = cm.map(conjugate_model, {"y": Y, "counts": COUNTS})
    assert estimate.converged and 1 <= estimate.num_steps < 100
    # gtol is relative to max(1, |log p|) and ftol, when it stops first, leaves the gradient small
    assert estimate.gradient_norm < (1e-4 if precision == "float64" else 1e-2)
    assert estimate.restart_log_densities.shape == (8,) and estimate.restart_converged.all()
    np.testing.assert_allclose(
        estimate.restart_log_densities,
        estimate.log_density,
        rtol=1e-6 if precision == "float32" else 1e-10,
    )
    assert estimate.standard_errors is None
    with pytest.warns(
        ConvergenceWarning,
        match=r"MAP of 'conjugate_model' did not converge.*after max_steps.*"
        r"largest gradient coordinate at .*raise max_steps \(now 2\)$",
    ):
        early = cm.map(conjugate_model, {"y": Y, "counts": COUNTS}, max_steps=2)
    assert not early.converged and early.num_steps == 2 and not early.restart_converged.any()
    assert early.log_density < estimate.log_density
    # num_steps is the older name of max_steps
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        assert cm.map(conjugate_model, {"y": Y, "counts": COUNTS}, num_steps=2).num_steps == 2
    with pytest.raises(ValueError, match="max_steps or its older name num_steps, not both"):
        cm.map(conjugate_model, {"y": Y, "counts": COUNTS}, num_steps=2, max_steps=5)
    with pytest.raises(ValueError, match="max_steps must be an integer >= 1"):
        cm.map(conjugate_model, {"y": Y, "counts": COUNTS}, max_steps=0)


def test_map_standard_errors_closed_form(precision):
    """Normal mean with known sd: se = 1 / sqrt(precision); Gamma-Poisson rate (a log transform,
    so the delta method matters): log p = (a + S - 1) log r - (b + n) r, se = r / sqrt(a + S - 1)."""
    estimate = cm.map(conjugate_model, {"y": Y, "counts": COUNTS}, standard_errors=True)
    se = estimate.standard_errors
    assert list(se) == ["mu", "rate"] and np.shape(se.mu) == () and np.shape(se.rate) == ()
    rtol = 1e-6 if precision == "float64" else 1e-3
    np.testing.assert_allclose(se.mu, 1 / np.sqrt(1 / 2.0**2 + len(Y)), rtol=rtol)
    shape = 3.0 + COUNTS.sum() - 1
    np.testing.assert_allclose(se.rate, np.sqrt(shape) / (2.0 + len(COUNTS)), rtol=rtol)
    np.testing.assert_allclose(
        estimate.covariance, np.diag([se.mu**2, se.rate**2]), rtol=rtol, atol=1e-6
    )


def test_map_drops_restarts_that_start_where_the_density_is_zero():
    """y ~ Uniform(mu - 1, mu + 1) at y = 0.5: log p is -inf for mu outside (-0.5, 1.5), where
    some uniform starts fall; those restarts are dropped (-inf), not propagated as nan."""

    def boxed():
        mu = yield tfd.Normal(0.0, 1.0)
        y = yield tfd.Uniform(mu - 1.0, mu + 1.0)

    estimate = cm.map(boxed, {"y": 0.5}, num_restarts=8, prior_start=True)
    lp = estimate.restart_log_densities
    assert lp.shape == (9,) and not np.isnan(lp).any()
    assert np.isneginf(lp).any() and np.isfinite(lp).any()
    assert not estimate.restart_converged[np.isneginf(lp)].any()
    np.testing.assert_allclose(estimate.mu, 0.0, atol=1e-4)
    np.testing.assert_allclose(
        estimate.log_density, -0.5 * np.log(2 * np.pi) - np.log(2.0), rtol=1e-5
    )
    assert estimate.converged
