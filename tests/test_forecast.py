"""``Posterior.forecast``: regime probabilities and predictive draws past the data, per draw.

Posteriors are built from given draws (no NUTS).  References, computed here with NumPy from each
draw's parameters: the forward filter's probabilities at the last step carried forward by the
transition matrices (``filtered_T @ A^h`` for an HMM), and predictive paths simulated by ancestral
sampling from the filtered probabilities.
"""

import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import coromix as cm
from coromix.cli import demo
from coromix.results import Posterior

tfd = cm.distributions

T, K, H = 30, 3, 5
INIT = np.array([0.5, 0.3, 0.2])
SIGMA = 0.8


def hmm_model():
    trans = yield tfd.Dirichlet(jnp.ones((K, K)) + 4.0 * jnp.eye(K))
    mu = yield tfd.Normal(jnp.array([-2.0, 0.0, 2.0]), 1.0)
    y = yield tfd.HiddenMarkovModel(
        tfd.Categorical(probs=jnp.asarray(INIT)),
        tfd.Categorical(probs=trans),
        tfd.Normal(mu, SIGMA),
        num_steps=T,
    )


def filtered_last(init, trans, log_obs):
    """``p(s_T | y_{1:T})`` by the normalized forward recursion; ``trans`` ``(K, K)``, or
    ``(T, K, K)`` with entry ``t`` the move into step ``t``."""
    trans = np.broadcast_to(trans, (len(log_obs),) + np.shape(trans)[-2:])
    alpha = init * np.exp(log_obs[0] - log_obs[0].max())
    alpha /= alpha.sum()
    for t in range(1, len(log_obs)):
        alpha = (alpha @ trans[t]) * np.exp(log_obs[t] - log_obs[t].max())
        alpha /= alpha.sum()
    return alpha


def hmm_draws(rng, chains, draws):
    trans = np.stack(
        [rng.dirichlet(np.ones(K) + 4.0 * np.eye(K)[k], size=(chains, draws)) for k in range(K)],
        axis=2,
    )
    mu = np.array([-2.0, 0.0, 2.0]) + 0.3 * rng.normal(size=(chains, draws, K))
    return {"trans": trans, "mu": mu}


def hmm_reference(draw, y, h):
    """``filtered_T @ A^j``, ``j = 1..h``, for one draw's parameters."""
    A = draw["trans"]
    log_obs = stats.norm(draw["mu"], SIGMA).logpdf(y[:, None])
    alpha = filtered_last(INIT, A, log_obs)
    return alpha, np.stack([alpha @ np.linalg.matrix_power(A, j) for j in range(1, h + 1)])


@pytest.fixture(scope="module")
def hmm_case():
    rng = np.random.default_rng(12)
    draws = hmm_draws(rng, 2, 3)
    path = [0]
    for _ in range(T - 1):
        path.append(rng.choice(K, p=draws["trans"][0, 0][path[-1]]))
    y = draws["mu"][0, 0][path] + SIGMA * rng.normal(size=T)
    return draws, y


def test_hmm_probs_equal_filtered_times_transition_powers(hmm_case, precision):
    draws, y = hmm_case
    post = Posterior(draws, observed={"y": y}, model=tfd.JointDistributionCoroutine(hmm_model))
    ahead = post.forecast(H, seed=3)
    assert list(ahead) == ["y_states", "y"]
    assert ahead["y_states"].shape == (2, 3, H, K)
    assert ahead["y"].shape == (2, 3, H)
    assert ahead["y_states"].dtype == np.dtype(precision)
    tol = 1e-6 if precision == "float64" else 1e-4
    for c in range(2):
        for d in range(3):
            _, ref = hmm_reference({k: v[c, d] for k, v in draws.items()}, y, H)
            np.testing.assert_allclose(ahead["y_states"][c, d], ref, atol=tol, rtol=0)
    # the same key as the discrete posterior's, whose last row is the filtered one at T
    smoothed = post.discrete_posterior()["y_states"][:, :, -1]
    A = draws["trans"]
    np.testing.assert_allclose(
        ahead["y_states"][:, :, 0], np.einsum("cdi,cdij->cdj", smoothed, A), atol=tol, rtol=0
    )


