"""RegimeSwitching(history=p): steps that see the last p steps, summed out over K^p expanded states.

Oracles: brute force over all K^T regime paths (float64, 1e-10), and statsmodels' published
Markov-switching autoregressions (Hamilton's MS-AR(4) on GNP growth, Stata's switching AR(2),
Filardo's time-varying-transition AR(4)), at their published parameters.
"""

import importlib
import itertools
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import logsumexp

import coromix.distributions as tfd
from coromix.distributions.regime_switching import RegimeSwitching


def statsmodels_tests():
    """statsmodels' Markov autoregression test module (its data and published results)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        return importlib.import_module(
            "statsmodels.tsa.regime_switching.tests.test_markov_autoregression"
        )


SM = statsmodels_tests()
RGNP = np.asarray(SM.rgnp, np.float64)
RESULTS = Path(SM.__file__).parent / "results"


def ergodic(P):
    """Stationary distribution of a row-stochastic ``P`` (statsmodels' first regime)."""
    K = P.shape[-1]
    A = jnp.concatenate([(jnp.eye(K) - P.T)[:-1], jnp.ones((1, K))])
    return jnp.linalg.solve(A, jnp.eye(K)[-1])


# --------------------------------------------------------------------------------------------
# brute force over regime paths
# --------------------------------------------------------------------------------------------

LOGITS = np.array([[1.0, -0.5, 0.2], [-0.3, 0.8, 0.0], [0.1, 0.4, 1.2]])
MU = np.array([-1.0, 0.5, 2.0])
SD = np.array([0.7, 1.0, 1.4])
PHI = np.array([0.4, -0.25, 0.15, 0.1])


def make_step(K, p, regime_only_first):
    """Transitions that read the previous regime, the previous observation and the regime two
    steps back; a mean-adjusted AR over everything ``prev`` holds."""
    logits, mu, sd, phi = (jnp.asarray(a) for a in (LOGITS[:K, :K], MU[:K], SD[:K], PHI))

    def step(prev, inputs):
        if not prev:
            base = jnp.zeros(K)
        else:
            base = logits[prev[0].s] + 0.3 * prev[0].y
            if len(prev) > 1:
                base = base + 0.5 * (jnp.arange(K) == prev[1].s)
        s = yield tfd.Categorical(logits=base)
        if len(prev) >= regime_only_first:
            ar = sum(phi[k] * (prev[k].y - mu[prev[k].s]) for k in range(len(prev)))
            y = yield tfd.Normal(mu[s] + ar, sd[s])

    return step


def brute_force(y, K, p, regime_only_first):
    """log p(y), smoothed marginals [T, K], the best path and all paths' log weights."""
    T = len(y)
    mu, sd, phi = MU[:K], SD[:K], PHI

    def log_joint(path):
        total = 0.0
        for t, s in enumerate(path):
            lags = list(range(1, min(t, p) + 1))  # prev[k] = step t-1-k
            if t == 0:
                base = np.zeros(K)
            else:
                base = LOGITS[:K, :K][path[t - 1]] + 0.3 * y[t - 1]
                if t >= 2 and p >= 2:
                    base = base + 0.5 * (np.arange(K) == path[t - 2])
            total += base[s] - logsumexp(base)
            if min(t, p) >= regime_only_first:
                ar = sum(phi[k - 1] * (y[t - k] - mu[path[t - k]]) for k in lags)
                total += stats.norm.logpdf(y[t], mu[s] + ar, sd[s])
        return total

    paths = list(itertools.product(range(K), repeat=T))
    joint = np.array([log_joint(path) for path in paths])
    weights = np.exp(joint - logsumexp(joint))
    marginals = np.zeros((T, K))
    for w, path in zip(weights, paths):
        marginals[np.arange(T), path] += w
    return logsumexp(joint), marginals, np.array(paths[int(np.argmax(joint))])


@pytest.mark.parametrize(
    "K, p, T, regime_only_first",
    [
        (2, 2, 5, 1),
        (2, 4, 3, 1),  # T < p
        # the larger cases (10-16 s each in the default suite) in the slow suite
        pytest.param(2, 3, 8, 2, marks=pytest.mark.slow),
        pytest.param(2, 3, 8, 0, marks=pytest.mark.slow),
        pytest.param(3, 2, 6, 1, marks=pytest.mark.slow),
        pytest.param(2, 4, 7, 4, marks=pytest.mark.slow),
    ],
)
def test_history_equals_brute_force(x64, K, p, T, regime_only_first):
    """Log-likelihood, current-regime marginals, Viterbi path and FFBS draws; the first
    ``regime_only_first`` steps yield only their regime (their observations conditioned on),
    including series shorter than the history (T = 3 < p = 4)."""
    y = np.random.default_rng(K * 10 + p).normal(0.5, 1.5, size=T)
    d = RegimeSwitching(make_step(K, p, regime_only_first), T, history=p)
    log_lik, marginals, best = brute_force(y, K, p, regime_only_first)
    np.testing.assert_allclose(d.log_prob(jnp.asarray(y)), log_lik, rtol=1e-10)
    post = d.posterior(jnp.asarray(y))
    assert post.marginals.shape == (T, K) and post.filtered.shape == (T, K)
    np.testing.assert_allclose(post.marginals, marginals, atol=1e-10)
    np.testing.assert_allclose(d.posterior_marginals(jnp.asarray(y)).probs, marginals, atol=1e-10)
    np.testing.assert_allclose(post.filtered[-1], marginals[-1], atol=1e-10)
    np.testing.assert_array_equal(d.posterior_mode(jnp.asarray(y)), best)
    n = 4000
    draws = np.asarray(d.posterior_sample(jnp.asarray(y), sample_shape=n, seed=1))
    assert draws.shape == (n, T) and draws.dtype == np.int32
    freq = np.stack([np.mean(draws == k, axis=0) for k in range(K)], -1)
    se = np.sqrt(marginals * (1 - marginals) / n)
    assert np.all(np.abs(freq - marginals) < 5 * se + 1e-3)


@pytest.mark.slow
def test_history_1_written_with_a_longer_history_changes_nothing(x64):
    """A first-order step given history=3 (it reads prev[0] only) has the same likelihood and
    marginals as with history=1."""
    P = jnp.array([[0.9, 0.1], [0.2, 0.8]])
    y = jnp.asarray(np.random.default_rng(0).normal(size=20) + np.repeat([0.0, 3.0], 10))

    def step1(prev, inputs):
        s = yield tfd.Categorical(probs=jnp.array([0.3, 0.7]) if prev is None else P[prev.s])
        obs = yield tfd.Normal(jnp.array([0.0, 3.0])[s], 1.0)

    def step3(prev, inputs):
        s = yield tfd.Categorical(probs=jnp.array([0.3, 0.7]) if not prev else P[prev[0].s])
        obs = yield tfd.Normal(jnp.array([0.0, 3.0])[s], 1.0)

    one, three = RegimeSwitching(step1, 20), RegimeSwitching(step3, 20, history=3)
    np.testing.assert_allclose(three.log_prob(y), one.log_prob(y), rtol=1e-12)
    np.testing.assert_allclose(
        three.posterior_marginals(y).probs, one.posterior_marginals(y).probs, atol=1e-12
    )
    np.testing.assert_array_equal(three.posterior_mode(y), one.posterior_mode(y))


def test_history_1_regime_only_first_step_is_statsmodels_ms_ar1(x64):
    """history=1 with a first step that yields only its regime: exactly statsmodels'
    MarkovAutoregression(order=1) log-likelihood (conditional on y_0), no placeholder term."""
    model = sm.tsa.MarkovAutoregression(RGNP, k_regimes=2, order=1)
    # TestHamiltonAR1Switch (E-views): p[0->0], p[1->0], const, sigma2, ar.L1[0], ar.L1[1]
    theta = np.r_[0.85472458, 0.53662099, 1.041419, -0.479157, np.exp(-0.231404) ** 2,
                  0.243128, 0.713029]  # fmt: skip
    p00, p10, mu, sigma, phi = theta[0], theta[1], theta[2:4], np.sqrt(theta[4]), theta[5:7]
    P = jnp.array([[p00, 1 - p00], [p10, 1 - p10]])
    pi = ergodic(P)

    def step(prev, inputs):
        s = yield tfd.Categorical(probs=pi if prev is None else P[prev.s])
        if prev is not None:
            y = yield tfd.Normal(mu[s] + phi[s] * (prev.y - mu[prev.s]), sigma)

    d = RegimeSwitching(step, len(RGNP))
    np.testing.assert_allclose(d.log_prob(jnp.asarray(RGNP)), model.loglike(theta), rtol=1e-12)
    np.testing.assert_allclose(d.log_prob(jnp.asarray(RGNP)), -186.7575, atol=1e-4)
    smoothed = model.smooth(theta).smoothed_marginal_probabilities
    np.testing.assert_allclose(
        d.posterior_marginals(jnp.asarray(RGNP)).probs[1:], smoothed, atol=1e-10
    )


# --------------------------------------------------------------------------------------------
# statsmodels' published Markov-switching autoregressions, written with history=p
# --------------------------------------------------------------------------------------------

# TestHamiltonAR4 (E-views): p[0->0], p[1->0], const[0], const[1], sigma2, ar.L1..ar.L4
HAMILTON_AR4 = np.r_[0.754673, 0.095915, -0.358811, 1.163516, np.exp(-0.262658) ** 2,
                     0.013486, -0.057521, -0.246983, -0.212923]  # fmt: skip


def hamilton_ar4(theta, T):
    """Hamilton (1989): y_t - mu[s_t] = sum_k phi_k (y_{t-k} - mu[s_{t-k}]) + e_t."""
    P = jnp.array([[theta[0], 1 - theta[0]], [theta[1], 1 - theta[1]]])
    mu, sigma, phi, pi = jnp.asarray(theta[2:4]), jnp.sqrt(theta[4]), theta[5:9], ergodic(P)

    def step(prev, inputs):
        s = yield tfd.Categorical(probs=pi if not prev else P[prev[0].s])
        if len(prev) == 4:  # the first four observations are conditioned on, as statsmodels
            ar = sum(phi[k] * (prev[k].y - mu[prev[k].s]) for k in range(4))
            y = yield tfd.Normal(mu[s] + ar, sigma)

    return RegimeSwitching(step, T, history=4)


def test_hamilton_ms_ar4_equals_statsmodels(x64):
    """Hamilton's MS-AR(4) with a switching mean on GNP growth (statsmodels'
    ``TestHamiltonAR4``, E-views' parameters).

    statsmodels conditions on the first four observations: its log-likelihood is
    ``log p(y_4, ..., y_{T-1} | y_0..y_3)`` with the regimes ``s_0..s_3`` drawn from the ergodic
    distribution and the transitions (``s_0`` ergodic, then ``P``).  Written as a step, the first
    four steps yield only their regime (their observations are conditioned on, readable as
    ``prev[k].y``), so ``log_prob`` is that same quantity; statsmodels' smoothed probabilities
    are for steps 4..T-1, our rows ``[4:]``.
    """
    d = hamilton_ar4(HAMILTON_AR4, len(RGNP))
    model = sm.tsa.MarkovAutoregression(RGNP, k_regimes=2, order=4, switching_ar=False)
    result = model.smooth(HAMILTON_AR4)
    y = jnp.asarray(RGNP)
    post = d.posterior(y)
    print(f"llf: coromix {float(post.log_likelihood):.12f}, statsmodels {result.llf:.12f}")
    np.testing.assert_allclose(d.log_prob(y), result.llf, rtol=0, atol=1e-8)
    np.testing.assert_allclose(post.log_likelihood, result.llf, rtol=0, atol=1e-8)
    np.testing.assert_allclose(d.log_prob(y), -181.26339, atol=1e-5)  # E-views' published llf
    np.testing.assert_allclose(
        post.marginals[4:], result.smoothed_marginal_probabilities, rtol=0, atol=1e-8
    )
    np.testing.assert_allclose(
        post.filtered[4:], result.filtered_marginal_probabilities, rtol=0, atol=1e-8
    )
    np.testing.assert_allclose(post.marginals[4:, 1], SM.hamilton_ar4_smoothed, atol=1e-5)
    print(
        "max |smoothed - statsmodels|:",
        np.max(np.abs(post.marginals[4:] - result.smoothed_marginal_probabilities)),
    )


def hamilton_joint(theta):
    """The MS-AR(4) with the regime means as parameters, in a joint model."""
    P = jnp.array([[theta[0], 1 - theta[0]], [theta[1], 1 - theta[1]]])
    pi, sigma, phi, T = ergodic(P), np.sqrt(theta[4]), theta[5:9], len(RGNP)

    def model():
        mu = yield tfd.Normal(jnp.zeros(2), 10.0)

        def step(prev, inputs):
            s = yield tfd.Categorical(probs=pi if not prev else P[prev[0].s])
            if len(prev) == 4:
                ar = sum(phi[k] * (prev[k].y - mu[prev[k].s]) for k in range(4))
                y = yield tfd.Normal(mu[s] + ar, sigma)

        gnp = yield tfd.RegimeSwitching(step, T, history=4)

    return tfd.JointDistributionCoroutine(model)


def test_hamilton_ms_ar4_in_a_joint_model_reports_the_current_regime(x64):
    """``discrete_posterior`` of the joint model reports the current regime's ``[T, 2]``
    marginals: statsmodels' smoothed probabilities from step 4 on."""
    jd = hamilton_joint(HAMILTON_AR4)
    post = jd.discrete_posterior(mu=jnp.asarray(HAMILTON_AR4[2:4]), gnp=jnp.asarray(RGNP))
    assert list(post) == ["gnp_s"] and post.gnp_s.shape == (len(RGNP), 2)
    sm_model = sm.tsa.MarkovAutoregression(RGNP, k_regimes=2, order=4, switching_ar=False)
    smoothed = sm_model.smooth(HAMILTON_AR4).smoothed_marginal_probabilities
    np.testing.assert_allclose(post.gnp_s[4:], smoothed, atol=1e-8)


def test_hamilton_ms_ar4_gradient_equals_statsmodels_differences(x64):
    """The compiled gradient of the joint log density in the regime means equals a central
    difference of statsmodels' log-likelihood (away from the optimum)."""
    theta = HAMILTON_AR4
    jd = hamilton_joint(theta)
    sm_model = sm.tsa.MarkovAutoregression(RGNP, k_regimes=2, order=4, switching_ar=False)

    def log_lik(mu):
        return jd.log_prob(mu=mu, gnp=jnp.asarray(RGNP)) - jnp.sum(
            jax.scipy.stats.norm.logpdf(mu, 0.0, 10.0)
        )

    away = theta.copy()  # away from the optimum, where the gradient is of order one
    away[2:4] += [0.2, -0.3]
    grad = jax.jit(jax.grad(log_lik))(jnp.asarray(away[2:4]))
    h = 1e-6
    numeric = []
    for i in range(2):
        up, down = away.copy(), away.copy()
        up[2 + i] += h
        down[2 + i] -= h
        numeric.append((sm_model.loglike(up) - sm_model.loglike(down)) / (2 * h))
    print("gradient:", np.asarray(grad), "statsmodels central difference:", numeric)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6)


