"""HiddenMarkovModel(mask=): TFP's missing observations (True = missing, not scored, its state
still is). References: brute force over all K**T state paths without the masked terms; the
documented meaning ("not conditioned on") as smaller hidden Markov models that skip the masked
step (A^2 across it, pi A before a masked first step, a shorter chain for a masked tail); a
padded, masked batch of unequal lengths against the per-series models."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

import coromix as cm
from coromix.distributions import Categorical, Gamma, HiddenMarkovModel, Normal


def random_hmm_parameters(rng, K):
    start = rng.dirichlet(np.full(K, 2.0))
    trans = 0.5 * rng.dirichlet(np.ones(K), size=K) + 0.5 * np.eye(K)
    return start, trans / trans.sum(1, keepdims=True)


def normal_hmm(start, trans, loc, scale, T, **kw):
    return HiddenMarkovModel(
        Categorical(probs=start), Categorical(probs=trans), Normal(loc, scale), num_steps=T, **kw
    )


def normal_log_obs(y, loc, scale):
    """log N(y_t; loc_k, scale_k) [T, K] in float64 NumPy."""
    y = np.asarray(y, np.float64)[:, None]
    return -0.5 * ((y - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)


def brute_force(start, trans, log_obs, mask):
    """Every path's log weight with the masked steps' terms left out: (log p, marginals,
    argmax path, paths, path log posteriors)."""
    T, K = log_obs.shape
    lo = np.where(np.asarray(mask)[:, None], 0.0, log_obs)
    Z = np.array(list(itertools.product(range(K), repeat=T)))
    score = np.log(start)[Z[:, 0]] + lo[np.arange(T), Z].sum(1)
    score = score + np.log(trans)[Z[:, :-1], Z[:, 1:]].sum(1)
    total = logsumexp(score)
    w = np.exp(score - total)
    gamma = np.stack([np.bincount(Z[:, t], weights=w, minlength=K) for t in range(T)])
    return total, gamma, Z[np.argmax(score)], Z, score - total


def test_masked_hmm_matches_brute_force_without_the_masked_terms(precision):
    rng = np.random.default_rng(0)
    K, T = 3, 6
    start, trans = random_hmm_parameters(rng, K)
    loc, scale = np.array([-2.0, 0.0, 2.5]), np.array([1.0, 0.7, 1.3])
    y = rng.normal(size=T) * 2
    mask = np.zeros(T, bool)
    mask[[0, 3, 5]] = True  # first, middle and last steps missing
    total, gamma, mode, _, _ = brute_force(start, trans, normal_log_obs(y, loc, scale), mask)
    y_nan = np.where(mask, np.nan, y)  # missing entries hold NaN
    d = normal_hmm(start, trans, loc, scale, T, mask=mask)
    tol = {"rtol": 1e-12, "atol": 1e-10} if precision == "float64" else {"rtol": 1e-5, "atol": 1e-5}
    post = d.posterior(y_nan)
    np.testing.assert_allclose(float(post.log_likelihood), total, **tol)
    np.testing.assert_allclose(np.asarray(post.marginals), gamma, **tol)
    np.testing.assert_array_equal(np.asarray(d.posterior_mode(y_nan)), mode)
    # log_prob (its own custom-VJP kernel): the masked values do not matter, NaN or not
    values = np.asarray(d.log_prob(np.stack([y_nan, np.where(mask, 1e3, y), y])))
    np.testing.assert_allclose(values, [total] * 3, **tol)
    if precision == "float64":  # the parallel-in-time kernels see the same masked log_obs
        parallel = normal_hmm(start, trans, loc, scale, T, mask=mask, parallel=True)
        post = parallel.posterior(y_nan)
        np.testing.assert_allclose(float(post.log_likelihood), total, **tol)
        np.testing.assert_allclose(np.asarray(post.marginals), gamma, **tol)


def test_masked_ffbs_draws_paths_with_their_brute_force_probabilities(x64):
    rng = np.random.default_rng(5)
    K, T = 2, 5
    start, trans = random_hmm_parameters(rng, K)
    loc, scale = np.array([-1.0, 1.0]), np.array([1.0, 1.0])
    y = np.array([-1.2, np.nan, 0.9, np.nan, np.nan])
    mask = np.isnan(y)
    _, _, _, Z, log_post = brute_force(
        start, trans, normal_log_obs(np.nan_to_num(y), loc, scale), mask
    )
    n = 40_000
    draws = np.asarray(normal_hmm(start, trans, loc, scale, T, mask=mask).posterior_sample(y, n, 3))
    index = draws @ (K ** np.arange(T)[::-1])  # path -> its row in Z (itertools order)
    freq = np.bincount(index, minlength=len(Z)) / n
    p = np.exp(log_post)
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) < 5 * se + 1e-12), np.max(np.abs(freq - p) / (se + 1e-300))


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_masked_step_is_not_conditioned_on(x64, where):
    """TFP: a masked observation is not conditioned on, so the likelihood is that of the other
    observations under the chain that still takes the masked step: pi A before a masked first
    step, A @ A across a masked middle step, a chain one step shorter for a masked last step."""
    rng = np.random.default_rng(11)
    K, T = 3, 7
    start, trans = random_hmm_parameters(rng, K)
    loc, scale = np.array([-2.0, 0.5, 3.0]), np.array([1.0, 0.8, 1.5])
    y = rng.normal(size=T) * 2
    t = {"first": 0, "middle": 3, "last": T - 1}[where]
    mask = np.arange(T) == t
    d = normal_hmm(start, trans, loc, scale, T, mask=mask)
    kept = np.delete(y, t)
    if where == "first":
        ref = normal_hmm(start @ trans, trans, loc, scale, T - 1)
    elif where == "last":
        ref = normal_hmm(start, trans, loc, scale, T - 1)
    else:
        per_step = np.stack([trans] * (T - 2))
        per_step[t - 1] = trans @ trans  # the move from step t-1 to t+1 of the data
        ref = HiddenMarkovModel(
            Categorical(probs=start),
            Categorical(probs=per_step),
            Normal(loc, scale),
            num_steps=T - 1,
            time_varying_transition=True,
        )
    post, ref_post = d.posterior(y), ref.posterior(kept)
    np.testing.assert_allclose(
        float(post.log_likelihood), float(ref_post.log_likelihood), rtol=1e-12
    )
    np.testing.assert_allclose(
        np.delete(np.asarray(post.marginals), t, axis=0),
        np.asarray(ref_post.marginals),
        atol=1e-12,
    )


def test_padded_masked_batch_equals_per_series_models(x64):
    rng = np.random.default_rng(3)
    K, T = 2, 9
    start, trans = random_hmm_parameters(rng, K)
    loc, scale = np.array([-1.5, 2.0]), np.array([1.0, 1.5])
    lengths = [9, 4, 1]
    y = np.full((len(lengths), T), np.nan)
    for i, n in enumerate(lengths):
        y[i, :n] = rng.normal(size=n) * 2
    mask = np.isnan(y)
    d = normal_hmm(start, trans, loc, scale, T, mask=mask)
    assert d.batch_shape == (len(lengths),)
    lp = np.asarray(d.log_prob(y))
    marginals = np.asarray(d.posterior_marginals(y).probs)
    assert lp.shape == (len(lengths),) and marginals.shape == (len(lengths), T, K)
    tol = {"rtol": 1e-12, "atol": 1e-10}
    for i, n in enumerate(lengths):
        one = normal_hmm(start, trans, loc, scale, n).posterior(y[i, :n])
        np.testing.assert_allclose(lp[i], float(one.log_likelihood), **tol)
        np.testing.assert_allclose(marginals[i, :n], np.asarray(one.marginals), **tol)
        # past its end a series' states follow the chain from its last filtered state
        last = np.asarray(one.filtered[-1])
        ahead = [last @ np.linalg.matrix_power(trans, h) for h in range(1, T - n + 1)]
        if ahead:
            np.testing.assert_allclose(marginals[i, n:], np.stack(ahead), **tol)
    # a sample dim in front of the panel: two draws of every series
    two = np.stack([y, np.where(mask, np.nan, y + 1.0)])
    both = np.asarray(d.log_prob(two))
    assert both.shape == (2, len(lengths))
    np.testing.assert_allclose(both[0], lp, **tol)


def test_fully_masked_series_scores_zero_and_keeps_the_prior_marginals(x64):
    rng = np.random.default_rng(2)
    K, T = 3, 5
    start, trans = random_hmm_parameters(rng, K)
    d = normal_hmm(start, trans, np.arange(K) * 1.0, 1.0, T, mask=np.ones(T, bool))
    y = np.full(T, np.nan)
    assert abs(float(d.log_prob(y))) < 1e-12
    prior = np.stack([start @ np.linalg.matrix_power(trans, t) for t in range(T)])
    np.testing.assert_allclose(np.asarray(d.posterior_marginals(y).probs), prior, atol=1e-12)


def test_nan_without_mask_is_an_error_naming_series_and_steps():
    d = normal_hmm([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [0.0, 3.0], 1.0, 6)
    y = np.zeros((3, 6))
    y[1, [2, 5]] = np.nan
    with pytest.raises(ValueError, match=r"NaN at series 1: steps 2, 5 .*pass mask="):
        d.log_prob(y)
    with pytest.raises(ValueError, match=r"NaN at series 1: steps 2, 5 .*pass mask="):
        d.log_potentials(y)
    with pytest.raises(ValueError, match=r"NaN at step 4 .*mask="):
        d.posterior_marginals(np.where(np.arange(6) == 4, np.nan, 0.0))
    masked = normal_hmm(
        [0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [0.0, 3.0], 1.0, 6, mask=np.arange(6) == 2
    )
    with pytest.raises(ValueError, match=r"series 1: step 5 where mask= is False"):
        masked.log_prob(y)
    unchecked = normal_hmm(
        [0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [0.0, 3.0], 1.0, 6, validate_args=False
    )
    assert not np.isfinite(np.asarray(unchecked.log_prob(y))[1])  # silently, hence the check


def test_mask_argument_errors():
    args = ([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [0.0, 3.0], 1.0, 4)
    with pytest.raises(TypeError, match=r"`mask` must be a bool array .*got dtype int"):
        normal_hmm(*args, mask=np.array([0, 1, 0, 0]))
    with pytest.raises(ValueError, match=r"`mask` must have shape \[\.\.\., num_steps\] .*\[5\]"):
        normal_hmm(*args, mask=np.zeros(5, bool))
    with pytest.raises(ValueError, match=r"batch dims of `mask` \[3\] do not broadcast .*\[2\]"):
        HiddenMarkovModel(
            Categorical(probs=[[0.5, 0.5], [0.2, 0.8]]),
            Categorical(probs=[[0.9, 0.1], [0.2, 0.8]]),
            Normal([0.0, 3.0], 1.0),
            num_steps=4,
            mask=np.zeros((3, 4), bool),
        )


def test_gradients_do_not_see_masked_placeholders(x64):
    """NaN or out-of-support placeholders at masked steps leave values and gradients finite and
    equal to those of the model that skips the step (Gamma observations: -1 is outside their
    support, NaN is nothing)."""
    start, trans = np.array([0.6, 0.4]), np.array([[0.8, 0.2], [0.3, 0.7]])
    y = np.array([0.5, 2.0, -1.0, np.nan, 1.5])
    mask = np.array([False, False, True, True, False])

    def masked(conc, rate):
        d = HiddenMarkovModel(
            Categorical(probs=start),
            Categorical(probs=trans),
            Gamma(conc, rate),
            num_steps=5,
            mask=mask,
        )
        return d.log_prob(y)

    def skipping(conc, rate):  # steps 3 and 4 dropped: A^3 from step 2 to step 5
        per_step = np.stack([trans, np.linalg.matrix_power(trans, 3)])
        d = HiddenMarkovModel(
            Categorical(probs=start),
            Categorical(probs=per_step),
            Gamma(conc, rate),
            num_steps=3,
            time_varying_transition=True,
        )
        return d.log_prob(y[~mask])

    conc, rate = jnp.array([2.0, 5.0]), jnp.array([1.5, 2.0])
    value, grads = jax.value_and_grad(masked, (0, 1))(conc, rate)
    ref_value, ref_grads = jax.value_and_grad(skipping, (0, 1))(conc, rate)
    np.testing.assert_allclose(float(value), float(ref_value), rtol=1e-12)
    for g, r in zip(grads, ref_grads):
        assert np.all(np.isfinite(np.asarray(g)))
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-10, atol=1e-12)


def test_mask_under_jit_and_vmap(precision):
    start, trans = np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.2, 0.8]])
    y = jnp.array([0.1, -0.3, 2.9, 3.2, 0.4])
    masks = jnp.array([[False] * 5, [True, False, False, False, False], [False] * 3 + [True] * 2])

    def lp(mask, loc):
        return normal_hmm(start, trans, loc, 1.0, 5, mask=mask).log_prob(y)

    loc = jnp.array([0.0, 3.0])
    batched = jax.jit(jax.vmap(lp, (0, None)))(masks, loc)
    looped = [float(lp(np.asarray(m), loc)) for m in masks]
    tol = 1e-12 if precision == "float64" else 1e-5
    np.testing.assert_allclose(np.asarray(batched), looped, rtol=tol)
    grads = jax.vmap(jax.grad(lp, 1), (0, None))(masks, loc)
    assert grads.shape == (3, 2) and np.all(np.isfinite(np.asarray(grads)))
    assert batched.dtype == jnp.dtype(precision)


def test_masked_hmm_in_a_joint_model(x64):
    T = 6
    y = np.array([0.2, np.nan, 2.8, 3.1, np.nan, -0.1])
    mask = np.isnan(y)
    start, trans = np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.2, 0.8]])

    def model():
        mu = yield Normal(np.array([0.0, 3.0]), 1.0, name="mu")
        yield normal_hmm(start, trans, mu, 1.0, T, mask=mask, name="y")

    jd = cm.distributions.JointDistributionCoroutine(model)
    mu = jnp.array([0.1, 2.9])
    hmm = normal_hmm(start, trans, mu, 1.0, T, mask=mask)
    prior = float(Normal(np.array([0.0, 3.0]), 1.0).log_prob(mu).sum())
    np.testing.assert_allclose(float(jd.log_prob(mu=mu, y=y)), prior + float(hmm.log_prob(y)))
    post = jd.discrete_posterior(mu=mu, y=y)
    np.testing.assert_allclose(
        np.asarray(post["y_states"]), np.asarray(hmm.posterior_marginals(y).probs), atol=1e-12
    )


@pytest.mark.slow
def test_nuts_on_a_padded_panel_with_shared_parameters_recovers_the_means():
    """Three series of unequal lengths (padded, tail masked) sharing two regime means."""
    rng = np.random.default_rng(0)
    start, trans = np.array([0.5, 0.5]), np.array([[0.95, 0.05], [0.1, 0.9]])
    true_mu, lengths, T = np.array([-1.0, 1.5]), [120, 80, 40], 120
    y = np.full((3, T), np.nan)
    for i, n in enumerate(lengths):
        z = [rng.choice(2, p=start)]
        for _ in range(n - 1):
            z.append(rng.choice(2, p=trans[z[-1]]))
        y[i, :n] = true_mu[np.array(z)] + rng.normal(size=n)
    mask = np.isnan(y)

    def model():
        mu = yield Normal(np.array([-1.0, 1.0]), 1.0, name="mu")
        yield normal_hmm(start, trans, mu, 1.0, T, mask=mask, name="y")

    post = cm.nuts(
        model,
        observed={"y": y},
        num_chains=2,
        num_warmup=400,
        num_samples=400,
        seed=1,
        progress=False,
    )
    draws = np.asarray(post.samples["mu"])
    summary = post.summary()
    assert float(summary["r_hat"].max()) <= 1.02
    for k in range(2):
        sd = draws[..., k].std()
        mcse = summary.loc[f"mu[{k}]", "mcse_mean"]
        assert abs(draws[..., k].mean() - true_mu[k]) < 4 * np.hypot(sd, mcse), (k, sd)
