"""coromix.markov kernels against brute-force enumeration of all K**T state paths, a plain
(non-custom-VJP) log-space forward recursion, finite differences, and float64 references."""

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import logsumexp as jlogsumexp
from scipy.special import logsumexp

from coromix import markov

# --- references ------------------------------------------------------------------------------


def random_potentials(rng, T, K, time_varying=False, zeros=False, normalized=False):
    """Random log-potentials; ``zeros`` puts -inf in some transitions (every row keeps one
    finite entry) and one observation entry; ``normalized`` makes them log-probabilities."""
    li = rng.normal(size=K)
    lt = rng.normal(size=(T - 1, K, K) if time_varying else (K, K))
    lo = 2.0 * rng.normal(size=(T, K))
    if normalized:
        li = li - logsumexp(li)
        lt = lt - logsumexp(lt, axis=-1, keepdims=True)
    if zeros:
        lt, lo, li = lt.copy(), lo.copy(), li.copy()
        lt[..., 0, 1] = -np.inf
        lo[T // 2, 0] = -np.inf
        if K > 2:
            lt[..., K - 1, 0] = -np.inf
            li[1] = -np.inf
    return li, lt, lo


def enumerate_paths(li, lt, lo):
    """All K**T paths ``[P, T]`` and their log-weights ``[P]`` (float64 NumPy)."""
    T, K = lo.shape
    Z = np.array(list(itertools.product(range(K), repeat=T)), dtype=np.int64).reshape(-1, T)
    score = li[Z[:, 0]] + lo[np.arange(T), Z].sum(axis=1)
    if T > 1:
        ltt = lt if lt.ndim == 3 else np.broadcast_to(lt, (T - 1, K, K))
        score = score + ltt[np.arange(T - 1), Z[:, :-1], Z[:, 1:]].sum(axis=1)
    return Z, score


def brute_log_lik(li, lt, lo):
    return logsumexp(enumerate_paths(li, lt, lo)[1])


def brute_marginals(li, lt, lo):
    T, K = lo.shape
    Z, score = enumerate_paths(li, lt, lo)
    w = np.exp(score - logsumexp(score))
    gamma = np.zeros((T, K))
    for t in range(T):
        np.add.at(gamma[t], Z[:, t], w)
    pair = np.zeros((max(T - 1, 0), K, K))
    for t in range(1, T):
        np.add.at(pair[t - 1], (Z[:, t - 1], Z[:, t]), w)
    return gamma, pair


def brute_mode(li, lt, lo):
    Z, score = enumerate_paths(li, lt, lo)
    return Z[np.argmax(score)]


def plain_forward(li, lt, lo):
    """Textbook log-space forward recursion, differentiated by plain autodiff."""
    T, K = lo.shape
    ltt = lt if lt.ndim == 3 else jnp.broadcast_to(lt, (T - 1, K, K))

    def step(a, x):
        lt_t, lo_t = x
        return jlogsumexp(a[:, None] + lt_t, axis=0) + lo_t, None

    a, _ = jax.lax.scan(step, li + lo[0], (ltt, lo[1:]))
    return jlogsumexp(a)


# (T, K, time-varying transitions, -inf entries)
CASES = [
    (1, 3, False, False),
    (2, 3, True, True),
    (5, 3, False, True),
    (8, 2, False, False),
    (6, 4, True, True),
]

# jitted so that the custom VJP's backward pass is not run op by op
grad_all = jax.jit(jax.grad(markov.forward_log_likelihood, (0, 1, 2)), static_argnums=3)
value_and_grad_all = jax.jit(
    jax.value_and_grad(markov.forward_log_likelihood, (0, 1, 2)), static_argnums=3
)


# --- forward_log_likelihood ------------------------------------------------------------------


@pytest.mark.parametrize("T,K,time_varying,zeros", CASES)
@pytest.mark.parametrize("parallel", [False, True])
def test_log_lik_matches_brute_force(x64, T, K, time_varying, zeros, parallel):
    rng = np.random.default_rng(1000 * T + 10 * K + 2 * time_varying + zeros)
    li, lt, lo = random_potentials(rng, T, K, time_varying, zeros)
    expected = brute_log_lik(li, lt, lo)
    got = markov.forward_log_likelihood(li, lt, lo, parallel=parallel)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(float(got), expected, rtol=0, atol=1e-10)


def test_parallel_equals_sequential(precision):
    """Longer series than brute force allows (gradients: see the posterior-expectation tests)."""
    rng = np.random.default_rng(5)
    tol = 1e-10 if precision == "float64" else 2e-3
    T, tv = (137, True) if precision == "float64" else (500, False)
    li, lt, lo = random_potentials(rng, T, 3, tv, zeros=True, normalized=True)
    seq = markov.forward_log_likelihood(li, lt, lo, parallel=False)
    par = markov.forward_log_likelihood(li, lt, lo, parallel=True)
    assert seq.dtype == par.dtype == jnp.dtype(precision)
    np.testing.assert_allclose(float(par), float(seq), rtol=tol / 10, atol=tol)


def test_parallel_larger_state_space_uses_matmul_path(x64):
    rng = np.random.default_rng(9)
    li, lt, lo = random_potentials(rng, 9, 12, normalized=True)
    seq, g_seq = value_and_grad_all(li, lt, lo, False)
    par, g_par = value_and_grad_all(li, lt, lo, True)
    np.testing.assert_allclose(float(par), float(seq), atol=1e-10)
    for a, b in zip(g_seq, g_par):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-10)


