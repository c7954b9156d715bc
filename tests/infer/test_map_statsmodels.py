"""``cm.map`` against statsmodels' maximum likelihood on statsmodels' own Markov-switching examples.

With flat priors (``Uniform(-BIG, BIG)`` locations, ``Uniform(0, BIG)`` scales, ``Dirichlet(ones)``
transition rows) the constrained MAP is the MLE, so ``cm.map`` with its default settings must reach
statsmodels' optimum: every parameter within 1e-3 and the log-likelihood within 1e-5 nats.  The
models are those of tests/distributions/test_regime_switching.py (whose log-likelihoods match
statsmodels' to 1e-10): the first regime from the ergodic distribution of the transition matrix,
as statsmodels does.  Data: statsmodels' Fed funds rate (its MarkovRegression examples, Stata's
``mswitch`` manual) and Hamilton's GNP growth (its MarkovAutoregression examples).  The default suite keeps the Fed funds
fit with a variance per regime; the other two are in the slow suite (``make test-slow``).
"""

import importlib
import time
import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

import coromix as cm

tfd = cm.distributions
BIG = 100.0


def statsmodels_data(module, name):
    """An array from statsmodels' regime-switching test modules (which use a pytest mark this
    project does not register: its warning is silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        module = importlib.import_module(f"statsmodels.tsa.regime_switching.tests.{module}")
    return np.asarray(getattr(module, name), np.float64)


FEDFUNDS = statsmodels_data("test_markov_regression", "fedfunds")
RGNP = statsmodels_data("test_markov_autoregression", "rgnp")


def ergodic(P):
    """The stationary distribution of the transition matrix ``P`` (statsmodels' first regime)."""
    K = P.shape[-1]
    A = jnp.concatenate([(jnp.eye(K) - P.T)[:-1], jnp.ones((1, K))])
    return jnp.linalg.solve(A, jnp.eye(K)[-1])


def markov_regression(T, switching_variance):
    """statsmodels' ``MarkovRegression(y, k_regimes=2[, switching_variance=True])``."""

    def model():
        P = yield tfd.Dirichlet(jnp.ones((2, 2)))
        mu = yield tfd.Uniform(-BIG * jnp.ones(2), BIG)
        sigma = yield tfd.Uniform(jnp.zeros(2 if switching_variance else ()), BIG)
        pi = ergodic(P)

        def step(prev, inputs):
            s = yield tfd.Categorical(probs=pi if prev is None else P[prev.s])
            y = yield tfd.Normal(mu[s], sigma[s] if switching_variance else sigma)

        y = yield tfd.RegimeSwitching(step, num_steps=T)

    return model


def markov_ar1(T):
    """statsmodels' ``MarkovAutoregression(y, k_regimes=2, order=1)`` (Hamilton's model, AR(1)):
    ``y_t - mu[s_t] = phi[s_t] (y_{t-1} - mu[s_{t-1}]) + e_t``, conditional on ``y_0``."""

    def model():
        P = yield tfd.Dirichlet(jnp.ones((2, 2)))
        mu = yield tfd.Uniform(-BIG * jnp.ones(2), BIG)
        phi = yield tfd.Uniform(-jnp.ones(2), 1.0)
        sigma = yield tfd.Uniform(0.0, BIG)
        pi = ergodic(P)

        def step(prev, inputs):
            s = yield tfd.Categorical(probs=pi if prev is None else P[prev.s])
            if prev is None:  # statsmodels conditions on y_0: a placeholder free of parameters
                y = yield tfd.Normal(0.0, 1.0)
            else:
                y = yield tfd.Normal(mu[s] + phi[s] * (prev.y - mu[prev.s]), sigma)

        y = yield tfd.RegimeSwitching(step, num_steps=T)

    return model


def canonical(params, k_sigma, k_ar):
    """statsmodels' parameter vector (p[0->0], p[1->0], const, sigma2, ar) with regime 0 the one
    of the lower mean (the likelihood is symmetric in the regimes' labels)."""
    p00, p10, const = params[0], params[1], params[2:4]
    sigma2, ar = params[4 : 4 + k_sigma], params[4 + k_sigma : 4 + k_sigma + k_ar]
    if const[0] > const[1]:
        p00, p10 = 1 - p10, 1 - p00
        const, sigma2, ar = const[::-1], (sigma2[::-1] if k_sigma == 2 else sigma2), ar[::-1]
    return np.concatenate([[p00, p10], const, sigma2, ar])


def from_estimate(est):
    """``est`` in statsmodels' parametrization (variances, not standard deviations)."""
    P = np.asarray(est.P, np.float64)
    sigma = np.atleast_1d(np.asarray(est.sigma, np.float64))
    ar = np.asarray(est.phi, np.float64) if "phi" in est else np.zeros(0)
    params = np.concatenate([[P[0, 0], P[1, 0]], np.asarray(est.mu, np.float64), sigma**2, ar])
    return canonical(params, len(sigma), len(ar))


def statsmodels_optimum(model, start_params=None):
    """statsmodels' MLE: its default fit (with a random search), and the fit from ``start_params``
    when given; the higher log-likelihood wins."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [model.fit(search_reps=20, rng=0, maxiter=1000, disp=False)]
        if start_params is not None:
            fits.append(
                model.fit(
                    start_params=np.asarray(start_params, np.float64), maxiter=1000, disp=False
                )
            )
    for fit in fits:
        print(f"statsmodels fit: llf {fit.llf:.7f}")
    return max(fits, key=lambda fit: fit.llf)


def check_reaches_the_mle(est, model, reference, k_sigma, k_ar, log_density_offset):
    assert est.converged, (est.gradient_norm, est.num_steps)
    ours = from_estimate(est)
    theirs = canonical(np.asarray(reference.params), k_sigma, k_ar)
    llf = model.loglike(ours)
    print("coromix    :", np.round(ours, 6), f"llf {llf:.7f}")
    print("statsmodels:", np.round(theirs, 6), f"llf {reference.llf:.7f}")
    error = np.max(np.abs(ours - theirs))
    print(
        f"max parameter error {error:.2e}, llf(coromix) - llf(statsmodels) "
        f"{llf - reference.llf:.2e}; converged {est.converged} after {est.num_steps} steps, "
        f"gradient {est.gradient_norm:.1e}; restarts {np.round(est.restart_log_densities, 5)}"
    )
    np.testing.assert_allclose(ours, theirs, atol=1e-3, rtol=0)
    assert abs(llf - reference.llf) < 1e-5
    # the MAP's log density is the log-likelihood plus the flat priors' constants
    np.testing.assert_allclose(est.log_density - log_density_offset, llf, rtol=0, atol=1e-8)


def flat_prior_constant(num_locations, num_scales, num_ar=0):
    # Uniform(-BIG, BIG) and Uniform(0, BIG) densities; Dirichlet(1, 1) rows have density 1;
    # Uniform(-1, 1) for the AR coefficients
    return -num_locations * np.log(2 * BIG) - num_scales * np.log(BIG) - num_ar * np.log(2.0)


def timed_map(model, observed, **kwargs):
    start = time.perf_counter()
    est = cm.map(model, observed, **kwargs)
    print(f"cm.map: {time.perf_counter() - start:.1f} s (compilation included)")
    return est


# slow (about 45 s); cm.map's standard errors are also tested in tests/infer/test_map.py
@pytest.mark.slow
def test_fedfunds_switching_mean_and_its_standard_errors(x64):
    """Stata's mswitch example: Fed funds, switching intercept, one variance (statsmodels'
    TestFedFundsConst, llf -508.63592); the standard errors against statsmodels' (its numerical
    Hessian) and Stata's (observed information)."""
    model = sm.tsa.MarkovRegression(FEDFUNDS, k_regimes=2)
    reference = statsmodels_optimum(model)
    est = timed_map(
        markov_regression(len(FEDFUNDS), False), {"y": jnp.asarray(FEDFUNDS)}, standard_errors=True
    )
    check_reaches_the_mle(est, model, reference, 1, 0, flat_prior_constant(2, 1))

    se = est.standard_errors
    assert se.P.shape == (2, 2) and se.mu.shape == (2,) and se.sigma.shape == ()
    low = int(np.argmin(np.asarray(est.mu)))  # statsmodels' regime 0
    high = 1 - low
    sigma = float(est.sigma)
    ours = np.array(
        [se.P[low, low], se.P[high, low], se.mu[low], se.mu[high], 2 * sigma * se.sigma]
    )  # the delta method for sigma^2 = sigma**2
    print(
        "standard errors: coromix",
        np.round(ours, 6),
        "statsmodels",
        np.round(np.asarray(reference.bse), 6),
    )
    assert reference.params[2] < reference.params[3]  # same labelling as `ours`
    np.testing.assert_allclose(ours, reference.bse, rtol=0.03)
    # Stata's observed-information standard errors (statsmodels' TestFedFundsConst.test_bse)
    np.testing.assert_allclose(ours[:4], [0.0104002, 0.0268434, 0.1767083, 0.2999889], rtol=1e-3)
    # a row of P sums to 1: its two entries have the same standard error
    np.testing.assert_allclose(se.P[:, 0], se.P[:, 1], rtol=1e-6)


