"""RegimeSwitching(mask=...) and panels: missing observations left out, series of unequal length.

Oracle: brute force over all K^T regime paths without the masked observation terms (float64,
1e-10); for panels, each series fitted on its own.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import coromix as cm
import coromix.distributions as tfd
from coromix.distributions.regime_switching import RegimeSwitching

LOGITS = np.array([[1.2, -0.4, 0.1], [-0.2, 0.9, 0.3], [0.0, 0.5, 1.1]])
MU = np.array([-1.5, 0.5, 2.5])
SD = np.array([0.8, 1.0, 1.3])


def make_step(K, p, phi=0.4):
    """A mean-adjusted AR(1) whose transitions also read the previous observation; with p = 2
    the regime two steps back shifts the logits."""
    logits, mu, sd = jnp.asarray(LOGITS[:K, :K]), jnp.asarray(MU[:K]), jnp.asarray(SD[:K])

    def step(prev, inputs):
        last = prev if p == 1 else (prev[0] if prev else None)
        base = jnp.zeros(K) if last is None else logits[last.s] + 0.2 * last.y
        if p == 2 and len(prev) == 2:
            base = base + 0.6 * (jnp.arange(K) == prev[1].s)
        s = yield tfd.Categorical(logits=base)
        mean = mu[s] if last is None else mu[s] + phi * (last.y - mu[last.s])
        y = yield tfd.Normal(mean, sd[s])

    return step


def brute_force(y, mask, K, p, phi=0.4):
    """log p(y without the masked terms) and the smoothed marginals; masked values are still
    read by later steps (NaN read as 0)."""
    T = len(y)
    read = np.where(np.isfinite(y), y, 0.0)

    def log_joint(path):
        total = 0.0
        for t, s in enumerate(path):
            if t == 0:
                base, mean = np.zeros(K), MU[s]
            else:
                base = LOGITS[:K, :K][path[t - 1]] + 0.2 * read[t - 1]
                if p == 2 and t >= 2:
                    base = base + 0.6 * (np.arange(K) == path[t - 2])
                mean = MU[s] + phi * (read[t - 1] - MU[path[t - 1]])
            total += base[s] - logsumexp(base)
            if not mask[t]:
                total += stats.norm.logpdf(y[t], mean, SD[s])
        return total

    paths = list(itertools.product(range(K), repeat=T))
    joint = np.array([log_joint(path) for path in paths])
    weights = np.exp(joint - logsumexp(joint))
    marginals = np.zeros((T, K))
    for w, path in zip(weights, paths):
        marginals[np.arange(T), path] += w
    return logsumexp(joint), marginals, np.array(paths[int(np.argmax(joint))])


@pytest.mark.parametrize(
    "K, p, T", [(2, 1, 8), (3, 1, 6), pytest.param(2, 2, 8, marks=pytest.mark.slow)]
)
def test_mask_equals_brute_force_without_the_masked_terms(x64, K, p, T):
    rng = np.random.default_rng(K + 10 * p)
    y = rng.normal(0.5, 1.5, size=T)
    mask = np.zeros(T, bool)
    mask[[0, 3, T - 1]] = True  # the first, an interior and the last observation missing
    y[3] = np.nan  # a NaN placeholder: read as 0 by the next step
    d = RegimeSwitching(make_step(K, p), T, history=p, mask=jnp.asarray(mask))
    log_lik, marginals, best = brute_force(y, mask, K, p)
    np.testing.assert_allclose(d.log_prob(jnp.asarray(y)), log_lik, rtol=1e-10)
    np.testing.assert_allclose(d.posterior_marginals(jnp.asarray(y)).probs, marginals, atol=1e-10)
    np.testing.assert_array_equal(d.posterior_mode(jnp.asarray(y)), best)
    # the masked values are not scored: changing a masked value that no step reads (the last)
    # changes nothing
    y2 = y.copy()
    y2[-1] = 1e6
    np.testing.assert_allclose(d.log_prob(jnp.asarray(y2)), log_lik, rtol=1e-10)


def test_nan_without_mask_is_a_clear_error():
    d = RegimeSwitching(make_step(2, 1), 6)
    y = np.array([0.1, np.nan, 0.3, 0.2, np.nan, 1.0], np.float32)
    with pytest.raises(ValueError, match=r"'y'.*step(s)? 1, 4.*mask="):
        d.log_prob(y)
    masked = RegimeSwitching(make_step(2, 1), 6, mask=np.array([0, 1, 0, 0, 0, 0], bool))
    with pytest.raises(ValueError, match=r"'y'.*step 4.*mask"):
        masked.posterior_marginals(y)


def test_nan_in_masked_rows_keeps_gradients_finite(x64):
    """NaN placeholders at masked steps reach neither the log-likelihood nor its gradient."""
    y = np.array([0.1, np.nan, 2.3, 2.2, np.nan, 0.0])
    mask = jnp.asarray(np.isnan(y))

    def log_lik(mu):
        def step(prev, inputs):
            s = yield tfd.Categorical(probs=jnp.array([0.5, 0.5]) if prev is None else
                                      jnp.array([[0.9, 0.1], [0.2, 0.8]])[prev.s])  # fmt: skip
            obs = yield tfd.Normal(mu[s], 1.0)

        return RegimeSwitching(step, 6, mask=mask).log_prob(jnp.asarray(y))

    value, grad = jax.jit(jax.value_and_grad(log_lik))(jnp.array([0.0, 2.0]))
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    P, mu = np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0.0, 2.0])
    joint = []
    for path in itertools.product(range(2), repeat=6):
        lp = np.log(0.5) + sum(np.log(P[path[t - 1], path[t]]) for t in range(1, 6))
        lp += sum(stats.norm.logpdf(y[t], mu[path[t]], 1.0) for t in range(6) if not mask[t])
        joint.append(lp)
    np.testing.assert_allclose(value, logsumexp(joint), rtol=1e-10)


# --------------------------------------------------------------------------------------------
# panels
# --------------------------------------------------------------------------------------------


def panel_step(prev, u_t):
    """Input-driven transitions and a mean-adjusted AR(1), shared by every series."""
    stay = jax.nn.sigmoid(jnp.array([2.0, 1.0]) + 0.8 * u_t)
    probs = jnp.array([0.5, 0.5]) if prev is None else jnp.where(
        prev.s == 0, jnp.stack([stay[0], 1 - stay[0]]), jnp.stack([1 - stay[1], stay[1]])
    )  # fmt: skip
    s = yield tfd.Categorical(probs=probs)
    mu = jnp.array([-1.0, 2.0])
    mean = mu[s] if prev is None else mu[s] + 0.5 * (prev.y - mu[prev.s])
    y = yield tfd.Normal(mean, 1.0)


def test_padded_masked_panel_equals_per_series_log_probs(x64):
    """Three series of lengths 9, 5 and 7 padded to 9 (NaN tails, masked): ``log_prob`` gives
    one value per series, each the series' own log-likelihood; the posterior marginals on the
    observed steps and the Viterbi paths equal each series' own."""
    lengths = [9, 5, 7]
    T, N = max(lengths), len(lengths)
    rng = np.random.default_rng(0)
    u = rng.normal(size=(N, T))
    y = np.full((N, T), np.nan)
    for i, n in enumerate(lengths):
        y[i, :n] = rng.normal(0.5, 1.5, size=n)
    mask = np.arange(T)[None, :] >= np.array(lengths)[:, None]
    d = RegimeSwitching(panel_step, T, inputs=jnp.asarray(u), mask=jnp.asarray(mask))
    assert d.batch_shape == (N,) and d.event_shape == (T,)
    lp = d.log_prob(jnp.asarray(y))
    assert lp.shape == (N,)
    marginals = d.posterior_marginals(jnp.asarray(y)).probs
    assert marginals.shape == (N, T, 2)
    modes = d.posterior_mode(jnp.asarray(y))
    for i, n in enumerate(lengths):
        one = RegimeSwitching(panel_step, n, inputs=jnp.asarray(u[i, :n]))
        np.testing.assert_allclose(lp[i], one.log_prob(jnp.asarray(y[i, :n])), rtol=1e-12)
        np.testing.assert_allclose(
            marginals[i, :n], one.posterior_marginals(jnp.asarray(y[i, :n])).probs, atol=1e-12
        )
        np.testing.assert_array_equal(modes[i, :n], one.posterior_mode(jnp.asarray(y[i, :n])))


