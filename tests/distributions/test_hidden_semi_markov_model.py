"""HiddenSemiMarkovModel against brute force over all regime paths (each path is one
segmentation, its last segment censored: the survivor P(d >= length)), the dense expanded hidden
Markov chain over (regime, elapsed), the hidden Markov model it equals with geometric durations,
the duration and transition laws of its samples (chi-square), and NUTS on simulated data."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import coromix as cm
from coromix import markov
from coromix.distributions import (
    Categorical,
    Dirichlet,
    HiddenMarkovModel,
    HiddenSemiMarkovModel,
    NegativeBinomial,
    Normal,
    Poisson,
)


def random_parameters(rng, K, D):
    start = rng.dirichlet(np.full(K, 2.0))
    trans = rng.dirichlet(np.ones(K - 1), size=K) if K > 2 else np.ones((K, 1))
    full = np.zeros((K, K))
    for k in range(K):
        full[k, [j for j in range(K) if j != k]] = trans[k]
    dur = rng.dirichlet(np.ones(D), size=K)
    return start, full, dur


def hsmm(start, trans, dur, loc, scale, T, **kw):
    return HiddenSemiMarkovModel(
        Categorical(probs=start),
        Categorical(probs=trans),
        Categorical(probs=dur),
        Normal(loc, scale),
        num_steps=T,
        **kw,
    )


def path_log_prior(z, start, trans, dur):
    """log p(z_1..T): segments of z (runs), the last one censored (float64 NumPy)."""
    D = dur.shape[1]
    surv = np.cumsum(dur[:, ::-1], axis=1)[:, ::-1]  # P(d >= 1..D)
    runs = [(k, len(list(g))) for k, g in itertools.groupby(z)]
    out = np.log(start[runs[0][0]])
    for (k, n), (k_next, _) in itertools.pairwise(runs):
        if n > D:
            return -np.inf
        out += np.log(dur[k, n - 1]) + np.log(trans[k, k_next])
    k, n = runs[-1]
    return out + (np.log(surv[k, n - 1]) if n <= D else -np.inf)


def brute_force(start, trans, dur, log_obs):
    """(log p(y), marginals [T, K], mode path, all paths, their log posteriors)."""
    T, K = log_obs.shape
    Z = np.array(list(itertools.product(range(K), repeat=T)))
    with np.errstate(divide="ignore"):
        prior = np.array([path_log_prior(z, start, trans, dur) for z in Z])
    score = prior + log_obs[np.arange(T), Z].sum(1)
    total = logsumexp(score)
    w = np.exp(score - total)
    gamma = np.stack([np.bincount(Z[:, t], weights=w, minlength=K) for t in range(T)])
    return total, gamma, Z[np.argmax(score)], Z, score - total


def normal_log_obs(y, loc, scale):
    return stats.norm.logpdf(np.asarray(y, np.float64)[:, None], loc, scale)


@pytest.mark.parametrize("D", [3, 9])  # durations shorter than T, and longer than it
def test_log_prob_marginals_mode_and_filter_match_brute_force(x64, D):
    rng = np.random.default_rng(D)
    K, T = 3, 7
    start, trans, dur = random_parameters(rng, K, D)
    loc, scale = np.array([-2.0, 0.0, 2.0]), np.array([1.0, 0.6, 1.2])
    y = rng.normal(size=T) * 2
    total, gamma, mode, _, _ = brute_force(start, trans, dur, normal_log_obs(y, loc, scale))
    d = hsmm(start, trans, dur, loc, scale, T)
    tol = {"rtol": 1e-12, "atol": 1e-10}
    np.testing.assert_allclose(float(d.log_prob(y)), total, **tol)
    post = d.posterior(y)
    np.testing.assert_allclose(float(post.log_likelihood), total, **tol)
    np.testing.assert_allclose(np.asarray(d.posterior_marginals(y).probs), gamma, **tol)
    np.testing.assert_array_equal(np.asarray(d.posterior_mode(y)), mode)
    # filtered p(z_t | y_1..t): the model cut at t (its last segment censored there)
    for t in range(1, T + 1):
        _, g, _, _, _ = brute_force(start, trans, dur, normal_log_obs(y[:t], loc, scale))
        np.testing.assert_allclose(np.asarray(post.filtered[t - 1]), g[-1], **tol)


def test_masked_steps_are_left_out_like_brute_force(x64):
    rng = np.random.default_rng(4)
    K, T, D = 3, 6, 4
    start, trans, dur = random_parameters(rng, K, D)
    loc, scale = np.array([-2.0, 0.0, 2.0]), np.ones(3)
    y = rng.normal(size=T) * 2
    mask = np.array([False, True, False, False, True, True])
    lo = np.where(mask[:, None], 0.0, normal_log_obs(y, loc, scale))
    total, gamma, mode, _, _ = brute_force(start, trans, dur, lo)
    d = hsmm(start, trans, dur, loc, scale, T, mask=mask)
    y_nan = np.where(mask, np.nan, y)
    np.testing.assert_allclose(float(d.log_prob(y_nan)), total, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(d.posterior_marginals(y_nan).probs), gamma, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(d.posterior_mode(y_nan)), mode)
    with pytest.raises(ValueError, match=r"NaN at steps 1, 4, 5 .*mask="):
        hsmm(start, trans, dur, loc, scale, T).log_prob(y_nan)


@pytest.mark.slow
def test_sparse_kernels_agree_with_the_dense_expanded_chain(x64):
    rng = np.random.default_rng(8)
    K, T, D = 3, 12, 5
    start, trans, dur = random_parameters(rng, K, D)
    y = rng.normal(size=T) * 2
    d = hsmm(start, trans, dur, np.array([-2.0, 0.0, 2.0]), 1.0, T)
    li, lt, lo = d.expanded_log_potentials(y)
    E = li.shape[0] // K
    dense, sparse = markov.posterior(li, lt, lo), d.posterior(y)
    np.testing.assert_allclose(
        float(sparse.log_likelihood), float(dense.log_likelihood), rtol=1e-12
    )
    regimes = np.asarray(dense.marginals).reshape(T, K, E).sum(-1)
    np.testing.assert_allclose(np.asarray(sparse.marginals), regimes, atol=1e-12)
    pairs = np.asarray(markov.posterior_mode(li, lt, lo))
    np.testing.assert_array_equal(np.asarray(d.posterior_mode(y)), pairs // E)


def test_posterior_sample_draws_paths_with_their_brute_force_probabilities(x64):
    rng = np.random.default_rng(5)
    K, T, D = 2, 6, 3
    start, trans, dur = random_parameters(rng, K, D)
    loc = np.array([-1.0, 1.0])
    y = rng.normal(size=T)
    _, _, _, Z, log_post = brute_force(start, trans, dur, normal_log_obs(y, loc, 1.0))
    n = 40_000
    draws = np.asarray(hsmm(start, trans, dur, loc, 1.0, T).posterior_sample(y, n, seed=2))
    assert draws.shape == (n, T) and draws.dtype == np.int32
    freq = np.bincount(draws @ (K ** np.arange(T)[::-1]), minlength=len(Z)) / n
    p = np.exp(log_post)
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= 5 * se), np.max(np.abs(freq - p) / np.maximum(se, 1e-300))


def segments(path):
    """(regime, start, length) of every run of a regime path."""
    out, start = [], 0
    for k, g in itertools.groupby(path):
        n = len(list(g))
        out.append((int(k), start, n))
        start += n
    return out


@pytest.mark.parametrize("law", ["categorical", pytest.param("poisson", marks=pytest.mark.slow)])
def test_samples_follow_the_duration_and_transition_laws(law):
    """Segments that start at s <= T - D always end inside the data whatever their duration, so
    their durations are i.i.d. draws of the duration law (a chi-square test per regime); the
    regime after each segment follows the transition rows (chi-square)."""
    rng = np.random.default_rng(1)
    K, D, T, n = 3, 6, 200, 300
    start, trans, dur = random_parameters(rng, K, D)
    if law == "categorical":
        duration_distribution, probs = Categorical(probs=dur), dur
    else:
        rates = np.array([1.5, 3.0, 5.0])
        duration_distribution = Poisson(rates)
        pmf = stats.poisson.pmf(np.arange(1, D + 1)[None], rates[:, None])
        probs = pmf / pmf.sum(1, keepdims=True)
    d = HiddenSemiMarkovModel(
        Categorical(probs=start),
        Categorical(probs=trans),
        duration_distribution,
        Normal(np.array([0.0, 10.0, 20.0]), 0.1),
        num_steps=T,
        max_duration=D,
    )
    x = np.asarray(d.sample(n, seed=3))
    assert x.shape == (n, T)
    paths = np.rint(x / 10).astype(int)  # the regimes, read off well separated observations
    lengths = {k: [] for k in range(K)}
    moves = np.zeros((K, K))
    for path in paths:
        segs = segments(path)
        for (k, s, m), (k_next, _, _) in itertools.pairwise(segs):
            moves[k, k_next] += 1
        for k, s, m in segs:
            if s <= T - D:
                lengths[k].append(m)
    np.testing.assert_array_equal(np.diag(moves), 0)
    for k in range(K):
        observed = np.bincount(lengths[k], minlength=D + 1)[1:]
        assert observed.sum() > 1000 and len(observed) == D
        expected = probs[k] * observed.sum()
        keep = expected > 0
        assert np.all(observed[~keep] == 0)
        assert stats.chisquare(observed[keep], expected[keep]).pvalue > 1e-3, (k, observed)
        others = [j for j in range(K) if j != k]
        row = moves[k, others]
        assert stats.chisquare(row, trans[k, others] * row.sum()).pvalue > 1e-3
    first = np.bincount(paths[:, 0], minlength=K)
    assert stats.chisquare(first, start * n).pvalue > 1e-3


def geometric_hmm(rng, K):
    """A hidden Markov model with self-transitions p and its semi-Markov pieces: the jump rows
    (zero diagonal) and the continuation probabilities p."""
    p = rng.uniform(0.5, 0.9, size=K)
    jumps = np.zeros((K, K))
    for k in range(K):
        jumps[k, [j for j in range(K) if j != k]] = rng.dirichlet(np.ones(K - 1))
    A = np.diag(p) + (1 - p)[:, None] * jumps
    return p, jumps, A


@pytest.mark.parametrize(
    "kind",
    [
        "lumped tail",
        pytest.param("truncated at 400", marks=pytest.mark.slow),
        pytest.param("negative binomial", marks=pytest.mark.slow),
    ],
)
def test_geometric_durations_equal_the_hidden_markov_model(x64, kind):
    """Geometric durations P(d) = (1 - p) p^(d-1) make the semi-Markov model the HMM with
    self-transition p. Exactly so with D = T + 1 and the tail mass p^T put on the last duration
    (every survivor up to T is then exact); truncated at D = 400 the survivors are off by a
    factor 1 - p^400 >= 1 - 0.9^400 (5e-19), far below the 1e-10 tolerance; NegativeBinomial(1, p)
    on 0, 1, ... truncated to 1..400 is the same geometric law."""
    rng = np.random.default_rng(6)
    K, T = 3, 8
    p, jumps, A = geometric_hmm(rng, K)
    start = rng.dirichlet(np.ones(K))
    loc, scale = np.array([-2.0, 0.0, 2.5]), np.array([1.0, 0.5, 1.5])
    y = rng.normal(size=(4, T)) * 2  # four series
    ref = HiddenMarkovModel(
        Categorical(probs=start), Categorical(probs=A), Normal(loc, scale), num_steps=T
    )
    if kind == "lumped tail":
        d_ = np.arange(1, T + 1)
        law = (1 - p)[:, None] * p[:, None] ** (d_ - 1)
        duration, max_duration = Categorical(probs=np.hstack([law, p[:, None] ** T])), None
    elif kind == "truncated at 400":
        d_ = np.arange(1, 401)
        law = (1 - p)[:, None] * p[:, None] ** (d_ - 1)
        duration, max_duration = Categorical(probs=law / law.sum(1, keepdims=True)), None
    else:
        duration, max_duration = NegativeBinomial(1.0, probs=p), 400
    d = HiddenSemiMarkovModel(
        Categorical(probs=start),
        Categorical(probs=jumps),
        duration,
        Normal(loc, scale),
        num_steps=T,
        max_duration=max_duration,
    )
    post, ref_post = d.posterior(y), ref.posterior(y)
    np.testing.assert_allclose(
        np.asarray(post.log_likelihood), np.asarray(ref_post.log_likelihood), rtol=1e-10
    )
    np.testing.assert_allclose(
        np.asarray(post.marginals), np.asarray(ref_post.marginals), atol=1e-10
    )
    np.testing.assert_array_equal(
        np.asarray(d.posterior_mode(y)), np.asarray(ref.posterior_mode(y))
    )
    if kind == "lumped tail":  # the prior marginals too
        np.testing.assert_allclose(np.asarray(d.mean()), np.asarray(ref.mean()), atol=1e-10)


def test_forecast_equals_the_masked_tail_and_its_draws_follow_it(x64):
    """p(z_{T+h} | y_1..T) is the posterior marginal of a (T + h)-step model whose last h steps
    are masked (brute force); the regime draws' frequencies lie within 5 standard errors."""
    rng = np.random.default_rng(9)
    K, T, h, D = 3, 5, 3, 4
    start, trans, dur = random_parameters(rng, K, D)
    loc = np.array([-2.0, 0.0, 2.0])
    y = rng.normal(size=T) * 2
    d = hsmm(start, trans, dur, loc, 1.0, T)
    ahead = d.forecast(y, h, seed=0)
    assert ahead.probs.shape == (h, K) and ahead.regimes.shape == (h,)
    lo = np.vstack([normal_log_obs(y, loc, 1.0), np.zeros((h, K))])
    _, gamma, _, _, _ = brute_force(start, trans, dur, lo)
    np.testing.assert_allclose(np.asarray(ahead.probs), gamma[T:], atol=1e-12)
    n = 20_000
    draws = jax.vmap(lambda k: d.forecast(y, h, seed=k))(jax.random.split(jax.random.key(1), n))
    regimes = np.asarray(draws.regimes)
    for j in range(h):
        freq = np.bincount(regimes[:, j], minlength=K) / n
        se = np.sqrt(gamma[T + j] * (1 - gamma[T + j]) / n)
        assert np.all(np.abs(freq - gamma[T + j]) <= 5 * se + 1e-12), (j, freq, gamma[T + j])
    x = np.asarray(draws.observations)
    for k in range(K):
        given = x[regimes == k]
        assert abs(given.mean() - loc[k]) < 5 / np.sqrt(len(given))