@pytest.mark.slow
def test_fedfunds_switching_variance(x64):
    """Fed funds with a variance per regime.  statsmodels' default fit (random search included)
    stops at a local optimum (llf about -505.70); its fit from a start near the regimes' levels
    reaches the MLE, llf -496.1455, which the default ``cm.map`` finds from its uniform starts."""
    model = sm.tsa.MarkovRegression(FEDFUNDS, k_regimes=2, switching_variance=True)
    reference = statsmodels_optimum(model, start_params=[0.95, 0.05, 4.0, 9.0, 3.0, 8.0])
    assert reference.llf > -496.2
    est = timed_map(markov_regression(len(FEDFUNDS), True), {"y": jnp.asarray(FEDFUNDS)})
    check_reaches_the_mle(est, model, reference, 2, 0, flat_prior_constant(2, 2))


# slow (about 35 s); a step that reads prev.y is also tested against brute force in
# tests/distributions/test_regime_switching.py
@pytest.mark.slow
def test_hamilton_ms_ar1(x64):
    """Hamilton's GNP growth, switching mean and AR(1) coefficient (statsmodels'
    TestHamiltonAR1Switch, E-views llf -186.7575)."""
    model = sm.tsa.MarkovAutoregression(RGNP, k_regimes=2, order=1)
    reference = statsmodels_optimum(model)
    est = timed_map(markov_ar1(len(RGNP)), {"y": jnp.asarray(RGNP)})
    offset = flat_prior_constant(2, 1, num_ar=2) + stats.norm.logpdf(RGNP[0])
    check_reaches_the_mle(est, model, reference, 1, 2, offset)
