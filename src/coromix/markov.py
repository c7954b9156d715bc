r"""Exact sums over a Markov chain of discrete states: forward algorithm, smoothing, Viterbi, FFBS.

Everything here works on *log-potentials*, not on distribution objects.  With ``K`` states and
``T`` steps the inputs are

* ``log_init``  ``[K]``: :math:`\log \pi(z_1)`,
* ``log_trans`` ``[K, K]`` (homogeneous) or ``[T-1, K, K]`` (time-varying):
  :math:`\log A_t(i, j)`, the potential of moving from state ``i`` at step ``t-1`` to ``j`` at ``t``
  (entry ``t-1`` of a time-varying array is used for the move into step ``t``),
* ``log_obs``   ``[T, K]``: :math:`\log p(y_t \mid z_t = k)`,

and the quantity summed out is

.. math::

    \log p(y_{1:T}) = \log \sum_{z_1, \dots, z_T} \exp\Big(\log\pi(z_1) + \sum_{t=2}^{T} \log A_t(z_{t-1}, z_t)
        + \sum_{t=1}^{T} \log p(y_t \mid z_t)\Big),

computed in :math:`O(K^2 T)` work instead of :math:`K^T`.  The potentials need not be normalized
(the formulas hold for any non-negative weights), and ``-inf`` entries (zero probabilities) are
allowed.

Two evaluation strategies:

* **sequential** (default on CPU): a scaled forward recursion in probability space with
  :func:`jax.lax.scan`; per-step log normalizers are added with Kahan compensation, so the float32
  error does not grow like ``T`` (about 0.01 nats at ``T = 1e5``).
* **parallel** (default on GPU/TPU, ``parallel=True``): :func:`jax.lax.associative_scan` over
  max-normalized log-space ``K x K`` matrices, ``O(log T)`` depth and ``O(K^3 T)`` work.

``parallel=None`` picks parallel on ``gpu``/``tpu`` backends and sequential otherwise.

Gradients of :func:`forward_log_likelihood` come from a custom VJP that runs the backward
(smoothing) pass once, storing only ``O(T K)`` forward messages, and returns the exact posterior
expectations (see the function's docstring).

All functions take one unbatched series; use :func:`jax.vmap` for batches of series or parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from coromix.utils import as_key, as_shape, promote_floats

__all__ = [
    "categorical_from_uniform",
    "default_parallel",
    "forward_log_likelihood",
    "posterior_marginals",
    "posterior_mode",
    "posterior_sample",
]

# Up to this many states, products with a K x K matrix are written as broadcast-multiply-sum (much
# faster than a dot for tiny K on CPU) and the parallel log-matmul uses an exact K^3 log-sum-exp.
_SMALL_K = 8


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def default_parallel() -> bool:
    """True when JAX's default backend is an accelerator (``gpu``/``tpu``), where the
    parallel-in-time scan wins; False on CPU, where the sequential recursion is faster."""
    return jax.default_backend() in ("gpu", "cuda", "rocm", "tpu")


def _resolve_parallel(parallel: bool | None) -> bool:
    return default_parallel() if parallel is None else bool(parallel)


def _prepare(log_init, log_trans, log_obs):
    """Promote to one float dtype and check shapes; returns (arrays..., T, K, time_varying)."""
    log_init, log_trans, log_obs = promote_floats(log_init, log_trans, log_obs)
    if log_obs.ndim != 2:
        raise ValueError(
            f"log_obs must have shape [T, K]; got {log_obs.shape} (use jax.vmap for batches)"
        )
    T, K = log_obs.shape
    if T < 1 or K < 1:
        raise ValueError(f"log_obs must have T >= 1 steps and K >= 1 states; got {log_obs.shape}")
    if log_init.shape != (K,):
        raise ValueError(f"log_init must have shape [K] = [{K}]; got {log_init.shape}")
    if log_trans.shape == (K, K):
        time_varying = False
    elif log_trans.shape == (T - 1, K, K):
        time_varying = True
    else:
        raise ValueError(
            f"log_trans must have shape [K, K] = [{K}, {K}] or [T-1, K, K] = "
            f"[{T - 1}, {K}, {K}]; got {log_trans.shape}"
        )
    return log_init, log_trans, log_obs, T, K, time_varying


def _finite_or_zero(x):
    return jnp.where(jnp.isfinite(x), x, jnp.zeros_like(x))


def _scaled_exp(log_x, axes):
    """``exp(log_x - m)`` with ``m`` the max over ``axes`` (0 where that max is not finite)."""
    m = _finite_or_zero(jnp.max(log_x, axis=axes, keepdims=True))
    return jnp.exp(log_x - m), jnp.squeeze(m, axis=axes)


def _vecmat(v, M):
    """``v @ M`` for a vector ``v`` [K] and matrix ``M`` [K, K]."""
    if M.shape[-1] <= _SMALL_K:
        return jnp.sum(v[:, None] * M, axis=0)
    return v @ M


def _matvec(M, v):
    """``M @ v`` for a matrix ``M`` [K, K] and vector ``v`` [K]."""
    if M.shape[-1] <= _SMALL_K:
        return jnp.sum(M * v[None, :], axis=1)
    return M @ v


def _kahan_add(total, comp, y):
    """One step of Kahan compensated summation; a non-finite ``y`` (``-inf``) stays exact."""
    y_c = y - comp
    t = total + y_c
    comp = _finite_or_zero((t - total) - y_c)
    return t, comp


def _safe_normalize(u, axis=-1):
    s = jnp.sum(u, axis=axis, keepdims=True)
    return u / jnp.where(s > 0, s, jnp.ones_like(s))


def _safe_softmax(x, axis=-1):
    m = _finite_or_zero(jnp.max(x, axis=axis, keepdims=True))
    return _safe_normalize(jnp.exp(x - m), axis=axis)


def categorical_from_uniform(logits, u):
    """Inverse-CDF draw from ``Categorical(logits)`` (last axis) with a uniform ``u`` in [0, 1)
    of the batch shape; ``int32``.  States of zero probability (``-inf``) are never returned, even
    when rounding puts ``u * total`` at or past the last cumulative weight."""
    K = logits.shape[-1]
    w = jnp.exp(logits - _finite_or_zero(jnp.max(logits, axis=-1, keepdims=True)))
    c = jnp.cumsum(w, axis=-1)
    z = jnp.sum(c <= u[..., None] * c[..., -1:], axis=-1)
    last = K - 1 - jnp.argmax((w > 0)[..., ::-1], axis=-1)
    return jnp.minimum(z, last).astype(jnp.int32)


def _safe_log(x):
    return jnp.where(x > 0, jnp.log(jnp.where(x > 0, x, jnp.ones_like(x))), -jnp.inf)


# --------------------------------------------------------------------------------------------
# sequential forward filter and backward smoother (probability space, normalized per step)
# --------------------------------------------------------------------------------------------


def _seq_filter(log_init, log_trans, log_obs, time_varying, keep_messages):
    r"""Scaled forward recursion.

    With :math:`m_t = \max_k \log p(y_t|k)`, :math:`b_t = \exp(\log p(y_t|\cdot) - m_t)` and
    :math:`\tilde A_t = \exp(\log A_t - a_t)`, :math:`a_t = \max \log A_t`:

    .. math::
        u_t = (\hat\alpha_{t-1} \tilde A_t) \odot b_t,\quad s_t = \textstyle\sum_k u_t(k),\quad
        \hat\alpha_t = u_t / s_t,\quad \log c_t = \log s_t + m_t + a_t

    (and :math:`u_1 = \exp(\log\pi - \max\log\pi) \odot b_1`).  Then
    :math:`\hat\alpha_t(k) = p(z_t = k \mid y_{1:t})` and :math:`\log p(y_{1:T}) = \sum_t \log c_t`,
    summed with Kahan compensation.  Returns ``(log_likelihood, alpha_hat [T, K] or None)``.
    """
    T = log_obs.shape[0]
    dtype = log_obs.dtype
    b, m = _scaled_exp(log_obs, axes=(1,))  # [T, K], [T]
    if time_varying:
        A, a = _scaled_exp(log_trans, axes=(1, 2))  # [T-1, K, K], [T-1]
    else:
        A, a = _scaled_exp(log_trans, axes=(0, 1))  # [K, K], []
    p0, i0 = _scaled_exp(log_init, axes=(0,))
    u0 = p0 * b[0]
    s0 = jnp.sum(u0)
    alpha0 = _safe_normalize(u0)
    total0 = _safe_log(s0) + m[0] + i0
    comp0 = jnp.zeros((), dtype)

    def step(carry, x):
        alpha, total, comp = carry
        if time_varying:
            b_t, m_t, A_t, a_t = x
        else:
            (b_t, m_t), A_t, a_t = x, A, a
        u = _vecmat(alpha, A_t) * b_t
        s = jnp.sum(u)
        alpha = u / jnp.where(s > 0, s, jnp.ones_like(s))
        total, comp = _kahan_add(total, comp, _safe_log(s) + m_t + a_t)
        return (alpha, total, comp), (alpha if keep_messages else None)

    if T == 1:
        return total0, (alpha0[None] if keep_messages else None)
    xs = (b[1:], m[1:], A, a) if time_varying else (b[1:], m[1:])
    (_, total, comp), alphas = lax.scan(step, (alpha0, total0, comp0), xs)
    log_lik = total + comp
    if keep_messages:
        alphas = jnp.concatenate([alpha0[None], alphas], axis=0)
    return log_lik, alphas


def _seq_smooth(alpha, log_trans, time_varying):
    r"""Backward pass on the stored filtered messages :math:`\hat\alpha_t`.

    With the one-step predictions :math:`q_t = \hat\alpha_{t-1}\tilde A_t` and
    :math:`r_t = \gamma_t / q_t` (0 where :math:`q_t = 0`), the smoothed marginals are

    .. math::
        \gamma_T = \hat\alpha_T, \qquad \gamma_{t-1} = \hat\alpha_{t-1} \odot (\tilde A_t r_t),

    (each row of the backward kernel :math:`\hat\alpha_{t-1}(i)\tilde A_t(i,j)/q_t(j)` sums to one
    over ``i``, so the recursion is stable) and the pairwise marginals are
    :math:`\xi_t(i,j) = p(z_{t-1}=i, z_t=j\mid y) = \hat\alpha_{t-1}(i)\,\tilde A_t(i,j)\,r_t(j)`.
    Returns ``(gamma [T, K], r [T-1, K], A_tilde)``.
    """
    if time_varying:
        A, _ = _scaled_exp(log_trans, axes=(1, 2))
    else:
        A, _ = _scaled_exp(log_trans, axes=(0, 1))
    big = jnp.finfo(alpha.dtype).max

    def step(gamma_next, x):
        if time_varying:
            alpha_t, A_next = x
        else:
            alpha_t, A_next = x, A
        pred_next = _vecmat(alpha_t, A_next)
        r = jnp.where(pred_next > 0, gamma_next / jnp.where(pred_next > 0, pred_next, 1), 0)
        r = jnp.minimum(r, big)
        gamma = _safe_normalize(alpha_t * _matvec(A_next, r))
        return gamma, (gamma, r)

    xs = (alpha[:-1], A) if time_varying else alpha[:-1]
    _, (gammas, rs) = lax.scan(step, alpha[-1], xs, reverse=True)
    gamma = jnp.concatenate([gammas, alpha[-1:]], axis=0)
    return gamma, rs, A


# --------------------------------------------------------------------------------------------
# parallel-in-time (associative scan over log-space matrices)
# --------------------------------------------------------------------------------------------


def _log_matmul(X, Y):
    r"""Batched log-space product :math:`C_{ij} = \log\sum_k \exp(X_{ik} + Y_{kj})`."""
    K = X.shape[-1]
    if K <= _SMALL_K:
        Z = X[..., :, :, None] + Y[..., None, :, :]  # [..., i, k, j]
        mz = _finite_or_zero(jnp.max(Z, axis=-2, keepdims=True))
        return jnp.log(jnp.sum(jnp.exp(Z - mz), axis=-2)) + mz[..., 0, :]
    mx = _finite_or_zero(jnp.max(X, axis=-1, keepdims=True))  # row max of X  [..., i, 1]
    my = _finite_or_zero(jnp.max(Y, axis=-2, keepdims=True))  # col max of Y  [..., 1, j]
    return jnp.log(jnp.exp(X - mx) @ jnp.exp(Y - my)) + mx + my


def _normalize_log_matrix(C):
    mc = _finite_or_zero(jnp.max(C, axis=(-2, -1), keepdims=True))
    return C - mc, mc[..., 0, 0]


def _combine(x, y):
    """Compose two normalized log-matrices ``(N, scale)``: earlier ``x`` then later ``y``."""
    N, s = _normalize_log_matrix(_log_matmul(x[0], y[0]))
    return N, x[1] + y[1] + s


def _combine_reversed(x, y):
    return _combine(y, x)


def _log_elements(log_init, log_trans, log_obs, time_varying):
    """Max-normalized elements ``E_0 = 1 (log_init + log_obs[0])^T`` (identical rows) and
    ``E_t = log_trans_t + log_obs[t]`` (added to every row), with their scales."""
    T, K = log_obs.shape
    E0 = jnp.broadcast_to(log_init + log_obs[0], (1, K, K))
    lt = log_trans if time_varying else jnp.broadcast_to(log_trans, (T - 1, K, K))
    Et = lt + log_obs[1:, None, :]
    return _normalize_log_matrix(jnp.concatenate([E0, Et], axis=0))


def _tree_reduce(combine, elems, identity):
    """Pairwise reduction of ``elems`` (leading axis) with an associative ``combine``."""
    n = elems[0].shape[0]
    size = 1 << max(0, (n - 1).bit_length())
    if size > n:
        pad = [jnp.broadcast_to(i, (size - n,) + i.shape) for i in identity]
        elems = tuple(jnp.concatenate([e, p], axis=0) for e, p in zip(elems, pad))
    while elems[0].shape[0] > 1:
        elems = combine(tuple(e[0::2] for e in elems), tuple(e[1::2] for e in elems))
    return tuple(e[0] for e in elems)


def _identity(K, dtype):
    eye = jnp.where(jnp.eye(K, dtype=bool), jnp.zeros((), dtype), -jnp.inf).astype(dtype)
    return eye, jnp.zeros((), dtype)


def _par_log_lik(log_init, log_trans, log_obs, time_varying):
    K = log_obs.shape[1]
    N, s = _log_elements(log_init, log_trans, log_obs, time_varying)
    N_tot, s_tot = _tree_reduce(_combine, (N, s), _identity(K, log_obs.dtype))
    return jax.nn.logsumexp(N_tot[0]) + s_tot


def _par_filter(log_init, log_trans, log_obs, time_varying):
    """Returns ``(log_likelihood, log alpha_hat [T, K])`` (log filtered marginals) by a prefix scan."""
    N, s = _log_elements(log_init, log_trans, log_obs, time_varying)
    P, sp = lax.associative_scan(_combine, (N, s))
    rows = P[:, 0, :]  # [T, K]
    log_lik = jax.nn.logsumexp(rows[-1]) + sp[-1]
    return log_lik, rows - _finite_or_zero(jax.nn.logsumexp(rows, axis=-1, keepdims=True))


def _par_smooth(log_alpha, log_trans, log_obs, time_varying):
    r"""Smoothed and pairwise marginals from ``log alpha_hat`` by a reverse (suffix) scan giving the
    backward messages :math:`\log\beta_t(i) = \log\sum_j \big(E_{t+1}\cdots E_T\big)_{ij}` up to a
    constant; :math:`\gamma_t \propto \alpha_t\beta_t` and
    :math:`\xi_t(i,j) \propto \alpha_{t-1}(i) A_t(i,j) p(y_t|j) \beta_t(j)`, each normalized to one.
    Returns ``(gamma [T, K], xi [T-1, K, K])``."""
    T, K = log_obs.shape
    N, _ = _log_elements(jnp.zeros((K,), log_obs.dtype), log_trans, log_obs, time_varying)
    Nt = N[1:]  # [T-1, K, K]
    S, _ = lax.associative_scan(_combine_reversed, (Nt[::-1], jnp.zeros((T - 1,), N.dtype)))
    S = S[::-1]  # S[t-1] = E_t ... E_{T-1}
    log_beta = jax.nn.logsumexp(S, axis=-1)  # [T-1, K]: beta_{t-1}, t=1..T-1
    log_beta = jnp.concatenate([log_beta, jnp.zeros((1, K), N.dtype)], axis=0)
    log_beta = log_beta - _finite_or_zero(jnp.max(log_beta, axis=-1, keepdims=True))
    gamma = _safe_softmax(log_alpha + log_beta, axis=-1)
    X = log_alpha[:-1, :, None] + Nt + log_beta[1:, None, :]
    xi = _safe_softmax(X.reshape(T - 1, K * K), axis=-1).reshape(T - 1, K, K)
    return gamma, xi


# --------------------------------------------------------------------------------------------
# forward_log_likelihood with a custom VJP
# --------------------------------------------------------------------------------------------


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _log_lik(log_init, log_trans, log_obs, time_varying, parallel):
    if log_obs.shape[0] == 1:
        return jax.nn.logsumexp(log_init + log_obs[0])
    if parallel:
        return _par_log_lik(log_init, log_trans, log_obs, time_varying)
    return _seq_filter(log_init, log_trans, log_obs, time_varying, keep_messages=False)[0]


def _log_lik_fwd(log_init, log_trans, log_obs, time_varying, parallel):
    if log_obs.shape[0] == 1:
        value = jax.nn.logsumexp(log_init + log_obs[0])
        return value, (log_init, log_trans, log_obs, None)
    if parallel:
        value, messages = _par_filter(log_init, log_trans, log_obs, time_varying)
    else:
        value, messages = _seq_filter(
            log_init, log_trans, log_obs, time_varying, keep_messages=True
        )
    return value, (log_init, log_trans, log_obs, messages)


def _log_lik_bwd(time_varying, parallel, res, g):
    log_init, log_trans, log_obs, messages = res
    if log_obs.shape[0] == 1:
        gamma0 = _safe_softmax(log_init + log_obs[0])
        return g * gamma0, jnp.zeros_like(log_trans), g * gamma0[None]
    gamma, d_trans = _marginals(
        log_init, log_trans, log_obs, time_varying, parallel, messages, pairwise=True
    )
    return g * gamma[0], g * d_trans, g * gamma


_log_lik.defvjp(_log_lik_fwd, _log_lik_bwd)


def _marginals(log_init, log_trans, log_obs, time_varying, parallel, messages, pairwise):
    """Smoothed marginals [T, K] and, if ``pairwise``, the pairwise marginals in ``log_trans``'s
    shape (summed over time for a homogeneous chain).  ``messages`` from the matching filter."""
    if parallel:
        gamma, xi = _par_smooth(messages, log_trans, log_obs, time_varying)
        if not pairwise:
            return gamma, None
        return gamma, (xi if time_varying else jnp.sum(xi, axis=0))
    alpha = messages
    gamma, r, A = _seq_smooth(alpha, log_trans, time_varying)
    if not pairwise:
        return gamma, None
    if time_varying:
        xi = alpha[:-1, :, None] * A * r[:, None, :]
    else:
        # sum_t alpha_{t-1}(i) r_t(j): broadcast-sum for tiny K (faster on CPU), else a matmul
        # (no [T, K, K] intermediate)
        if A.shape[-1] <= _SMALL_K:
            xi = A * jnp.sum(alpha[:-1, :, None] * r[:, None, :], axis=0)
        else:
            xi = A * (alpha[:-1].T @ r)
    return gamma, xi


@partial(jax.jit, static_argnames=("parallel",))
def forward_log_likelihood(
    log_init, log_trans, log_obs, parallel: bool | None = False
) -> jax.Array:
    r"""Log marginal likelihood of a hidden Markov chain, all state paths summed out exactly.

    .. math::

        \log p(y_{1:T}) = \log \sum_{z_{1:T}} \exp\Big(\log\pi(z_1) + \sum_{t=2}^T \log A_t(z_{t-1}, z_t)
            + \sum_{t=1}^T \log p(y_t\mid z_t)\Big)

    Args:
      log_init: ``[K]`` initial log-potentials :math:`\log\pi`.
      log_trans: ``[K, K]`` (homogeneous) or ``[T-1, K, K]`` (time-varying; entry ``t-1`` moves
        into step ``t``) transition log-potentials, row = from, column = to.
      log_obs: ``[T, K]`` observation log-likelihoods per step and state.
      parallel: ``False`` = sequential scaled recursion (:func:`jax.lax.scan`); ``True`` =
        parallel-in-time :func:`jax.lax.associative_scan`; ``None`` = :func:`default_parallel`.

    Returns:
      A scalar of the inputs' common float dtype (``-inf`` when no path has positive weight).

    Gradients (custom VJP, one backward pass over ``O(T K)`` stored messages) are the exact
    posterior expectations:

    * :math:`\partial/\partial \log p(y_t|k) = p(z_t = k\mid y_{1:T})`,
    * :math:`\partial/\partial \log\pi(k) = p(z_1 = k\mid y_{1:T})`,
    * :math:`\partial/\partial \log A_t(i, j) = p(z_{t-1} = i, z_t = j\mid y_{1:T})`, summed over
      ``t`` for a homogeneous ``[K, K]`` matrix.

    Reverse mode only (``jax.grad``, ``jax.vjp``; ``jax.jacfwd``/``jvp`` are not supported).

    Precision: the sequential recursion works in probability space after subtracting the per-step
    maximum of ``log_obs`` and the maximum of ``log_trans``; transition entries more than about 87
    (float32) / 708 (float64) nats below the largest one behave as zero, and a step at which every
    state the chain can reach explains ``y_t`` that much worse than the best state gives ``-inf``.
    The parallel variant works in log space and has no such range limit.
    """
    log_init, log_trans, log_obs, _, _, time_varying = _prepare(log_init, log_trans, log_obs)
    return _log_lik(log_init, log_trans, log_obs, time_varying, _resolve_parallel(parallel))


# --------------------------------------------------------------------------------------------
# posterior marginals, mode and samples
# --------------------------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("parallel",))
def posterior_marginals(log_init, log_trans, log_obs, parallel: bool | None = False) -> jax.Array:
    r"""Smoothed marginals :math:`\gamma_t(k) = p(z_t = k\mid y_{1:T})`, shape ``[T, K]``.

    Forward-backward: the scaled forward filter :math:`\hat\alpha_t(k) = p(z_t = k\mid y_{1:t})`,
    then the backward recursion :math:`\gamma_{t-1} = \hat\alpha_{t-1}\odot\tilde A_t
    (\gamma_t / (\hat\alpha_{t-1}\tilde A_t))`; every row is normalized to sum to one.  With
    ``parallel=True`` both passes are associative scans in log space.  Rows are all zero if the
    observations have zero likelihood.
    """
    log_init, log_trans, log_obs, T, _, time_varying = _prepare(log_init, log_trans, log_obs)
    parallel = _resolve_parallel(parallel)
    if T == 1:
        return _safe_softmax(log_init + log_obs[0])[None]
    if parallel:
        _, messages = _par_filter(log_init, log_trans, log_obs, time_varying)
    else:
        _, messages = _seq_filter(log_init, log_trans, log_obs, time_varying, keep_messages=True)
    gamma, _ = _marginals(
        log_init, log_trans, log_obs, time_varying, parallel, messages, pairwise=False
    )
    return gamma


@jax.jit
def posterior_mode(log_init, log_trans, log_obs) -> jax.Array:
    r"""Most probable state path (Viterbi), ``int32 [T]``.

    .. math::
        \delta_1 = \log\pi + \log p(y_1|\cdot),\quad
        \delta_t(j) = \max_i\big[\delta_{t-1}(i) + \log A_t(i,j)\big] + \log p(y_t|j),\quad
        \psi_t(j) = \arg\max_i[\dots]

    with :math:`\delta_t` shifted by its maximum each step (the argmaxes do not change, and the
    numbers stay small in float32); then :math:`z_T = \arg\max\delta_T` and
    :math:`z_{t-1} = \psi_t(z_t)` by a reverse :func:`jax.lax.scan`.  Ties go to the lowest index.
    """
    log_init, log_trans, log_obs, T, _, time_varying = _prepare(log_init, log_trans, log_obs)

    def shift(d):
        return d - _finite_or_zero(jnp.max(d))

    delta0 = shift(log_init + log_obs[0])
    if T == 1:
        return jnp.argmax(delta0)[None].astype(jnp.int32)

    def step(delta, x):
        if time_varying:
            lo_t, lt_t = x
        else:
            lo_t, lt_t = x, log_trans
        scores = delta[:, None] + lt_t  # [from, to]
        psi = jnp.argmax(scores, axis=0).astype(jnp.int32)
        delta = shift(jnp.max(scores, axis=0) + lo_t)
        return delta, psi

    xs = (log_obs[1:], log_trans) if time_varying else log_obs[1:]
    delta_T, psis = lax.scan(step, delta0, xs)
    z_T = jnp.argmax(delta_T).astype(jnp.int32)

    def back(z, psi):
        z_prev = psi[z]
        return z_prev, z_prev

    _, path = lax.scan(back, z_T, psis, reverse=True)
    return jnp.concatenate([path, z_T[None]])


def posterior_sample(
    key,
    log_init,
    log_trans,
    log_obs,
    sample_shape: int | Sequence[int] = (),
    parallel: bool | None = False,
) -> jax.Array:
    r"""Exact draws of the whole path from :math:`p(z_{1:T}\mid y_{1:T})`, ``int32
    sample_shape + [T]``, by forward filtering, backward sampling:

    .. math::
        z_T \sim \hat\alpha_T,\qquad
        p(z_{t-1} = i\mid z_t, y_{1:T}) \propto \hat\alpha_{t-1}(i)\, A_t(i, z_t).

    All ``prod(sample_shape)`` paths share one forward pass; the backward pass draws them together.
    ``key`` is a JAX PRNG key (or an int seed).
    """
    return _posterior_sample(
        as_key(key),
        log_init,
        log_trans,
        log_obs,
        as_shape(sample_shape),
        _resolve_parallel(parallel),
    )


@partial(jax.jit, static_argnums=(4, 5))
def _posterior_sample(key, log_init, log_trans, log_obs, sample_shape, parallel):
    log_init, log_trans, log_obs, T, K, time_varying = _prepare(log_init, log_trans, log_obs)
    n = int(np.prod(sample_shape, dtype=np.int64))
    if T == 1:
        log_alpha = jax.nn.log_softmax(log_init + log_obs[0])[None]
    elif parallel:
        _, log_alpha = _par_filter(log_init, log_trans, log_obs, time_varying)
    else:
        _, alpha = _seq_filter(log_init, log_trans, log_obs, time_varying, keep_messages=True)
        log_alpha = _safe_log(alpha)
    u = jax.random.uniform(key, (T, n), log_obs.dtype)  # one uniform per draw and step
    z_T = categorical_from_uniform(jnp.broadcast_to(log_alpha[-1], (n, K)), u[-1])
    if T == 1:
        return z_T.reshape(sample_shape + (1,))

    def back(z, x):
        if time_varying:
            u_t, la, lt_next = x
        else:
            (u_t, la), lt_next = x, log_trans
        logits = la[None, :] + lt_next[:, z].T  # [n, K]
        z_prev = categorical_from_uniform(logits, u_t)
        return z_prev, z_prev

    xs = (u[:-1], log_alpha[:-1], log_trans) if time_varying else (u[:-1], log_alpha[:-1])
    _, zs = lax.scan(back, z_T, xs, reverse=True)  # [T-1, n]
    paths = jnp.concatenate([zs, z_T[None]], axis=0).T  # [n, T]
    return paths.reshape(sample_shape + (T,))