def test_jit_grad_and_vmap(precision):
    rng = np.random.default_rng(2)
    K, T, D = 2, 10, 4
    start, trans, dur = random_parameters(rng, K, D)
    y = jnp.asarray(rng.normal(size=T))

    def lp(loc, dur_logits):
        return HiddenSemiMarkovModel(
            Categorical(probs=start),
            Categorical(probs=trans),
            Categorical(logits=dur_logits),
            Normal(loc, 1.0),
            num_steps=T,
        ).log_prob(y)

    loc, logits = jnp.array([-1.0, 1.0]), jnp.log(jnp.asarray(dur))
    value, (g_loc, g_dur) = jax.jit(jax.value_and_grad(lp, (0, 1)))(loc, logits)
    assert g_loc.dtype == jnp.dtype(precision) and g_dur.shape == (K, D)
    eps = 1e-6 if precision == "float64" else 1e-2
    rtol = 1e-6 if precision == "float64" else 2e-2
    for i in range(K):  # against central differences
        e = np.eye(K)[i] * eps
        fd = (float(lp(loc + e, logits)) - float(lp(loc - e, logits))) / (2 * eps)
        np.testing.assert_allclose(float(g_loc[i]), fd, rtol=rtol)
    e = np.zeros((K, D))
    e[1, 2] = eps
    fd = (float(lp(loc, logits + e)) - float(lp(loc, logits - e))) / (2 * eps)
    np.testing.assert_allclose(float(g_dur[1, 2]), fd, rtol=rtol, atol=1e-9 if eps < 1e-3 else 1e-3)
    locs = jnp.array([[-1.0, 1.0], [0.0, 2.0], [-3.0, 0.5]])
    batched = jax.vmap(lp, (0, None))(locs, logits)
    tol = 1e-12 if precision == "float64" else 1e-5
    np.testing.assert_allclose(np.asarray(batched[0]), float(value), rtol=tol)
    np.testing.assert_allclose(np.asarray(batched[1]), float(lp(locs[1], logits)), rtol=tol)