def test_default_parallelism(x64):
    assert markov.default_parallel() == (jax.default_backend() in ("gpu", "cuda", "rocm", "tpu"))
    rng = np.random.default_rng(6)
    li, lt, lo = random_potentials(rng, 10, 3)
    auto = markov.forward_log_likelihood(li, lt, lo, parallel=None)
    explicit = markov.forward_log_likelihood(li, lt, lo, parallel=markov.default_parallel())
    assert float(auto) == float(explicit)
    np.testing.assert_allclose(float(auto), brute_log_lik(li, lt, lo), atol=1e-10)


def test_zero_probabilities_no_nan():  # float32 (float64 is covered by the brute-force tests)
    rng = np.random.default_rng(3)
    li, lt, lo = random_potentials(rng, 30, 3, zeros=True, normalized=True)
    for parallel in (False, True):
        v, g = value_and_grad_all(li, lt, lo, parallel)
        assert np.isfinite(float(v))
        for x in g:
            assert np.all(np.isfinite(np.asarray(x)))
        assert float(g[1][0, 1]) == 0.0 and float(g[0][1]) == 0.0  # impossible moves
        assert float(g[2][0, 1]) == 0.0 and float(g[2][15, 0]) == 0.0  # the marginals
    m = markov.posterior_marginals(li, lt, lo)
    assert np.all(np.isfinite(np.asarray(m)))
    assert float(m[0, 1]) == 0.0 and float(m[15, 0]) == 0.0


def test_impossible_observations_give_minus_inf_without_nan():
    li = jnp.log(jnp.array([0.5, 0.5, 0.0]))
    lt = jnp.log(jnp.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.0, 0.0, 1.0]]))
    lo = jnp.zeros((6, 3)).at[3, :2].set(-jnp.inf)  # only the unreachable state fits y_3
    v, g = value_and_grad_all(li, lt, lo, False)
    assert float(v) == -np.inf
    for x in g:
        assert not np.any(np.isnan(np.asarray(x)))
    assert float(markov.forward_log_likelihood(li, lt, lo, parallel=True)) == -np.inf
    assert not np.any(np.isnan(np.asarray(markov.posterior_marginals(li, lt, lo))))


def test_unnormalized_large_potentials(x64):
    rng = np.random.default_rng(12)
    li, lt, lo = random_potentials(rng, 6, 3, time_varying=True)
    li, lt, lo = li + 300.0, lt + 500.0, lo - 400.0
    for parallel in (False, True):
        np.testing.assert_allclose(
            float(markov.forward_log_likelihood(li, lt, lo, parallel)),
            brute_log_lik(li, lt, lo),
            rtol=1e-13,
            atol=0,
        )