def test_panel_of_shared_inputs_and_a_batch_of_values(x64):
    """Inputs ``[T]`` shared by all series, a value ``[N, T]``: one log-likelihood per series."""
    T = 6
    u = np.linspace(-1, 1, T)
    y = np.random.default_rng(1).normal(size=(4, T))
    d = RegimeSwitching(panel_step, T, inputs=jnp.asarray(u))
    assert d.batch_shape == ()
    lp = d.log_prob(jnp.asarray(y))
    assert lp.shape == (4,)
    for i in range(4):
        np.testing.assert_allclose(lp[i], d.log_prob(jnp.asarray(y[i])), rtol=1e-12)


@pytest.mark.slow  # sampling runs the step eagerly per step (about 13 s); panels' log_prob is above
def test_panel_samples_have_the_panel_shape():
    T, N = 5, 3
    u = jnp.asarray(np.random.default_rng(2).normal(size=(N, T)), jnp.float32)
    d = RegimeSwitching(panel_step, T, inputs=u)
    assert d.sample(seed=0).shape == (N, T)
    assert d.sample(2, seed=0).shape == (2, N, T)


def panel_model(T, u, mask):
    def model():
        mu = yield tfd.Normal(jnp.array([-1.0, 2.0]), 3.0)

        def step(prev, u_t):
            stay = jax.nn.sigmoid(jnp.array([2.0, 1.0]) + 0.8 * u_t)
            probs = jnp.array([0.5, 0.5]) if prev is None else jnp.where(
                prev.s == 0, jnp.stack([stay[0], 1 - stay[0]]), jnp.stack([1 - stay[1], stay[1]])
            )  # fmt: skip
            s = yield tfd.Categorical(probs=probs)
            mean = mu[s] if prev is None else mu[s] + 0.5 * (prev.y - mu[prev.s])
            y = yield tfd.Normal(mean, 1.0)

        y = yield tfd.RegimeSwitching(step, T, inputs=jnp.asarray(u), mask=jnp.asarray(mask))

    return tfd.JointDistributionCoroutine(model)


