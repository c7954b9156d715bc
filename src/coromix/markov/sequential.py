r"""Sequential kernels (:func:`jax.lax.scan` over time): the scaled forward filter, the backward
smoother, Viterbi and the backward pass of forward-filtering backward-sampling.

Each works on one unbatched series with the shapes of :mod:`coromix.markov` (``log_init [K]``,
``log_trans [K, K]`` or ``[T-1, K, K]``, ``log_obs [T, K]``, ``T >= 2`` unless stated) and is called
by the public functions there; ``time_varying`` says which ``log_trans`` shape was given.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from coromix.markov.common import (
    categorical_from_uniform,
    finite_or_zero,
    kahan_add,
    matvec,
    safe_log,
    safe_normalize,
    scaled_exp,
    vecmat,
)


def _scaled_trans(log_trans: jax.Array, time_varying: bool) -> tuple[jax.Array, jax.Array]:
    """``A_tilde = exp(log A - a)`` with ``a`` the max of each step's matrix, and ``a``."""
    return scaled_exp(log_trans, axes=(1, 2) if time_varying else (0, 1))


def forward_filter(
    log_init: jax.Array,
    log_trans: jax.Array,
    log_obs: jax.Array,
    time_varying: bool,
    keep_messages: bool,
) -> tuple[jax.Array, jax.Array | None]:
    r"""Scaled forward recursion; the only sequential forward pass.

    With :math:`m_t = \max_k \log p(y_t|k)`, :math:`b_t = \exp(\log p(y_t|\cdot) - m_t)` and
    :math:`\tilde A_t = \exp(\log A_t - a_t)`, :math:`a_t = \max \log A_t`:

    .. math::
        u_t = (\hat\alpha_{t-1} \tilde A_t) \odot b_t,\quad s_t = \textstyle\sum_k u_t(k),\quad
        \hat\alpha_t = u_t / s_t,\quad \log c_t = \log s_t + m_t + a_t

    (and :math:`u_1 = \exp(\log\pi - \max\log\pi) \odot b_1`).  Then
    :math:`\hat\alpha_t(k) = p(z_t = k \mid y_{1:t})` and :math:`\log p(y_{1:T}) = \sum_t \log c_t`,
    summed with Kahan compensation.  Returns ``(log_likelihood, alpha_hat [T, K] or None)``
    (``T = 1`` allowed).
    """
    T = log_obs.shape[0]
    dtype = log_obs.dtype
    b, m = scaled_exp(log_obs, axes=(1,))  # [T, K], [T]
    A, a = _scaled_trans(log_trans, time_varying)  # [T-1, K, K], [T-1] or [K, K], []
    p0, i0 = scaled_exp(log_init, axes=(0,))
    u0 = p0 * b[0]
    s0 = jnp.sum(u0)
    alpha0 = safe_normalize(u0)
    total0 = safe_log(s0) + m[0] + i0
    comp0 = jnp.zeros((), dtype)

    def step(carry, x):
        alpha, total, comp = carry
        if time_varying:
            b_t, m_t, A_t, a_t = x
        else:
            (b_t, m_t), A_t, a_t = x, A, a
        u = vecmat(alpha, A_t) * b_t
        s = jnp.sum(u)
        alpha = u / jnp.where(s > 0, s, jnp.ones_like(s))
        total, comp = kahan_add(total, comp, safe_log(s) + m_t + a_t)
        return (alpha, total, comp), (alpha if keep_messages else None)

    if T == 1:
        return total0, (alpha0[None] if keep_messages else None)
    xs = (b[1:], m[1:], A, a) if time_varying else (b[1:], m[1:])
    (_, total, comp), alphas = lax.scan(step, (alpha0, total0, comp0), xs)
    log_lik = total + comp
    if keep_messages:
        alphas = jnp.concatenate([alpha0[None], alphas], axis=0)
    return log_lik, alphas