def test_stata_switching_ar2_equals_statsmodels(x64):
    """Switching mean AND switching AR(2) coefficients, no hand expansion (statsmodels'
    ``TestHamiltonAR2Switch``, Stata's mswitch manual): llf -179.32354, smoothed probabilities
    against Stata's (1e-6) and statsmodels' (1e-8) from step 2 on."""
    theta = np.r_[0.3812383, 0.3564492, -0.0055216, 1.195482, 0.6677098**2,
                  0.3710719, 0.4621503, 0.7002937, -0.3206652]  # fmt: skip
    P = jnp.array([[theta[0], 1 - theta[0]], [theta[1], 1 - theta[1]]])
    mu, sigma, pi = jnp.asarray(theta[2:4]), np.sqrt(theta[4]), ergodic(P)
    phi = jnp.asarray(theta[5:9]).reshape(2, 2)  # ar.L1[0], ar.L1[1], ar.L2[0], ar.L2[1]

    def step(prev, inputs):
        s = yield tfd.Categorical(probs=pi if not prev else P[prev[0].s])
        if len(prev) == 2:
            ar = sum(phi[k, s] * (prev[k].y - mu[prev[k].s]) for k in range(2))
            y = yield tfd.Normal(mu[s] + ar, sigma)

    d = RegimeSwitching(step, len(RGNP), history=2)
    model = sm.tsa.MarkovAutoregression(RGNP, k_regimes=2, order=2)
    result = model.smooth(theta)
    post = d.posterior(jnp.asarray(RGNP))
    np.testing.assert_allclose(post.log_likelihood, result.llf, rtol=0, atol=1e-8)
    np.testing.assert_allclose(post.log_likelihood, -179.32354, atol=1e-5)
    np.testing.assert_allclose(
        post.marginals[2:], result.smoothed_marginal_probabilities, atol=1e-8
    )
    stata = pd.read_csv(RESULTS / "results_predict_rgnp.csv").iloc[3:]
    np.testing.assert_allclose(post.marginals[2:, 0], stata["switchar2_sm1"], atol=1e-6)


