"""RegimeSwitching.forecast and expected_durations.

Oracles: statsmodels' filtered probabilities at the last step propagated by numpy through the
transition matrix (1e-6 float64); brute force over regime paths for a second-order chain;
statsmodels' expected durations; and the coverage of 90% predictive intervals over simulated
series with the parameters at their true values.
"""

import importlib
import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

import coromix.distributions as tfd
from coromix.distributions import Forecast
from coromix.distributions.regime_switching import RegimeSwitching

with warnings.catch_warnings():
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    SM = importlib.import_module(
        "statsmodels.tsa.regime_switching.tests.test_markov_autoregression"
    )
RGNP = np.asarray(SM.rgnp, np.float64)

P = np.array([[0.85, 0.15], [0.45, 0.55]])
MU = np.array([1.0, -0.5])


def ergodic(P):
    K = P.shape[-1]
    A = jnp.concatenate([(jnp.eye(K) - P.T)[:-1], jnp.ones((1, K))])
    return jnp.linalg.solve(A, jnp.eye(K)[-1])


def ms_ar1(phi=0.3, sigma=0.8):
    """statsmodels' MarkovAutoregression(order=1): transitions free of the observations."""
    pi = ergodic(jnp.asarray(P))

    def step(prev, inputs):
        s = yield tfd.Categorical(probs=pi if prev is None else jnp.asarray(P)[prev.s])
        if prev is not None:
            y = yield tfd.Normal(MU[s] + phi * (prev.y - MU[prev.s]), sigma)

    return step


def test_forecast_probs_equal_statsmodels_filtered_times_powers_of_p(x64):
    """probs[h-1] = filtered(T) @ P^h with statsmodels' filtered probabilities (1e-6)."""
    h = 8
    model = sm.tsa.MarkovAutoregression(RGNP, k_regimes=2, order=1, switching_ar=False)
    theta = np.r_[P[0, 0], P[1, 0], MU, 0.8**2, 0.3]
    filtered = model.filter(theta).filtered_marginal_probabilities[-1]
    expected = np.stack([filtered @ np.linalg.matrix_power(P, j) for j in range(1, h + 1)])
    d = RegimeSwitching(ms_ar1(), len(RGNP))
    f = d.forecast(jnp.asarray(RGNP), h, seed=0)
    assert isinstance(f, Forecast)
    assert f.probs.shape == (h, 2) and f.regimes.shape == (h,) and f.regimes.dtype == jnp.int32
    assert f.observations.shape == (h,)
    np.testing.assert_allclose(f.probs, expected, rtol=0, atol=1e-6)
    # vmapped over keys: the draws' regime frequencies are the probabilities
    n = 4000
    many = jax.vmap(lambda k: d.forecast(jnp.asarray(RGNP), h, seed=k))(
        jax.random.split(jax.random.key(1), n)
    )
    np.testing.assert_allclose(many.probs, np.broadcast_to(expected, (n, h, 2)), atol=1e-6)
    freq = np.mean(np.asarray(many.regimes) == 1, axis=0)
    se = np.sqrt(expected[:, 1] * (1 - expected[:, 1]) / n)
    assert np.all(np.abs(freq - expected[:, 1]) < 5 * se)
    assert np.all(np.isfinite(np.asarray(many.observations)))


def second_order_step(table):
    def step(prev, inputs):
        if len(prev) < 2:
            probs = jnp.array([0.6, 0.4])
        else:
            probs = jnp.asarray(table)[prev[1].s, prev[0].s]
        s = yield tfd.Categorical(probs=probs)
        y = yield tfd.Normal(jnp.array([-1.0, 1.0])[s], 1.0)

    return step


