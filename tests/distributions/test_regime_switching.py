"""RegimeSwitching: one step as a coroutine, regimes summed out by the forward algorithm.

Oracles: statsmodels' MarkovRegression / MarkovAutoregression log-likelihoods and smoothed
probabilities (including time-varying transition probabilities), and brute force over all K^T paths.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.special import expit, logsumexp

import coromix.distributions as tfd
from coromix.distributions.regime_switching import RegimeSwitching

P = np.array([[0.9, 0.1], [0.2, 0.8]])
MU = np.array([-1.0, 2.0])


def simulate(T=150, seed=0):
    rng = np.random.default_rng(seed)
    s = [0]
    for _ in range(1, T):
        s.append(rng.choice(2, p=P[s[-1]]))
    return MU[np.array(s)] + rng.normal(size=T)


def steady_state(P):
    K = len(P)
    A = np.vstack([(np.eye(K) - P.T)[:-1], np.ones(K)])
    return np.linalg.solve(A, np.eye(K)[-1])


def test_switching_mean_matches_statsmodels(x64):
    y = simulate()
    params = np.array([0.9, 0.2, -1.0, 2.0, 1.3])  # p00, p10, const0, const1, sigma2
    model = sm.tsa.MarkovRegression(y, k_regimes=2)
    pi = jnp.asarray(steady_state(P))

    def step(prev, inputs):
        regime = yield tfd.Categorical(probs=pi if prev is None else jnp.asarray(P)[prev.regime])
        y = yield tfd.Normal(jnp.asarray(MU)[regime], np.sqrt(1.3))

    d = RegimeSwitching(step, len(y))
    np.testing.assert_allclose(d.log_prob(jnp.asarray(y)), model.loglike(params), rtol=1e-10)
    smoothed = model.smooth(params).smoothed_marginal_probabilities
    np.testing.assert_allclose(d.posterior_marginals(jnp.asarray(y)).probs, smoothed, atol=1e-8)


def test_hamilton_ar1_matches_statsmodels(x64):
    y = simulate(seed=1)
    phi = np.array([0.5, -0.3])
    params = np.array([0.9, 0.2, -1.0, 2.0, 1.0, *phi])
    model = sm.tsa.MarkovAutoregression(y, k_regimes=2, order=1)
    pi = jnp.asarray(steady_state(P))

    def step(prev, inputs):
        s = yield tfd.Categorical(probs=pi if prev is None else jnp.asarray(P)[prev.s])
        if prev is None:  # statsmodels conditions on the first observation: a flat placeholder
            y = yield tfd.Normal(0.0, 1.0)
        else:
            y = yield tfd.Normal(MU[s] + phi[s] * (prev.y - MU[prev.s]), 1.0)

    d = RegimeSwitching(step, len(y))
    placeholder = stats.norm.logpdf(y[0])
    np.testing.assert_allclose(
        d.log_prob(jnp.asarray(y)) - placeholder, model.loglike(params), rtol=1e-10
    )


def test_time_varying_transitions_match_statsmodels_exog_tvtp(x64):
    rng = np.random.default_rng(2)
    T = 120
    u = rng.normal(size=T)
    y = simulate(T, seed=2)
    exog_tvtp = np.column_stack([np.ones(T), u])
    model = sm.tsa.MarkovRegression(y, k_regimes=2, exog_tvtp=exog_tvtp)
    # params: p[0->0].tvtp0, p[1->0].tvtp0, p[0->0].tvtp1, p[1->0].tvtp1, const0, const1, sigma2
    a0, b0, a1, b1 = 1.5, 0.8, -1.0, 0.5
    params = np.array([a0, a1, b0, b1, -1.0, 2.0, 1.0])
    ll = model.loglike(params)
    # statsmodels: p(s_t = 0 | s_{t-1} = i) = expit(a_i + b_i u_t) with exog at t; first regime
    # from the steady state of the t = 0 matrix
    P0 = np.array(
        [
            [expit(a0 + b0 * u[0]), 1 - expit(a0 + b0 * u[0])],
            [expit(a1 + b1 * u[0]), 1 - expit(a1 + b1 * u[0])],
        ]
    )
    pi = jnp.asarray(steady_state(P0))

    def step(prev, u_t):
        stay = jax.nn.sigmoid(jnp.array([a0 + b0 * u_t, a1 + b1 * u_t]))
        if prev is None:
            probs = pi
        else:
            probs = jnp.stack([stay[prev.s], 1 - stay[prev.s]])
        s = yield tfd.Categorical(probs=probs)
        y = yield tfd.Normal(jnp.asarray(MU)[s], 1.0)

    d = RegimeSwitching(step, T, inputs=jnp.asarray(u))
    np.testing.assert_allclose(d.log_prob(jnp.asarray(y)), ll, rtol=1e-10)


def test_brute_force_paths_and_mode(x64):
    T, K = 6, 3
    rng = np.random.default_rng(3)
    y = rng.normal(size=T)
    logits = rng.normal(size=(K, K))
    mu = np.array([-1.0, 0.0, 1.5])

    def step(prev, inputs):
        # selection depends on the previous regime AND the previous observation
        base = jnp.zeros(K) if prev is None else jnp.asarray(logits)[prev.s] + 0.3 * prev.y
        s = yield tfd.Categorical(logits=base)
        y = yield tfd.Normal(mu[s], 0.8)

    d = RegimeSwitching(step, T)

    def log_joint(path):
        total = 0.0
        for t, s in enumerate(path):
            base = np.zeros(K) if t == 0 else logits[path[t - 1]] + 0.3 * y[t - 1]
            total += base[s] - logsumexp(base) + stats.norm.logpdf(y[t], mu[s], 0.8)
        return total

    paths = list(itertools.product(range(K), repeat=T))
    joint = np.array([log_joint(p) for p in paths])
    np.testing.assert_allclose(d.log_prob(jnp.asarray(y)), logsumexp(joint), rtol=1e-10)
    weights = np.exp(joint - logsumexp(joint))
    marginals = np.zeros((T, K))
    for w, p in zip(weights, paths):
        marginals[np.arange(T), p] += w
    np.testing.assert_allclose(d.posterior_marginals(jnp.asarray(y)).probs, marginals, atol=1e-10)
    np.testing.assert_array_equal(d.posterior_mode(jnp.asarray(y)), paths[int(np.argmax(joint))])


def test_seed_second_model_as_one_joint_model():
    """Selection probabilities from the previous observation, with priors, as ONE joint model."""
    T = 60

    def model():
        mu1 = yield tfd.Normal(loc=0.0, scale=1.0)
        mu2 = yield tfd.Normal(loc=5.0, scale=1.0)
        sigma = yield tfd.HalfNormal(scale=2.0)

        def step(prev, inputs):
            x = 0.0 if prev is None else prev.observed_data
            component_selection = yield tfd.Categorical(logits=jnp.stack([x, -x]))
            if component_selection == 0:
                observed_data = yield tfd.Normal(loc=mu1, scale=sigma)
            else:
                observed_data = yield tfd.Normal(loc=mu2, scale=sigma)

        series = yield tfd.RegimeSwitching(step, num_steps=T)

    jd = tfd.JointDistributionCoroutine(model)
    draws = jd.sample(3, seed=0)
    assert draws.series.shape == (3, T)
    lp = jd.log_prob(draws)
    assert lp.shape == (3,) and np.all(np.isfinite(lp))
    posterior = jd.pin(series=draws.series[0])
    assert list(posterior.parameter_shapes) == ["mu1", "mu2", "sigma"]
    # compiled: op by op, the gradient takes about 4 times as long
    grad = jax.jit(jax.grad(posterior.unconstrained_log_prob))(posterior.init(seed=0))
    assert all(np.isfinite(g) for g in grad.values())


def test_sampled_regimes_follow_the_chain():
    def step(prev, inputs):
        s = yield tfd.Categorical(
            probs=jnp.array([0.5, 0.5]) if prev is None else jnp.asarray(P, jnp.float32)[prev.s]
        )
        y = yield tfd.Normal(jnp.asarray(MU, jnp.float32)[s], 0.1)

    d = RegimeSwitching(step, 4000)
    y, s = d.sample_with_regimes(seed=0)
    s, y = np.asarray(s), np.asarray(y)
    np.testing.assert_allclose(y, MU[s], atol=0.6)
    stay0 = np.mean(s[1:][s[:-1] == 0] == 0)
    n0 = np.sum(s[:-1] == 0)
    assert abs(stay0 - 0.9) < 4 * np.sqrt(0.09 / n0)


def test_joint_model_reports_regime_posterior(x64):
    y = simulate(T=80, seed=5)
    pi = jnp.asarray(steady_state(P))

    def model():
        mu = yield tfd.Normal(jnp.zeros(2), 5.0)

        def step(prev, inputs):
            regime = yield tfd.Categorical(
                probs=pi if prev is None else jnp.asarray(P)[prev.regime]
            )
            obs = yield tfd.Normal(mu[regime], 1.0)

        y = yield tfd.RegimeSwitching(step, num_steps=80)

    jd = tfd.JointDistributionCoroutine(model)
    post = jd.discrete_posterior(mu=jnp.asarray(MU), y=jnp.asarray(y))
    assert list(post) == ["y_regime"]
    params = np.array([0.9, 0.2, -1.0, 2.0, 1.0])
    smoothed = (
        sm.tsa.MarkovRegression(y, k_regimes=2).smooth(params).smoothed_marginal_probabilities
    )
    np.testing.assert_allclose(post.y_regime, smoothed, atol=1e-8)
    draws = jd.sample_discrete(
        mu=jnp.broadcast_to(jnp.asarray(MU), (500, 2)),
        y=jnp.broadcast_to(jnp.asarray(y), (500, 80)),
        seed=0,
    )
    assert draws.y_regime.shape == (500, 80)
    freq = np.mean(np.asarray(draws.y_regime) == 1, axis=0)
    se = np.sqrt(smoothed[:, 1] * (1 - smoothed[:, 1]) / 500)
    assert np.all(np.abs(freq - smoothed[:, 1]) < 4 * se + 0.01)


def test_input_driven_switching_on_posteriordb_data(x64):
    import json
    from pathlib import Path

    path = (
        Path(__file__).resolve().parents[2]
        / ".."
        / "shared"
        / "data"
        / "posteriordb"
        / "iohmm_reg_simulated.data.json"
    )
    if not path.exists():
        pytest.skip(f"posteriordb data not found at {path}")
    data = json.loads(path.read_text())
    u, y = np.asarray(data["u"]), np.asarray(data["y"])
    rng = np.random.default_rng(6)
    w, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    sigma = np.array([0.5, 1.0, 2.0])

    def step(prev, u_t):
        regime = yield tfd.Categorical(logits=jnp.asarray(w) @ u_t)
        obs = yield tfd.Normal(jnp.asarray(b)[regime] @ u_t, jnp.asarray(sigma)[regime])

    d = RegimeSwitching(step, len(y), inputs=jnp.asarray(u))
    logits = u @ w.T
    per = (
        logits
        - logsumexp(logits, axis=1, keepdims=True)
        + stats.norm.logpdf(y[:, None], u @ b.T, sigma)
    )
    np.testing.assert_allclose(d.log_prob(jnp.asarray(y)), logsumexp(per, axis=1).sum(), rtol=1e-10)


def long_series_step(prev, inputs):
    probs = (
        jnp.full(3, 1 / 3)
        if prev is None
        else jnp.array([[0.95, 0.03, 0.02], [0.04, 0.9, 0.06], [0.05, 0.05, 0.9]])[prev.s]
    )
    s = yield tfd.Categorical(probs=probs)
    y = yield tfd.Normal(jnp.array([-2.0, 0.0, 3.0])[s], jnp.array([1.0, 0.5, 1.5])[s])


def float32_error(T, parallel=False):
    d32 = RegimeSwitching(long_series_step, T, parallel=parallel)
    y, _ = d32.sample_with_regimes(seed=0)
    lp32 = float(jax.jit(d32.log_prob)(y))
    with jax.enable_x64(True):
        lp64 = float(RegimeSwitching(long_series_step, T).log_prob(jnp.asarray(y, jnp.float64)))
    return abs(lp32 - lp64)


def test_float32_stays_exact_on_a_long_series():
    assert float32_error(100_000) < 0.05


@pytest.mark.slow
def test_float32_at_a_million_steps():
    assert float32_error(1_000_000) < 0.5


def test_parallel_in_time_equals_sequential(x64):
    y = jnp.asarray(simulate(T=300, seed=7))
    pi = jnp.asarray(steady_state(P))

    def step(prev, inputs):
        s = yield tfd.Categorical(probs=pi if prev is None else jnp.asarray(P)[prev.s])
        obs = yield tfd.Normal(jnp.asarray(MU)[s], 1.0)

    seq, par = RegimeSwitching(step, 300, parallel=False), RegimeSwitching(step, 300, parallel=True)
    np.testing.assert_allclose(par.log_prob(y), seq.log_prob(y), rtol=1e-10)
    np.testing.assert_allclose(
        par.posterior_marginals(y).probs, seq.posterior_marginals(y).probs, atol=1e-10
    )


def seed_step(mu1=0.0, mu2=5.0, sigma=1.0):
    """The seed's second model as one step: probabilities softmax([x_prev, -x_prev])."""

    def step(prev, inputs):
        x = 0.0 if prev is None else prev.observed_data
        component_selection = yield tfd.Categorical(logits=jnp.stack([x, -x]))
        if component_selection == 0:
            observed_data = yield tfd.Normal(loc=mu1, scale=sigma)
        else:
            observed_data = yield tfd.Normal(loc=mu2, scale=sigma)

    return step