def test_shape_errors():
    with pytest.raises(ValueError, match="log_obs"):
        markov.forward_log_likelihood(jnp.zeros(3), jnp.zeros((3, 3)), jnp.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match="log_init"):
        markov.forward_log_likelihood(jnp.zeros(2), jnp.zeros((3, 3)), jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="log_trans"):
        markov.forward_log_likelihood(jnp.zeros(3), jnp.zeros((4, 3, 3)), jnp.zeros((4, 3)))


# --- gradients -------------------------------------------------------------------------------


@pytest.mark.parametrize("time_varying", [False, True])
def test_gradient_matches_plain_autodiff_and_finite_differences(x64, time_varying):
    """(The parallel variant's gradients are checked against the sequential ones and against
    brute-force posterior expectations below.)"""
    parallel = False
    rng = np.random.default_rng(21 + time_varying)
    T, K = 12, 3
    li, lt, lo = (jnp.asarray(a) for a in random_potentials(rng, T, K, time_varying))
    got = grad_all(li, lt, lo, parallel)
    ref = jax.jit(jax.grad(plain_forward, (0, 1, 2)))(li, lt, lo)
    for a, b in zip(got, ref):
        assert a.shape == b.shape
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)

    f = jax.jit(lambda li, lt, lo: markov.forward_log_likelihood(li, lt, lo, parallel))
    eps = 1e-6
    for arg, g in enumerate(got):
        for idx in list(np.ndindex(g.shape))[:: max(1, g.size // 7)]:
            args = [li, lt, lo]
            plus, minus = list(args), list(args)
            plus[arg] = args[arg].at[idx].add(eps)
            minus[arg] = args[arg].at[idx].add(-eps)
            fd = (float(f(*plus)) - float(f(*minus))) / (2 * eps)
            np.testing.assert_allclose(float(g[idx]), fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("parallel", [False, True])
def test_gradients_are_posterior_expectations(x64, parallel):
    rng = np.random.default_rng(31)
    li, lt, lo = random_potentials(rng, 6, 3, time_varying=True, zeros=True)
    g_init, g_trans, g_obs = grad_all(li, lt, lo, parallel)
    gamma, pair = brute_marginals(li, lt, lo)
    np.testing.assert_allclose(np.asarray(g_obs), gamma, atol=1e-12)
    np.testing.assert_allclose(np.asarray(g_init), gamma[0], atol=1e-12)
    np.testing.assert_allclose(np.asarray(g_trans), pair, atol=1e-12)
    # homogeneous: pairwise posteriors summed over time
    lt_h = lt[0]
    _, g_trans_h, _ = grad_all(li, lt_h, lo, parallel)
    _, pair_h = brute_marginals(li, lt_h, lo)
    np.testing.assert_allclose(np.asarray(g_trans_h), pair_h.sum(0), atol=1e-12)


def test_gradient_cotangent_scaling_and_second_order_reverse(x64):
    rng = np.random.default_rng(41)
    li, lt, lo = (jnp.asarray(a) for a in random_potentials(rng, 7, 3))
    g1 = jax.grad(lambda lo: 3.0 * markov.forward_log_likelihood(li, lt, lo))(lo)
    g2 = jax.grad(lambda lo: 3.0 * plain_forward(li, lt, lo))(lo)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-10)


# --- posterior marginals / mode / samples ----------------------------------------------------


@pytest.mark.parametrize("T,K,time_varying,zeros", CASES)
def test_posterior_marginals_and_mode_match_brute_force(x64, T, K, time_varying, zeros):
    rng = np.random.default_rng(7000 + 1000 * T + 10 * K + 2 * time_varying + zeros)
    li, lt, lo = random_potentials(rng, T, K, time_varying, zeros)
    gamma, _ = brute_marginals(li, lt, lo)
    # (the parallel smoother is also checked through the gradients below; compile it less often)
    for parallel in (False, True) if T == 6 else (False,):
        got = markov.posterior_marginals(li, lt, lo, parallel=parallel)
        assert got.shape == (T, K)
        np.testing.assert_allclose(np.asarray(got), gamma, atol=1e-12)
    mode = markov.posterior_mode(li, lt, lo)
    assert mode.dtype == jnp.int32 and mode.shape == (T,)
    np.testing.assert_array_equal(np.asarray(mode), brute_mode(li, lt, lo))


def test_posterior_mode_float32_long_series():
    """Viterbi keeps its deltas small by shifting; compare float32 with float64 on T = 2000."""
    rng = np.random.default_rng(51)
    li, lt, lo = random_potentials(rng, 2000, 3, normalized=True)
    lo32 = lo.astype(np.float32)
    with jax.enable_x64(True):
        ref = np.asarray(
            markov.posterior_mode(
                li.astype(np.float32).astype(np.float64),
                lt.astype(np.float32).astype(np.float64),
                lo32.astype(np.float64),
            )
        )
    got = np.asarray(markov.posterior_mode(li.astype(np.float32), lt.astype(np.float32), lo32))
    assert np.mean(got == ref) > 0.999


@pytest.mark.parametrize("time_varying", [False, True])
@pytest.mark.parametrize("parallel", [False, True])
def test_posterior_sample_frequencies(x64, time_varying, parallel):
    rng = np.random.default_rng(61 + time_varying)
    T, K, n = 6, 3, 4000
    li, lt, lo = random_potentials(rng, T, K, time_varying, zeros=True)
    gamma, pair = brute_marginals(li, lt, lo)
    draws = markov.posterior_sample(jax.random.key(5), li, lt, lo, (n // 2, 2), parallel=parallel)
    assert draws.shape == (n // 2, 2, T) and draws.dtype == jnp.int32
    z = np.asarray(draws).reshape(n, T)
    freq = np.stack([np.bincount(z[:, t], minlength=K) for t in range(T)]) / n
    se = np.sqrt(gamma * (1 - gamma) / n)
    assert np.all(np.abs(freq - gamma) <= 4 * se + 1.0 / n)
    for t in range(1, T):  # the joint of consecutive states too
        f2 = np.zeros((K, K))
        np.add.at(f2, (z[:, t - 1], z[:, t]), 1.0 / n)
        se2 = np.sqrt(pair[t - 1] * (1 - pair[t - 1]) / n)
        assert np.all(np.abs(f2 - pair[t - 1]) <= 4 * se2 + 1.0 / n)
    assert np.all(freq[gamma == 0] == 0)  # impossible states are never drawn


def test_posterior_sample_single_step_and_int_seed(x64):
    li, lt, lo = random_potentials(np.random.default_rng(0), 1, 3)
    d = markov.posterior_sample(0, li, lt, lo, 3000)
    assert d.shape == (3000, 1)
    gamma, _ = brute_marginals(li, lt, lo)
    freq = np.bincount(np.asarray(d)[:, 0], minlength=3) / 3000
    assert np.all(np.abs(freq - gamma[0]) <= 4 * np.sqrt(gamma[0] * (1 - gamma[0]) / 3000) + 1e-3)


# --- transformations ------------------------------------------------------------------------


def test_jit_vmap_batches_of_series_and_parameters(precision):
    rng = np.random.default_rng(71)
    B, T, K = 4, 20, 3
    pots = [random_potentials(rng, T, K, normalized=True) for _ in range(B)]
    li, lt, lo = (np.stack(x) for x in zip(*pots))
    tol = 1e-10 if precision == "float64" else 1e-4
    ref = [float(markov.forward_log_likelihood(*p)) for p in pots]
    for parallel in (False, True):
        f = jax.jit(jax.vmap(partial(markov.forward_log_likelihood, parallel=parallel)))
        got = f(li, lt, lo)
        assert got.dtype == jnp.dtype(precision)
        np.testing.assert_allclose(np.asarray(got), ref, rtol=tol)
    if precision == "float32":
        return
    # one parameter set, a batch of series
    g = jax.jit(jax.vmap(lambda c: markov.forward_log_likelihood(li[0], lt[0], c)))
    np.testing.assert_allclose(
        np.asarray(g(lo)),
        [float(markov.forward_log_likelihood(li[0], lt[0], c)) for c in lo],
        rtol=tol,
    )
    # grad under vmap and jit
    vgrad = jax.jit(jax.vmap(grad_all, (0, 0, 0, None)), static_argnums=3)
    gr_seq, gr_par = vgrad(li, lt, lo, False), vgrad(li, lt, lo, True)
    for i in range(B):
        gi = grad_all(li[i], lt[i], lo[i], False)
        for a, b, c in zip(gr_seq, gr_par, gi):
            np.testing.assert_allclose(np.asarray(a[i]), np.asarray(c), rtol=tol, atol=tol)
            np.testing.assert_allclose(np.asarray(b[i]), np.asarray(c), rtol=tol, atol=tol)
    m = jax.jit(jax.vmap(markov.posterior_marginals))(li, lt, lo)
    v = jax.jit(jax.vmap(markov.posterior_mode))(li, lt, lo)
    s = jax.jit(jax.vmap(lambda k, a, b, c: markov.posterior_sample(k, a, b, c, 7)))(
        jax.random.split(jax.random.key(0), B), li, lt, lo
    )
    assert m.shape == (B, T, K) and v.shape == (B, T) and s.shape == (B, 7, T)
    for i in range(B):  # the marginals are the gradients with respect to log_obs
        np.testing.assert_allclose(np.asarray(m[i]), np.asarray(gr_seq[2][i]), atol=1e-12)
    np.testing.assert_array_equal(
        np.asarray(v[0]), np.asarray(markov.posterior_mode(li[0], lt[0], lo[0]))
    )


# --- float32 accuracy on long series ---------------------------------------------------------


def gaussian_hmm_log_obs(T, seed):
    """A random 3-state Gaussian HMM series: (log_init, log_trans, log_obs) in float64 NumPy."""
    rng = np.random.default_rng(seed)
    K = 3
    A = rng.dirichlet(np.ones(K), size=K) * 0.15 + 0.85 * np.eye(K)
    mu, sd = np.array([-2.0, 0.5, 3.0]), np.array([1.0, 0.6, 1.5])
    cum = np.cumsum(A, axis=1)
    u = rng.random(T)
    z = np.empty(T, np.int64)
    z[0] = 0
    for t in range(1, T):
        z[t] = min(np.searchsorted(cum[z[t - 1]], u[t]), K - 1)
    y = rng.normal(mu[z], sd[z])
    lo = -0.5 * ((y[:, None] - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)
    return np.full(K, -np.log(K)), np.log(A), lo


def _float32_error(T, parallel):
    li, lt, lo = (a.astype(np.float32) for a in gaussian_hmm_log_obs(T, seed=T % 97))
    with jax.enable_x64(True):
        ref = float(
            markov.forward_log_likelihood(
                li.astype(np.float64), lt.astype(np.float64), lo.astype(np.float64)
            )
        )
    with jax.enable_x64(False):
        got = markov.forward_log_likelihood(
            jnp.asarray(li), jnp.asarray(lt), jnp.asarray(lo), parallel=parallel
        )
        assert got.dtype == jnp.float32
    return abs(float(got) - ref), ref


@pytest.mark.parametrize("parallel", [False, True])
def test_float32_accuracy_T_1e5(parallel):
    err, ref = _float32_error(100_000, parallel)
    assert err < 0.05, (err, ref)


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [False, True])
def test_float32_accuracy_T_1e6(parallel):
    err, ref = _float32_error(1_000_000, parallel)
    assert err < 0.5, (err, ref)


def test_float32_gradient_T_1e5_is_accurate():
    li, lt, lo = (a.astype(np.float32) for a in gaussian_hmm_log_obs(100_000, seed=3))
    with jax.enable_x64(True):
        ref = grad_all(*(a.astype(np.float64) for a in (li, lt, lo)), False)
    with jax.enable_x64(False):
        got = grad_all(li, lt, lo, False)
    np.testing.assert_allclose(np.asarray(got[2]), np.asarray(ref[2]), atol=1e-4)  # marginals
    np.testing.assert_allclose(np.asarray(got[1]), np.asarray(ref[1]), rtol=1e-4)  # counts