def test_filardo_time_varying_ar4_equals_statsmodels(x64):
    """Filardo (1994): industrial production growth, switching mean, AR(4), transition
    probabilities driven by the leading indicator (statsmodels' ``TestFilardo``): history=4 with
    inputs, llf -586.5718; smoothed probabilities and expected durations against statsmodels'."""
    data = pd.read_csv(RESULTS / "mar_filardo.csv")
    y = data["dlip"].iloc[1:].to_numpy(np.float64)
    u = data["dmdlleading"].iloc[:-1].to_numpy(np.float64)
    T = len(y)
    theta = np.r_[4.35941747, -1.6493936, 1.7702123, 0.9945672, 0.517298, -0.865888,
                  np.exp(-0.362469) ** 2, 0.189474, 0.079344, 0.110944, 0.122251]  # fmt: skip
    a, b = jnp.asarray(theta[0:2]), jnp.asarray(theta[2:4])  # p[i->0] = expit(a_i + b_i u_t)
    mu, sigma, phi = jnp.asarray(theta[4:6]), np.sqrt(theta[6]), theta[7:11]

    def transition(u_t):
        stay0 = jax.nn.sigmoid(a + b * u_t)
        return jnp.stack([stay0, 1 - stay0], -1)

    def step(prev, u_t):
        s = yield tfd.Categorical(
            probs=ergodic(transition(u_t)) if not prev else transition(u_t)[prev[0].s]
        )
        if len(prev) == 4:
            ar = sum(phi[k] * (prev[k].y - mu[prev[k].s]) for k in range(4))
            y = yield tfd.Normal(mu[s] + ar, sigma)

    d = RegimeSwitching(step, T, inputs=jnp.asarray(u), history=4)
    model = sm.tsa.MarkovAutoregression(
        y, k_regimes=2, order=4, switching_ar=False, exog_tvtp=sm.add_constant(u)
    )
    result = model.smooth(theta)
    post = d.posterior(jnp.asarray(y))
    np.testing.assert_allclose(post.log_likelihood, result.llf, rtol=0, atol=1e-8)
    np.testing.assert_allclose(post.log_likelihood, -586.5718, atol=1e-4)
    np.testing.assert_allclose(
        post.marginals[4:], result.smoothed_marginal_probabilities, atol=1e-8
    )
    np.testing.assert_allclose(post.marginals[4:, 0], data["smoothed_0"].iloc[5:], atol=1e-5)
    durations = d.expected_durations(jnp.asarray(y))
    assert durations.shape == (T - 1, 2)
    np.testing.assert_allclose(durations[3:], result.expected_durations, rtol=1e-8)
    np.testing.assert_allclose(
        durations[3:], data[["duration0", "duration1"]].iloc[5:], rtol=1e-5, atol=1e-7
    )


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------