def test_seed_second_model_log_prob_equals_brute_force(x64):
    T = 7
    y = np.random.default_rng(8).normal(2.0, 2.5, size=T)
    d = RegimeSwitching(seed_step(0.0, 5.0, 1.0), T)
    total = []
    for path in itertools.product(range(2), repeat=T):
        lp = 0.0
        for t, k in enumerate(path):
            x = 0.0 if t == 0 else y[t - 1]
            logits = np.array([x, -x])
            lp += logits[k] - logsumexp(logits) + stats.norm.logpdf(y[t], (0.0, 5.0)[k], 1.0)
        total.append(lp)
    np.testing.assert_allclose(d.log_prob(jnp.asarray(y)), logsumexp(total), rtol=1e-10)


def test_seed_second_model_sample_matches_direct_simulation():
    """Regime frequencies per step agree with the seed's own step-by-step simulation."""
    T, n = 12, 3000
    d = RegimeSwitching(seed_step(0.0, 5.0, 1.0), T)
    _, regimes = jax.vmap(lambda k: d.sample_with_regimes(seed=k))(
        jax.random.split(jax.random.key(0), n)
    )
    ours = np.mean(np.asarray(regimes) == 0, axis=0)
    rng = np.random.default_rng(0)
    direct = np.zeros((n, T), int)
    x = np.zeros(n)
    for t in range(T):
        p0 = 1 / (1 + np.exp(-2 * x))  # softmax([x, -x])[0]
        direct[:, t] = (rng.random(n) >= p0).astype(int)
        x = np.where(direct[:, t] == 0, 0.0, 5.0) + rng.normal(size=n)
    theirs = np.mean(direct == 0, axis=0)
    se = np.sqrt(theirs * (1 - theirs) / n * 2)
    assert np.all(np.abs(ours - theirs) < 4 * se + 1e-3), (ours, theirs)