def test_hmm_predictive_mean_matches_numpy_simulation(hmm_case, x64):
    """Each of 1200 draws gives one predictive path; their mean per step against 20 NumPy paths
    per draw (ancestral sampling from the filtered probabilities), within 5 standard errors."""
    _, y = hmm_case
    rng = np.random.default_rng(5)
    draws = hmm_draws(rng, 2, 600)
    post = Posterior(draws, observed={"y": y}, model=tfd.JointDistributionCoroutine(hmm_model))
    got = post.forecast(H, seed=11)["y"].reshape(-1, H)
    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in draws.items()}
    sims = []
    for i in range(len(got)):
        draw = {k: v[i] for k, v in flat.items()}
        alpha, _ = hmm_reference(draw, y, H)
        s = rng.choice(K, p=alpha, size=20)
        path = []
        for _ in range(H):
            u = rng.random(size=20)[:, None]
            s = (u > np.cumsum(draw["trans"][s], axis=-1)).sum(-1)
            path.append(draw["mu"][s] + SIGMA * rng.normal(size=20))
        sims.append(np.stack(path, -1))
    sims = np.concatenate(sims)
    se = np.sqrt(got.var(0) / len(got) + sims.var(0) / len(sims))
    z = (got.mean(0) - sims.mean(0)) / se
    assert np.all(np.abs(z) < 5), z
    # and the spread: the predictive variance within 15% (about 5 standard errors at n = 1200)
    np.testing.assert_allclose(got.var(0), sims.var(0), rtol=0.15)


# --- a regime step whose transitions read inputs ----------------------------------------------

T_RS = 25


def input_model(x):
    def model():
        beta = yield tfd.Normal(jnp.zeros(2), 1.0)
        mu = yield tfd.Normal(jnp.array([-1.0, 1.0]), 1.0)

        def step(prev, inputs):
            if prev is None:
                s = yield tfd.Categorical(probs=jnp.array([0.5, 0.5]))
            else:
                stay = 1.0 / (1.0 + jnp.exp(-(1.5 + beta[prev.s] * inputs)))
                if prev.s == 0:
                    s = yield tfd.Categorical(probs=jnp.stack([stay, 1.0 - stay]))
                else:
                    s = yield tfd.Categorical(probs=jnp.stack([1.0 - stay, stay]))
            y = yield tfd.Normal(mu[s], 1.0)

        y = yield tfd.RegimeSwitching(step, num_steps=T_RS, inputs=jnp.asarray(x))

    return model


def input_transition(beta, x):
    stay = 1.0 / (1.0 + np.exp(-(1.5 + beta * x)))  # per previous regime
    return np.array([[stay[0], 1 - stay[0]], [1 - stay[1], stay[1]]])


def input_transitions(beta, x):
    return np.stack([input_transition(beta, x_t) for x_t in x])


@pytest.fixture
def input_case():
    rng = np.random.default_rng(7)
    x = rng.normal(size=T_RS)
    y = np.where(np.arange(T_RS) % 10 < 6, -1.0, 1.0) + rng.normal(size=T_RS)
    draws = {
        "beta": rng.normal(size=(1, 4, 2)),
        "mu": np.array([-1.0, 1.0]) + 0.2 * rng.normal(size=(1, 4, 2)),
    }
    future = rng.normal(size=H)
    return x, y, draws, future


def test_missing_inputs_error_names_the_site(input_case):
    x, y, draws, future = input_case
    jd = tfd.JointDistributionCoroutine(input_model(x))
    post = Posterior(draws, observed={"y": y}, model=jd)
    with pytest.raises(ValueError, match=r"regime site 'y'.*inputs="):
        post.forecast(H)
    with pytest.raises(ValueError, match=r"'y'.*leading dim num_steps=5.*\(3,\)"):
        post.forecast(H, inputs=future[:3])


def test_input_driven_probs_equal_numpy(input_case, x64):
    """``p(s_{T+j})``: the filtered probabilities at ``T`` carried through ``P(x_{T+1})``, ...,
    ``P(x_{T+j})`` with the future inputs."""
    x, y, draws, future = input_case
    jd = tfd.JointDistributionCoroutine(input_model(x))
    post = Posterior(draws, observed={"y": y}, model=jd)
    ahead = post.forecast(H, inputs={"y": future}, seed=2)  # or inputs=future: one regime site
    assert ahead["y_s"].shape == (1, 4, H, 2) and ahead["y"].shape == (1, 4, H)
    for d in range(4):
        beta, mu = draws["beta"][0, d], draws["mu"][0, d]
        log_obs = stats.norm(mu, 1.0).logpdf(y[:, None])
        p = filtered_last(np.array([0.5, 0.5]), input_transitions(beta, x), log_obs)
        ref = []
        for j in range(H):
            p = p @ input_transition(beta, future[j])
            ref.append(p)
        np.testing.assert_allclose(ahead["y_s"][0, d], np.array(ref), atol=1e-6, rtol=0)