def test_second_order_forecast_probs_equal_brute_force(x64):
    """history=2: the joint filtered distribution of (s_T, s_{T-1}) by brute force over paths,
    pushed through the second-order transitions by numpy, marginal of s_{T+h}."""
    table = np.array([[[0.9, 0.1], [0.4, 0.6]], [[0.7, 0.3], [0.2, 0.8]]])  # [s_{t-2}, s_{t-1}]
    T, h = 8, 5
    y = np.random.default_rng(0).normal(size=T)
    d = RegimeSwitching(second_order_step(table), T, history=2)
    weights = np.zeros((2, 2))  # [s_T, s_{T-1}]
    for path in itertools.product(range(2), repeat=T):
        lp = 0.0
        for t, s in enumerate(path):
            probs = np.array([0.6, 0.4]) if t < 2 else table[path[t - 2], path[t - 1]]
            lp += np.log(probs[s]) + stats.norm.logpdf(y[t], [-1.0, 1.0][s], 1.0)
        weights[path[-1], path[-2]] += np.exp(lp)
    joint = weights / weights.sum()
    expected = []
    for _ in range(h):
        new = np.zeros((2, 2))  # [s_{t+1}, s_t]
        for a, b in itertools.product(range(2), repeat=2):  # a = s_t, b = s_{t-1}
            new[:, a] += joint[a, b] * table[b, a]
        joint = new
        expected.append(joint.sum(1))
    f = d.forecast(jnp.asarray(y), h, seed=3)
    np.testing.assert_allclose(f.probs, np.array(expected), atol=1e-10)


def input_driven_step(phi=0.5, sigma=0.7):
    """MS-AR(1) whose staying probabilities follow a covariate."""

    def step(prev, u_t):
        stay = jax.nn.sigmoid(jnp.array([2.0, 1.0]) + jnp.array([1.0, -1.5]) * u_t)
        if prev is None:
            probs = jnp.array([0.5, 0.5])
        else:
            probs = jnp.where(
                prev.s == 0, jnp.stack([stay[0], 1 - stay[0]]), jnp.stack([1 - stay[1], stay[1]])
            )
        s = yield tfd.Categorical(probs=probs)
        mu = jnp.array([1.0, -1.0])
        mean = mu[s] if prev is None else mu[s] + phi * (prev.y - mu[prev.s])
        y = yield tfd.Normal(mean, sigma)

    return step


def test_forecast_needs_future_inputs_when_the_step_reads_them():
    T = 10
    u = jnp.linspace(-1.0, 1.0, T)
    d = RegimeSwitching(input_driven_step(), T, inputs=u)
    y = d.sample(seed=0)
    with pytest.raises(ValueError, match=r"inputs=.*3 future steps"):
        d.forecast(y, 3, seed=0)
    with pytest.raises(ValueError, match=r"leading dim num_steps=3"):
        d.forecast(y, 3, inputs=jnp.zeros(4), seed=0)
    f = d.forecast(y, 3, inputs=jnp.zeros(3), seed=0)
    np.testing.assert_allclose(jnp.sum(f.probs, -1), 1.0, rtol=1e-6)
    plain = RegimeSwitching(ms_ar1(), T)
    with pytest.raises(ValueError, match="no inputs"):
        plain.forecast(jnp.zeros(T), 2, inputs=jnp.zeros(2))


def test_forecast_under_vmap_over_parameters(x64):
    """The results layer maps forecast over posterior draws: vmapped over the AR coefficient
    and keys it equals the loop over them."""
    y = jnp.asarray(RGNP[:60])

    def one(phi, key):
        return RegimeSwitching(ms_ar1(phi=phi), 60).forecast(y, 4, seed=key)

    phis = jnp.array([0.1, 0.3, 0.6])
    keys = jax.random.split(jax.random.key(0), 3)
    mapped = jax.jit(jax.vmap(one))(phis, keys)
    for i in range(3):
        single = one(phis[i], keys[i])
        np.testing.assert_allclose(mapped.probs[i], single.probs, atol=1e-12)
        np.testing.assert_array_equal(mapped.regimes[i], single.regimes)
        np.testing.assert_allclose(mapped.observations[i], single.observations, atol=1e-12)