def test_second_order_chain_samples_follow_their_transitions():
    """A regime chain of order 2 (p(s_t | s_{t-1}, s_{t-2})): sampled paths' transition
    frequencies match the table (4 standard errors)."""
    table = np.array([[[0.9, 0.1], [0.4, 0.6]], [[0.7, 0.3], [0.2, 0.8]]])  # [s_{t-2}, s_{t-1}]

    def step(prev, inputs):
        if len(prev) < 2:
            probs = jnp.array([0.5, 0.5])
        else:
            probs = jnp.asarray(table, jnp.float32)[prev[1].s, prev[0].s]
        s = yield tfd.Categorical(probs=probs)
        y = yield tfd.Normal(jnp.array([-1.0, 1.0])[s], 0.1)

    d = RegimeSwitching(step, 6000, history=2)
    y, s = d.sample_with_regimes(seed=0)
    s, y = np.asarray(s), np.asarray(y)
    assert y.shape == (6000,) and s.dtype == np.int32
    np.testing.assert_allclose(y, np.array([-1.0, 1.0])[s], atol=0.6)
    for i, j in itertools.product(range(2), repeat=2):
        where = (s[:-2] == i) & (s[1:-1] == j)
        n = where.sum()
        freq = np.mean(s[2:][where] == 1)
        assert abs(freq - table[i, j, 1]) < 4 * np.sqrt(table[i, j, 1] * table[i, j, 0] / n)