def test_input_driven_predictive_mean_matches_numpy_simulation(input_case, x64):
    x, y, _, future = input_case
    rng = np.random.default_rng(9)
    draws = {
        "beta": rng.normal(size=(1, 1000, 2)),
        "mu": np.array([-1.0, 1.0]) + 0.2 * rng.normal(size=(1, 1000, 2)),
    }
    post = Posterior(draws, observed={"y": y}, model=tfd.JointDistributionCoroutine(input_model(x)))
    got = post.forecast(H, inputs=future, seed=4)["y"][0]
    sims = []
    for d in range(got.shape[0]):
        beta, mu = draws["beta"][0, d], draws["mu"][0, d]
        log_obs = stats.norm(mu, 1.0).logpdf(y[:, None])
        p = filtered_last(np.array([0.5, 0.5]), input_transitions(beta, x), log_obs)
        s = rng.choice(2, p=p, size=20)
        path = []
        for j in range(H):
            stay_prob = input_transition(beta, future[j])[s, s]
            s = np.where(rng.random(size=20) < stay_prob, s, 1 - s)
            path.append(mu[s] + rng.normal(size=20))
        sims.append(np.stack(path, -1))
    sims = np.concatenate(sims)
    se = np.sqrt(got.var(0) / len(got) + sims.var(0) / len(sims))
    z = (got.mean(0) - sims.mean(0)) / se
    assert np.all(np.abs(z) < 5), z


# --- Hamilton's switching-mean AR(2), written with history=2 -------------------------------------

T_AR, P_AR, SIGMA_AR = 8, np.array([[0.8, 0.2], [0.3, 0.7]]), 0.5


def ar2_model():
    mu = yield tfd.Normal(jnp.array([-1.0, 1.0]), 1.0)
    phi = yield tfd.Normal(jnp.zeros(2), 0.3)

    def step(prev, inputs):
        probs = jnp.array([0.5, 0.5]) if not prev else jnp.asarray(P_AR)[prev[0].s]
        s = yield tfd.Categorical(probs=probs)
        if len(prev) == 2:  # the first two steps' observations are conditioned on
            ar = phi[0] * (prev[0].y - mu[prev[0].s]) + phi[1] * (prev[1].y - mu[prev[1].s])
            y = yield tfd.Normal(mu[s] + ar, SIGMA_AR)

    y = yield tfd.RegimeSwitching(step, num_steps=T_AR, history=2)


def ar2_last_two(mu, phi, y):
    """``p(s_{T-1}, s_T | y)`` ``[K, K]`` by brute force over all ``2^T`` regime paths."""
    paths = np.array(list(itertools.product(range(2), repeat=T_AR)))
    logw = np.log(0.5) + np.log(P_AR[paths[:, :-1], paths[:, 1:]]).sum(1)
    for t in range(2, T_AR):
        s, s1, s2 = paths[:, t], paths[:, t - 1], paths[:, t - 2]
        mean = mu[s] + phi[0] * (y[t - 1] - mu[s1]) + phi[1] * (y[t - 2] - mu[s2])
        logw = logw + stats.norm(mean, SIGMA_AR).logpdf(y[t])
    w = np.exp(logw - logw.max())
    joint = np.zeros((2, 2))
    np.add.at(joint, (paths[:, -2], paths[:, -1]), w)
    return joint / joint.sum()


