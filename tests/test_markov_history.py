"""``coromix.markov.history``: the sparse expanded-state forward algorithm and its custom VJP,
against brute force over every path of expanded states (NumPy, float64)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from coromix.markov.history import history_log_likelihood


def random_terms(rng, K, p, T, impossible=False):
    """``log_init [K^p]``, ``psi [T-1, K^p, K]``; ``impossible`` puts -inf in some entries (as
    RegimeSwitching's unreachable first states) and one whole destination column of a step."""
    S = K**p
    log_init = rng.normal(size=S)
    psi = 1.5 * rng.normal(size=(T - 1, S, K))
    if impossible:
        log_init[1::K] = -np.inf
        psi[0, 0, 0] = -np.inf
        psi[(T - 1) // 2, :, K - 1] = -np.inf
    return log_init, psi


def brute(log_init, psi, K):
    """Every path ``e_0, j_1, ..., j_{T-1}`` (``e_t = j_t W + e_{t-1} // K``): log p(y), the
    smoothed first state and the pairwise posteriors ``xi [T-1, S, K]``."""
    S = log_init.shape[0]
    W = S // K
    n = psi.shape[0]
    scores, firsts, moves = [], [], []
    for e0 in range(S):
        for js in itertools.product(range(K), repeat=n):
            e, score, visited = e0, log_init[e0], []
            for t, j in enumerate(js):
                score += psi[t, e, j]
                visited.append((t, e, j))
                e = j * W + e // K
            scores.append(score)
            firsts.append(e0)
            moves.append(visited)
    scores = np.array(scores)
    total = logsumexp(scores)
    w = np.exp(scores - total)
    gamma0 = np.zeros(S)
    xi = np.zeros(psi.shape)
    for weight, e0, visited in zip(w, firsts, moves):
        gamma0[e0] += weight
        for t, e, j in visited:
            xi[t, e, j] += weight
    return total, gamma0, xi


@pytest.mark.parametrize("K, p, T", [(2, 2, 6), (3, 2, 4), (2, 3, 5), (2, 1, 6), (2, 2, 2)])
@pytest.mark.parametrize("impossible", [False, True])
def test_value_and_gradient_equal_brute_force(x64, K, p, T, impossible):
    rng = np.random.default_rng(K * 100 + p * 10 + T)
    log_init, psi = random_terms(rng, K, p, T, impossible)
    total, gamma0, xi = brute(log_init, psi, K)
    value, (g_init, g_psi) = jax.jit(
        jax.value_and_grad(history_log_likelihood, (0, 1)), static_argnums=2
    )(jnp.asarray(log_init), jnp.asarray(psi), K)
    np.testing.assert_allclose(float(value), total, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g_init), gamma0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(g_psi), xi, atol=1e-12)
    assert np.all(np.asarray(g_psi)[np.isneginf(psi)] == 0)


def test_one_step_and_cotangent_scaling(x64):
    rng = np.random.default_rng(1)
    log_init, psi = random_terms(rng, 2, 2, 3)
    value = history_log_likelihood(jnp.asarray(log_init), jnp.zeros((0, 4, 2)), 2)
    np.testing.assert_allclose(float(value), logsumexp(log_init), rtol=1e-14)
    _, vjp = jax.vjp(lambda a, b: history_log_likelihood(a, b, 2), log_init, psi)
    g1 = vjp(jnp.ones(()))
    g3 = vjp(3.0 * jnp.ones(()))
    np.testing.assert_allclose(np.asarray(g3[1]), 3.0 * np.asarray(g1[1]), rtol=1e-14)


def test_batched_float32_and_impossible_data():
    rng = np.random.default_rng(2)
    terms = [random_terms(rng, 2, 3, 30) for _ in range(4)]
    log_init = jnp.asarray(np.stack([t[0] for t in terms]), jnp.float32)
    psi = jnp.asarray(np.stack([t[1] for t in terms]), jnp.float32)
    fn = jax.jit(
        jax.vmap(jax.value_and_grad(history_log_likelihood, (0, 1)), (0, 0, None)), static_argnums=2
    )
    value, (g_init, g_psi) = fn(log_init, psi, 2)
    with jax.enable_x64(True):  # 8 * 2^29 paths: against the float64 kernel
        exact = [float(history_log_likelihood(jnp.asarray(a), jnp.asarray(b), 2)) for a, b in terms]
    np.testing.assert_allclose(np.asarray(value), exact, rtol=2e-6)
    np.testing.assert_allclose(np.asarray(jnp.sum(g_psi, axis=(2, 3))), 1.0, rtol=1e-5)
    # no path: -inf, and finite (zero) gradients
    dead = psi.at[:, 5].set(-jnp.inf)
    value, (g_init, g_psi) = fn(log_init, dead, 2)
    assert np.all(np.isneginf(np.asarray(value)))
    assert np.all(np.isfinite(np.asarray(g_psi))) and np.all(np.isfinite(np.asarray(g_init)))