def test_sampling_a_step_that_models_no_first_observation_gives_nan():
    d = hamilton_ar4(HAMILTON_AR4, 12)
    y, s = d.sample_with_regimes(seed=0)
    assert y.shape == (12,) and s.shape == (12,)
    assert np.all(np.isnan(np.asarray(y)))  # the model describes no y_0..y_3 to start from
    assert d.event_shape == (12,)


@pytest.mark.slow
def test_parallel_in_time_equals_sequential_over_expanded_states(x64):
    """The parallel-in-time kernels handle the impossible moves (``-inf``) and the unreachable
    expanded states of the first steps like the sequential ones."""
    y = jnp.asarray(np.random.default_rng(5).normal(0.5, 1.5, size=30))
    step = make_step(2, 3, 2)
    seq = RegimeSwitching(step, 30, history=3, parallel=False)
    par = RegimeSwitching(step, 30, history=3, parallel=True)
    np.testing.assert_allclose(par.log_prob(y), seq.log_prob(y), rtol=1e-10)
    np.testing.assert_allclose(
        par.posterior_marginals(y).probs, seq.posterior_marginals(y).probs, atol=1e-10
    )


@pytest.mark.slow
def test_parallel_in_time_gradients_over_expanded_states(x64):
    y = jnp.asarray(np.random.default_rng(5).normal(0.5, 1.5, size=30))
    step = make_step(2, 3, 2)
    seq = RegimeSwitching(step, 30, history=3, parallel=False)
    par = RegimeSwitching(step, 30, history=3, parallel=True)
    grad = jax.jit(jax.grad(lambda v: par.log_prob(v)))(y)
    np.testing.assert_allclose(grad, jax.jit(jax.grad(lambda v: seq.log_prob(v)))(y), rtol=1e-8)