def test_history_two_forecast_equals_brute_force(x64):
    """A mean-adjusted MS-AR(2): regime probabilities equal p(s_T | y) @ P^h from all 2^T paths
    (1e-10), and the predictive mean per step matches NumPy paths drawn from the brute-force
    p(s_{T-1}, s_T | y) within 5 standard errors."""
    rng = np.random.default_rng(4)
    y = np.array([0.9, 1.2, 0.8, -0.9, -1.3, -0.7, -1.1, 0.9])
    draws = {
        "mu": np.array([-1.0, 1.0]) + 0.1 * rng.normal(size=(1, 800, 2)),
        "phi": 0.3 * rng.normal(size=(1, 800, 2)),
    }
    post = Posterior(draws, observed={"y": y}, model=tfd.JointDistributionCoroutine(ar2_model))
    ahead = post.forecast(3, seed=5)
    assert ahead["y_s"].shape == (1, 800, 3, 2) and ahead["y"].shape == (1, 800, 3)
    sims = []
    for d in range(800):
        mu, phi = draws["mu"][0, d], draws["phi"][0, d]
        joint = ar2_last_two(mu, phi, y)
        if d < 5:
            ref = [joint.sum(0) @ np.linalg.matrix_power(P_AR, h) for h in (1, 2, 3)]
            np.testing.assert_allclose(ahead["y_s"][0, d], np.array(ref), atol=1e-10, rtol=0)
        pair = rng.choice(4, p=joint.ravel(), size=10)
        s1, s = pair // 2, pair % 2  # s_{T-1}, s_T
        y1, y0, path = np.full(10, y[-2]), np.full(10, y[-1]), []
        for _ in range(3):
            nxt = np.where(rng.random(10) < P_AR[s, 0], 0, 1)
            mean = mu[nxt] + phi[0] * (y0 - mu[s]) + phi[1] * (y1 - mu[s1])
            y1, y0, s1, s = y0, mean + SIGMA_AR * rng.normal(size=10), s, nxt
            path.append(y0)
        sims.append(np.stack(path, -1))
    sims = np.concatenate(sims)
    got = ahead["y"][0]
    se = np.sqrt(got.var(0) / len(got) + sims.var(0) / len(sims))
    z = (got.mean(0) - sims.mean(0)) / se
    assert np.all(np.abs(z) < 5), z


def test_semi_markov_site_knows_how_long_its_regime_has_lasted():
    """Regimes alternate and every segment lasts exactly 3 steps; regime 1 began at the last
    step, so it holds 2 more steps, then regime 0 (at every draw)."""

    def model():
        mu = yield tfd.Normal(jnp.array([0.0, 5.0]), 1.0)
        y = yield tfd.HiddenSemiMarkovModel(
            tfd.Categorical(probs=jnp.array([1.0, 0.0])),
            tfd.Categorical(probs=jnp.array([[0.0, 1.0], [1.0, 0.0]])),
            tfd.Categorical(probs=jnp.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])),
            tfd.Normal(mu, 1.0),
            num_steps=4,
        )

    post = Posterior(
        {"mu": np.array([[[0.0, 5.0], [0.5, 4.5]]])},
        observed={"y": np.array([0.1, -0.2, 0.3, 5.2])},
        model=tfd.JointDistributionCoroutine(model),
    )
    ahead = post.forecast(3, seed=0)
    assert list(ahead) == ["y_regimes", "y"] and ahead["y"].shape == (1, 2, 3)
    np.testing.assert_allclose(ahead["y_regimes"][0], [[[0, 1], [0, 1], [1, 0]]] * 2, atol=1e-6)


# --- several observations per step, and errors ---------------------------------------------------


def two_observation_model():
    mu = yield tfd.Normal(jnp.zeros(2), 3.0)

    def step(prev, inputs):
        probs = (
            jnp.array([0.5, 0.5]) if prev is None else jnp.array([[0.9, 0.1], [0.2, 0.8]])[prev.s]
        )
        s = yield tfd.Categorical(probs=probs)
        u = yield tfd.Normal(mu[s], 1.0)
        v = yield tfd.Normal(-mu[s], 0.001)

    obs = yield tfd.RegimeSwitching(step, num_steps=4)


def test_several_observations_per_step_come_back_as_a_mapping():
    observed = {"obs": {"u": np.array([-2.0, -2.1, 2.0, 1.9]), "v": np.array([2, 2, -2, -2.0])}}
    post = Posterior(
        {"mu": np.array([[[-2.0, 2.0], [-2.0, 2.0]]])},
        observed=observed,
        model=tfd.JointDistributionCoroutine(two_observation_model),
    )
    ahead = post.forecast(3, seed=0)
    assert list(ahead) == ["obs_s", "obs", "obs_s_duration"] and set(ahead["obs"]) == {"u", "v"}
    assert ahead["obs"]["u"].shape == ahead["obs"]["v"].shape == (1, 2, 3)
    assert ahead["obs_s"].shape == (1, 2, 3, 2)
    # v = -mu[s] almost exactly, and the regime of the last step is 1 (v = -2): first row [0.2, 0.8]
    assert set(np.round(ahead["obs"]["v"]).ravel().tolist()) <= {-2.0, 2.0}
    np.testing.assert_allclose(ahead["obs_s"][0, :, 0], [[0.2, 0.8]] * 2, atol=1e-5)