def test_batch_shapes(x64):
    """A batch of 3 models (their means) scores a batch of series with a sample dim in front."""
    rng = np.random.default_rng(2)
    K, T, D = 2, 10, 4
    start, trans, dur = random_parameters(rng, K, D)
    y = rng.normal(size=T)
    locs = np.array([[-1.0, 1.0], [0.0, 2.0], [-3.0, 0.5]])
    d = hsmm(start, trans, dur, locs, 1.0, T)
    assert d.batch_shape == (3,) and d.event_shape == (T,)
    both = np.asarray(d.log_prob(np.stack([np.tile(y, (3, 1))] * 2)))  # [2, 3, T] -> [2, 3]
    assert both.shape == (2, 3)
    singles = [float(hsmm(start, trans, dur, loc, 1.0, T).log_prob(y)) for loc in locs]
    np.testing.assert_allclose(both[1], singles, rtol=1e-12)
    assert d.posterior(np.tile(y, (3, 1))).marginals.shape == (3, T, K)


@pytest.mark.slow
def test_every_method_keeps_the_batch(x64):
    rng = np.random.default_rng(2)
    K, T, D = 2, 10, 4
    start, trans, dur = random_parameters(rng, K, D)
    series = np.tile(rng.normal(size=T), (3, 1))
    d = hsmm(start, trans, dur, np.array([[-1.0, 1.0], [0.0, 2.0], [-3.0, 0.5]]), 1.0, T)
    assert d.posterior_marginals(series).probs.shape == (3, T, K)
    assert d.posterior_mode(series).shape == (3, T)
    assert d.posterior_sample(series, 5, seed=0).shape == (5, 3, T)
    assert d.sample((4,), seed=0).shape == (4, 3, T)
    ahead = d.forecast(series, 2, seed=0)
    assert ahead.probs.shape == (3, 2, K) and ahead.observations.shape == (3, 2)
    assert d.mean().shape == (3, T)