def test_expected_durations_equal_statsmodels_tvtp(x64):
    """Hamilton's GNP MS-AR(1) with transitions driven by a recession indicator (statsmodels'
    ``TestHamiltonAR1SwitchTVTP``): durations per step equal statsmodels' (and its published
    ones), and 1/(1 - p_ii) for a constant transition matrix."""
    rec = np.asarray(SM.rec, np.float64)
    theta = np.r_[6.564923, 7.846371, -8.064123, -15.37636, 1.027190, -0.719760,
                  np.exp(-0.217003) ** 2, 0.161489, 0.022536]  # fmt: skip
    a, b = jnp.asarray(theta[0:2]), jnp.asarray(theta[2:4])
    mu, sigma, phi = jnp.asarray(theta[4:6]), np.sqrt(theta[6]), jnp.asarray(theta[7:9])

    def transition(u_t):
        stay0 = jax.nn.sigmoid(a + b * u_t)  # p[i->0]
        return jnp.stack([stay0, 1 - stay0], -1)

    def step(prev, u_t):
        P_t = transition(u_t)
        s = yield tfd.Categorical(probs=ergodic(P_t) if prev is None else P_t[prev.s])
        if prev is not None:
            y = yield tfd.Normal(mu[s] + phi[s] * (prev.y - mu[prev.s]), sigma)

    d = RegimeSwitching(step, len(RGNP), inputs=jnp.asarray(rec))
    model = sm.tsa.MarkovAutoregression(
        RGNP, k_regimes=2, order=1, exog_tvtp=np.c_[np.ones(len(RGNP)), rec]
    )
    result = model.smooth(theta)
    np.testing.assert_allclose(d.log_prob(jnp.asarray(RGNP)), result.llf, atol=1e-8)
    durations = d.expected_durations(jnp.asarray(RGNP))
    np.testing.assert_allclose(durations, result.expected_durations, rtol=1e-8)
    np.testing.assert_allclose(durations, SM.expected_durations, rtol=1e-5, atol=1e-7)

    constant = RegimeSwitching(ms_ar1(), 20).expected_durations(jnp.zeros(20))
    np.testing.assert_allclose(constant, np.broadcast_to(1 / (1 - np.diag(P)), (19, 2)))


def coverage(num_series, num_draws=199, T=40, h=4, seed=0):
    """Fraction of simulated futures inside the 90% predictive intervals, per horizon: each of
    ``num_series`` series is simulated for T + h steps; from its first T the forecast draws
    ``num_draws`` paths, and the interval is their 10th to 190th order statistics (of 199),
    which holds the realized value with probability 180/200 = 0.9 exactly."""
    rng = np.random.default_rng(seed)
    u = jnp.asarray(rng.normal(size=(num_series, T + h)))
    step = input_driven_step()
    series = RegimeSwitching(step, T + h, inputs=u).sample(seed=seed)  # a panel of series

    def forecast(y, u_i, keys):
        d = RegimeSwitching(step, T, inputs=u_i[:T])
        return jax.vmap(lambda k: d.forecast(y[:T], h, inputs=u_i[T:], seed=k).observations)(keys)

    keys = jax.random.split(jax.random.key(seed + 1), (num_series, num_draws))
    draws = jax.jit(jax.vmap(forecast))(series, u, keys)  # [series, draw, h]
    draws = np.sort(np.asarray(draws), axis=1)
    lo, hi = draws[:, 9], draws[:, 189]
    future = np.asarray(series[:, T:])
    return np.mean((lo <= future) & (future <= hi), axis=0)


@pytest.mark.slow
def test_predictive_intervals_cover_90_percent_of_simulated_futures(x64):
    """2000 series of an MS-AR(1) with input-driven transitions, parameters at their true
    values: the 90% intervals cover the realized future 88-92% at every horizon 1..4."""
    covered = coverage(2000)
    print("coverage per horizon:", covered)
    assert np.all((covered >= 0.88) & (covered <= 0.92)), covered


def test_forecast_of_several_observations_per_step(x64):
    """A step yielding two observations: ``observations`` is a mapping name -> ``[h]``; with the
    second regime's mean far away, the drawn observations follow the drawn regimes."""

    def step(prev, inputs):
        s = yield tfd.Categorical(
            probs=jnp.array([0.5, 0.5]) if not prev else jnp.asarray(P)[prev[0].s]
        )
        a = yield tfd.Normal(jnp.array([0.0, 100.0])[s], 1.0)
        b = yield tfd.Normal(0.5 * a, 1.0)

    d = RegimeSwitching(step, 5, history=2)
    value, regimes = d.sample_with_regimes(seed=0)
    assert set(value) == {"a", "b"} and value["a"].shape == (5,)
    f = d.forecast(value, 3, seed=1)
    assert set(f.observations) == {"a", "b"} and f.observations["b"].shape == (3,)
    np.testing.assert_allclose(f.observations["a"], 100.0 * np.asarray(f.regimes), atol=6.0)
    filtered = np.eye(2)[int(regimes[-1])]  # the last regime is certain from its observation
    expected = np.stack([filtered @ np.linalg.matrix_power(P, j) for j in range(1, 4)])
    np.testing.assert_allclose(f.probs, expected, atol=1e-10)