def test_errors():
    def no_regimes():
        mu = yield tfd.Normal(0.0, 1.0)
        y = yield tfd.Normal(mu, 1.0)

    post = Posterior(
        {"mu": np.zeros((1, 2))},
        observed={"y": np.zeros(())},
        model=tfd.JointDistributionCoroutine(no_regimes),
    )
    with pytest.raises(ValueError, match="needs a regime site"):
        post.forecast(2)
    with pytest.raises(ValueError, match="num_steps must be an integer >= 1; got 0"):
        post.forecast(0)
    with pytest.raises(ValueError, match="needs the model"):
        Posterior({"mu": np.zeros((1, 2))}).forecast(2)


def test_hmm_site_refuses_inputs(hmm_case):
    draws, y = hmm_case
    post = Posterior(draws, observed={"y": y}, model=tfd.JointDistributionCoroutine(hmm_model))
    with pytest.raises(ValueError, match=r"'y', a HiddenMarkovModel, whose steps read no inputs"):
        post.forecast(2, inputs=np.zeros(2))


# --- the GDP demo's forecast ---------------------------------------------------------------------


def test_gdp_demo_forecast_table(capsys, x64):
    """The demo's table at two fixed draws: P(recession) per quarter equals the NumPy filter at
    2009Q3 carried forward by the transition matrix, averaged over the draws."""
    _, table = demo.load_csv("us_gdp_growth.csv")
    growth = table[:, 2].astype(float)
    draws = {
        "stay": np.array([[[0.75, 0.95], [0.7, 0.9]]]),
        "mean": np.array([[[-0.4, 0.9], [-0.2, 1.0]]]),
        "sigma": np.array([[0.8, 0.75]]),
    }
    jd = tfd.JointDistributionCoroutine(demo.gdp_model(len(growth)))
    post = Posterior(draws, observed={"growth": growth}, model=jd)
    ahead = demo.forecast_gdp(post, "2009Q3", seed=0)
    printed = capsys.readouterr().out
    rows = [line.split() for line in printed.splitlines() if re.match(r"\s*\d{4}Q\d ", line)]
    assert [r[0] for r in rows] == [
        "2009Q4", "2010Q1", "2010Q2", "2010Q3", "2010Q4", "2011Q1", "2011Q2", "2011Q3",
    ]  # fmt: skip
    ref = np.zeros(8)
    for d in range(2):
        stay, mean, sigma = draws["stay"][0, d], draws["mean"][0, d], draws["sigma"][0, d]
        P = np.array([[stay[0], 1 - stay[0]], [1 - stay[1], stay[1]]])
        log_obs = stats.norm(mean, sigma).logpdf(growth[:, None])
        p = filtered_last(np.array([0.5, 0.5]), P, log_obs)
        ref += np.stack([p @ np.linalg.matrix_power(P, h) for h in range(1, 9)])[:, 0] / 2
    np.testing.assert_allclose([float(r[1]) for r in rows], ref, atol=1e-3)
    np.testing.assert_allclose(ahead["growth_regime"].mean((0, 1))[:, 0], ref, atol=1e-6)
    # the expected durations, 1 / (1 - stay), per draw and their median as printed
    np.testing.assert_allclose(
        ahead["growth_regime_duration"][0], 1 / (1 - draws["stay"][0]), rtol=1e-10
    )
    assert "recession 3.7 quarters, expansion 15.0 quarters" in printed


def test_forecast_chunks_of_draws_give_the_same_draws():
    """The forecast bounds its memory by chunks of draws (its working memory is the series');
    chunks of equal size, the last draw repeated to fill them, change no draw."""
    from coromix import per_draw

    def fn(draw, key):
        return {"x": draw["mu"] + jax.random.normal(key, (2,))}

    samples = {"mu": np.arange(10.0).reshape(2, 5)}
    whole = per_draw.map_draws(fn, samples, seed=3)
    chunked = per_draw.map_draws(fn, samples, seed=3, work_per_draw=2**22 // 3)  # 4 chunks of 3
    assert chunked["x"].shape == (2, 5, 2)
    np.testing.assert_array_equal(chunked["x"], whole["x"])