def test_structure_errors():
    start, dur = [0.5, 0.5], [[0.5, 0.5], [0.2, 0.8]]
    with pytest.raises(ValueError, match=r"zero diagonal .*\[0\.1, 0\.0\]"):
        hsmm(start, [[0.1, 0.9], [1.0, 0.0]], dur, [0.0, 1.0], 1.0, 5)
    swap = [[0.0, 1.0], [1.0, 0.0]]
    with pytest.raises(ValueError, match=r"max_duration is required with a Poisson"):
        HiddenSemiMarkovModel(
            Categorical(probs=start),
            Categorical(probs=swap),
            Poisson([2.0, 3.0]),
            Normal([0.0, 1.0], 1.0),
            num_steps=5,
        )
    with pytest.raises(ValueError, match=r"max_duration=3 but .* has 2 categories"):
        hsmm(start, swap, dur, [0.0, 1.0], 1.0, 5, max_duration=3)
    with pytest.raises(TypeError, match=r"duration_distribution must be a Categorical .*Normal"):
        HiddenSemiMarkovModel(
            Categorical(probs=start),
            Categorical(probs=swap),
            Normal([2.0, 3.0], 1.0),
            Normal([0.0, 1.0], 1.0),
            num_steps=5,
            max_duration=4,
        )
    with pytest.raises(ValueError, match=r"duration_distribution batch shape must end in \[2\]"):
        hsmm(start, swap, [0.5, 0.5], [0.0, 1.0], 1.0, 5)