def test_sparse_forward_filter_equals_the_dense_chain(x64):
    """``log_prob`` with history > 1 runs a forward filter over the expanded states' K
    successors; its value and gradient equal the dense K^p x K^p forward algorithm of
    MarkovChain (the one posterior and Viterbi use)."""
    from coromix.distributions import MarkovChain

    y = jnp.asarray(np.random.default_rng(7).normal(0.5, 1.5, size=30))

    def log_lik(shift, dense):
        def step(prev, inputs):
            base = jnp.zeros(2) if not prev else jnp.asarray(LOGITS[:2, :2])[prev[0].s]
            s = yield tfd.Categorical(logits=base + (0.5 * prev[-1].s if len(prev) == 3 else 0))
            if prev:
                y = yield tfd.Normal(jnp.asarray(MU[:2])[s] + shift * prev[0].y, 1.0)

        d = RegimeSwitching(step, 30, history=3)
        return MarkovChain.log_prob(d, y) if dense else d.log_prob(y)

    np.testing.assert_allclose(log_lik(0.3, False), log_lik(0.3, True), rtol=1e-12)
    grad = jax.jit(jax.grad(log_lik), static_argnums=1)
    np.testing.assert_allclose(grad(0.3, False), grad(0.3, True), rtol=1e-10)


@pytest.mark.slow  # T = 20000 in both precisions (about 13 s)
def test_float32_history_2_stays_exact_on_a_long_series():
    """The sparse filter's per-step scaling and compensated sum: float32 within 0.05 nats of
    float64 at T = 20000."""
    table = np.array([[[0.95, 0.05], [0.1, 0.9]], [[0.9, 0.1], [0.05, 0.95]]])

    def make_step(dtype):
        def step(prev, inputs):
            probs = (
                jnp.array([0.5, 0.5], dtype)
                if len(prev) < 2
                else jnp.asarray(table, dtype)[prev[1].s, prev[0].s]
            )
            s = yield tfd.Categorical(probs=probs)
            y = yield tfd.Normal(jnp.asarray([-1.0, 1.0], dtype)[s], jnp.asarray(0.8, dtype))

        return step

    T = 20_000
    y, _ = RegimeSwitching(make_step(jnp.float32), T, history=2).sample_with_regimes(seed=0)
    lp32 = float(RegimeSwitching(make_step(jnp.float32), T, history=2).log_prob(y))
    with jax.enable_x64(True):
        d64 = RegimeSwitching(make_step(jnp.float64), T, history=2)
        lp64 = float(d64.log_prob(jnp.asarray(np.asarray(y), jnp.float64)))
    print(f"float32 {lp32:.4f}, float64 {lp64:.4f}")
    assert abs(lp32 - lp64) < 0.05