def padded_panel(lengths, seed):
    T, N = max(lengths), len(lengths)
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(N, T)).astype(np.float32)
    mask = np.arange(T)[None, :] >= np.array(lengths)[:, None]
    y = np.asarray(RegimeSwitching(panel_step, T, inputs=jnp.asarray(u)).sample(seed=seed))
    y = y.astype(np.float32)
    y[mask] = np.nan
    return u, mask, y


@pytest.mark.slow
def test_panel_in_a_joint_model_sums_the_series():
    """A padded, masked panel in a joint model (the mask's batch dim declares the panel): the
    log density is the prior plus the sum of the series' own log-likelihoods, and the regime
    posterior has one ``[T, K]`` block per series, each the series' own on its steps."""
    lengths = [12, 7, 10]
    T = max(lengths)
    u, mask, y = padded_panel(lengths, 3)
    jd = panel_model(T, u, mask)
    mu = jnp.array([-1.0, 2.0])
    total = jd.log_prob(mu=mu, y=jnp.asarray(y))
    singles = [
        RegimeSwitching(panel_step, n, inputs=jnp.asarray(u[i, :n])) for i, n in enumerate(lengths)
    ]
    per_series = sum(
        float(d.log_prob(jnp.asarray(y[i, :n]))) for i, (d, n) in enumerate(zip(singles, lengths))
    )
    prior = float(jnp.sum(jax.scipy.stats.norm.logpdf(mu, jnp.array([-1.0, 2.0]), 3.0)))
    np.testing.assert_allclose(total, per_series + prior, rtol=1e-5)
    post = jd.discrete_posterior(mu=mu, y=jnp.asarray(y))
    assert post.y_s.shape == (len(lengths), T, 2)
    for i, (d, n) in enumerate(zip(singles, lengths)):
        np.testing.assert_allclose(
            post.y_s[i, :n], d.posterior_marginals(jnp.asarray(y[i, :n])).probs, atol=1e-5
        )


@pytest.mark.slow
def test_panel_fit_with_shared_parameters_runs_with_nuts():
    """NUTS on a padded, masked panel of three series sharing the regime means: finite draws
    that move, near the values the series were simulated with (mu = -1, 2)."""
    lengths = [60, 35, 48]
    u, mask, y = padded_panel(lengths, 4)
    fit = cm.nuts(
        panel_model(max(lengths), u, mask),
        observed={"y": jnp.asarray(y)},
        num_chains=2,
        num_warmup=300,
        num_samples=300,
        seed=0,
        progress=False,
    )
    draws = np.asarray(fit.samples["mu"])
    assert draws.shape == (2, 300, 2) and np.all(np.isfinite(draws))
    mean, sd = draws.reshape(-1, 2).mean(0), draws.reshape(-1, 2).std(0)
    print("posterior mean", mean, "sd", sd)
    assert np.all(sd > 0) and np.all(np.abs(mean - np.array([-1.0, 2.0])) < 5 * sd)