def test_a_traced_diagonal_is_dropped_and_the_rows_renormalized(x64):
    start, dur = np.array([0.3, 0.3, 0.4]), np.full((3, 2), 0.5)
    with_diag = np.array([[0.4, 0.3, 0.3], [0.2, 0.2, 0.6], [0.5, 0.5, 0.0]])
    off = with_diag * (1 - np.eye(3))
    off = off / off.sum(1, keepdims=True)
    y = jnp.array([0.1, 1.9, 2.2, -0.3, 0.0])

    def lp(trans):
        return hsmm(start, trans, dur, np.array([0.0, 2.0, -1.0]), 1.0, 5).log_prob(y)

    np.testing.assert_allclose(float(jax.jit(lp)(with_diag)), float(lp(off)), rtol=1e-12)


def test_semi_markov_model_in_a_joint_model(x64):
    rng = np.random.default_rng(3)
    K, T, D = 2, 8, 3
    start, trans, dur = random_parameters(rng, K, D)
    y = rng.normal(size=T) + np.array([0, 0, 3, 3, 3, 0, 0, 3])

    def model():
        mu = yield Normal(np.array([0.0, 3.0]), 1.0, name="mu")
        yield hsmm(start, trans, dur, mu, 1.0, T, name="y")

    jd = cm.distributions.JointDistributionCoroutine(model)
    mu = jnp.array([0.2, 2.7])
    direct = hsmm(start, trans, dur, mu, 1.0, T)
    prior = float(Normal(np.array([0.0, 3.0]), 1.0).log_prob(mu).sum())
    np.testing.assert_allclose(float(jd.log_prob(mu=mu, y=y)), prior + float(direct.log_prob(y)))
    post = jd.discrete_posterior(mu=mu, y=y)
    np.testing.assert_allclose(
        np.asarray(post["y_regimes"]), np.asarray(direct.posterior_marginals(y).probs), atol=1e-12
    )
    mode = jd.discrete_mode(mu=mu, y=y)
    np.testing.assert_array_equal(
        np.asarray(mode["y_regimes"]), np.asarray(direct.posterior_mode(y))
    )