def smooth(
    alpha: jax.Array, log_trans: jax.Array, time_varying: bool
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""Backward pass on the stored filtered messages :math:`\hat\alpha_t` (from
    :func:`forward_filter`).

    With the one-step predictions :math:`q_t = \hat\alpha_{t-1}\tilde A_t` and
    :math:`r_t = \gamma_t / q_t` (0 where :math:`q_t = 0`), the smoothed marginals are

    .. math::
        \gamma_T = \hat\alpha_T, \qquad \gamma_{t-1} = \hat\alpha_{t-1} \odot (\tilde A_t r_t),

    (each row of the backward kernel :math:`\hat\alpha_{t-1}(i)\tilde A_t(i,j)/q_t(j)` sums to one
    over ``i``, so the recursion is stable) and the pairwise marginals are
    :math:`\xi_t(i,j) = p(z_{t-1}=i, z_t=j\mid y) = \hat\alpha_{t-1}(i)\,\tilde A_t(i,j)\,r_t(j)`.
    Returns ``(gamma [T, K], r [T-1, K], A_tilde)``.
    """
    A, _ = _scaled_trans(log_trans, time_varying)
    tiny = jnp.finfo(alpha.dtype).tiny

    def step(gamma_next, x):
        if time_varying:
            alpha_t, A_next = x
        else:
            alpha_t, A_next = x, A
        # r = gamma / q, 0 where q = 0 (gamma is 0 there too); dividing by max(q, tiny) instead
        # of selecting keeps the loop body short, and r stays finite
        r = gamma_next / jnp.maximum(vecmat(alpha_t, A_next), tiny)
        gamma = alpha_t * matvec(A_next, r)
        gamma = gamma / jnp.maximum(jnp.sum(gamma), tiny)
        return gamma, jnp.stack([gamma, r])

    # The scan emits ONE array per step (gamma and r stacked) and its body has no selects: on XLA
    # CPU a vmapped scan that emits two arrays costs several times one that emits one (4 chains,
    # T = 2000: 1.1 ms against 0.3 ms).
    xs = (alpha[:-1], A) if time_varying else alpha[:-1]
    _, out = lax.scan(step, alpha[-1], xs, reverse=True)
    gammas, rs = out[:, 0], out[:, 1]
    gamma = jnp.concatenate([gammas, alpha[-1:]], axis=0)
    return gamma, rs, A


def viterbi(
    log_init: jax.Array, log_trans: jax.Array, log_obs: jax.Array, time_varying: bool
) -> jax.Array:
    r"""Most probable path by max-product, ``int32 [T]`` (``T = 1`` allowed).

    .. math::
        \delta_1 = \log\pi + \log p(y_1|\cdot),\quad
        \delta_t(j) = \max_i\big[\delta_{t-1}(i) + \log A_t(i,j)\big] + \log p(y_t|j),\quad
        \psi_t(j) = \arg\max_i[\dots]

    with :math:`\delta_t` shifted by its maximum each step (the argmaxes do not change, and the
    numbers stay small in float32); then :math:`z_T = \arg\max\delta_T` and
    :math:`z_{t-1} = \psi_t(z_t)` by a reverse scan.  Ties go to the lowest index.
    """
    T = log_obs.shape[0]

    def shift(d):
        return d - finite_or_zero(jnp.max(d))

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


def backward_sample(
    u: jax.Array, log_alpha: jax.Array, log_trans: jax.Array, time_varying: bool
) -> jax.Array:
    r"""The backward half of forward-filtering backward-sampling: ``n`` paths ``int32 [n, T]``.

    ``u`` ``[T, n]`` are uniforms (one per draw and step) and ``log_alpha`` ``[T, K]`` the log
    filtered marginals :math:`\log\hat\alpha_t` (up to a constant per step):

    .. math::
        z_T \sim \hat\alpha_T,\qquad
        p(z_{t-1} = i\mid z_t, y_{1:T}) \propto \hat\alpha_{t-1}(i)\, A_t(i, z_t).
    """
    T, K = log_alpha.shape
    n = u.shape[1]
    z_T = categorical_from_uniform(jnp.broadcast_to(log_alpha[-1], (n, K)), u[-1])
    if T == 1:
        return z_T[:, None]

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
    return jnp.concatenate([zs, z_T[None]], axis=0).T  # [n, T]