@pytest.mark.slow
def test_nuts_recovers_means_and_duration_laws_of_simulated_data():
    """Two regimes with known switching, unknown means and unknown duration laws on 1..6
    (Dirichlet priors), 600 simulated steps: every posterior mean lies within 4 (posterior sd
    and MCSE combined) of the value the data were simulated with."""
    K, D, T = 2, 6, 600
    true_mu = np.array([-1.0, 1.0])
    true_dur = np.array([[0.05, 0.1, 0.2, 0.3, 0.2, 0.15], [0.3, 0.3, 0.2, 0.1, 0.05, 0.05]])
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])
    truth = hsmm(np.array([0.5, 0.5]), swap, true_dur, true_mu, 1.0, T)
    y = np.asarray(truth.sample(seed=11))

    def model():
        mu = yield Normal(np.array([-1.0, 1.0]), 1.0, name="mu")
        dur = yield Dirichlet(np.ones((K, D)), name="dur")
        yield hsmm(np.array([0.5, 0.5]), swap, dur, mu, 1.0, T, name="y")

    post = cm.nuts(
        model,
        observed={"y": y},
        num_chains=2,
        num_warmup=500,
        num_samples=500,
        seed=0,
        progress=False,
    )
    summary = post.summary()
    assert float(summary["r_hat"].max()) <= 1.02
    for name, value in (("mu", true_mu), ("dur", true_dur)):
        draws = np.asarray(post.samples[name])
        for idx in np.ndindex(value.shape):
            label = f"{name}[{', '.join(map(str, idx))}]"
            x = draws[(slice(None), slice(None)) + idx]
            tol = 4 * np.hypot(x.std(), summary.loc[label, "mcse_mean"])
            assert abs(x.mean() - value[idx]) < tol, (label, x.mean(), value[idx], tol)


def test_long_series_in_float32_agree_with_float64():
    """The scaled, Kahan-summed forward pass keeps float32 exact on long series: at T = 3000 the
    log-likelihood (thousands of nats) is within 1e-3 nats of float64 (2e-5 measured at T = 20000)."""
    rng = np.random.default_rng(0)
    K, D, T = 3, 30, 3000
    start, trans, dur = random_parameters(rng, K, D)
    loc = np.array([-1.0, 0.0, 1.0])
    with jax.enable_x64(True):
        d = hsmm(start, trans, dur, loc, 1.0, T)
        y = np.asarray(d.sample(seed=0))
        ref = float(d.log_prob(y))
    with jax.enable_x64(False):
        d32 = hsmm(*(a.astype(np.float32) for a in (start, trans, dur, loc)), 1.0, T)
        value = d32.log_prob(y.astype(np.float32))
        assert value.dtype == jnp.float32
    assert abs(float(value) - ref) < 1e-3, (float(value), ref)
