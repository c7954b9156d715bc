r"""The forward algorithm over the expanded states of a chain whose steps see the last ``p``
regimes (:class:`~coromix.distributions.RegimeSwitching` with ``history=p``), using that each
expanded state has only ``K`` predecessors and ``K`` successors, with its gradient by one backward
pass (the pairwise posterior), :math:`O(K^{p+1} T)` work each.

Expanded states: ``e = j W + r`` with ``j`` the newest regime and ``r`` the ``p - 1`` before it
(``W = K^(p-1)``, ``S = K^p`` states); the predecessors of ``e`` are ``e' = r K + d`` over the
oldest regime ``d`` of ``e'``.  ``psi[t-1, e', j]`` is the log-potential of moving from ``e'`` to
``(j, newer p - 1 regimes of e')`` at step ``t`` (``-inf`` for impossible ones); ``log_init [S]``
the first step's.  One unbatched series; ``jax.vmap`` for panels and chains.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from coromix.markov.common import kahan_add, safe_log, safe_normalize, scaled_exp


def _weights(psi: jax.Array, K: int) -> tuple[jax.Array, jax.Array]:
    """``psi [T-1, S, K]`` as scaled weights ``w [T-1, W, K, K]`` (``[t, r, d, j]``, largest entry
    of each step 1) and each step's scale ``m [T-1]``: ``psi = log w + m``."""
    n, S, _ = psi.shape
    return scaled_exp(psi.reshape(n, S // K, K, K), axes=(1, 2, 3))


def _forward(log_init: jax.Array, w: jax.Array, m: jax.Array, K: int, keep: bool):
    r"""Scaled forward filter: ``(log p(y), alpha_hat [T-1, S] (steps 1.. T-1) or None, alpha_0)``.

    .. math::
        u_t(j, r) = \sum_d \hat\alpha_{t-1}(rK + d)\, w_t(r, d, j),\quad s_t = \sum u_t,\quad
        \hat\alpha_t(jW + r) = u_t(j, r) / s_t,\quad \log p(y) = \log\textstyle\sum e^{\ell_0}
        + \sum_t (\log s_t + m_t)
    """
    S = log_init.shape[-1]
    W = S // K
    u0, top = scaled_exp(log_init, axes=(0,))
    total0 = safe_log(jnp.sum(u0)) + top
    alpha0 = safe_normalize(u0)

    def step(carry, x):
        alpha, total, comp = carry
        w_t, m_t = x
        u = jnp.sum(alpha.reshape(W, K, 1) * w_t, axis=1)  # [r, j]
        s = jnp.sum(u)
        alpha = (u / jnp.where(s > 0, s, jnp.ones_like(s))).T.reshape(S)
        total, comp = kahan_add(total, comp, safe_log(s) + m_t)
        return (alpha, total, comp), (alpha if keep else None)

    zero = jnp.zeros((), total0.dtype)
    (_, total, comp), alphas = lax.scan(step, (alpha0, total0, zero), (w, m))
    return total + comp, alphas, alpha0


def _pairwise(alpha_prev: jax.Array, w: jax.Array, gamma_last: jax.Array, K: int):
    r"""The backward pass: ``(xi [T-1, W, K, K], gamma_0 [S])`` with
    :math:`\xi_t(r, d, j) = p(e_{t-1} = rK + d,\ s_t = j \mid y)` and :math:`\gamma_0` the
    smoothed first expanded state, from the filtered :math:`\hat\alpha_0 .. \hat\alpha_{T-2}`
    (``alpha_prev [T-1, S]``) and :math:`\gamma_{T-1} = \hat\alpha_{T-1}`.

    With :math:`u_t` as in the forward pass and :math:`\rho_t = \gamma_t / u_t` (0 where
    :math:`u_t = 0`), :math:`\xi_t(r, d, j) = \hat\alpha_{t-1}(rK+d)\, w_t(r, d, j)\, \rho_t(j, r)`
    and :math:`\gamma_{t-1}(rK + d) = \sum_j \xi_t(r, d, j)`.  The scan carries
    :math:`\gamma_t` and emits only :math:`\rho_t` (one array: see
    :func:`coromix.markov.sequential.smooth`).
    """
    S = gamma_last.shape[-1]
    W = S // K
    tiny = jnp.finfo(w.dtype).tiny

    def step(gamma, x):
        alpha_p, w_t = x
        a = alpha_p.reshape(W, K, 1)
        u = jnp.sum(a * w_t, axis=1)  # [r, j]
        rho = gamma.reshape(K, W).T / jnp.maximum(u, tiny)  # [r, j]
        g = (a[..., 0] * jnp.sum(w_t * rho[:, None, :], axis=-1)).reshape(S)
        return g / jnp.maximum(jnp.sum(g), tiny), rho

    _, rho = lax.scan(step, gamma_last, (alpha_prev, w), reverse=True)
    xi = alpha_prev.reshape(alpha_prev.shape[0], W, K, 1) * w * rho[:, :, None, :]
    xi = xi / jnp.maximum(jnp.sum(xi, axis=(1, 2, 3), keepdims=True), tiny)
    gamma0 = safe_normalize(jnp.sum(xi[0], axis=-1).reshape(S))
    return xi, gamma0


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _log_lik(log_init, psi, num_regimes):
    w, m = _weights(psi, num_regimes)
    return _forward(log_init, w, m, num_regimes, keep=False)[0]


def _log_lik_fwd(log_init, psi, num_regimes):
    w, m = _weights(psi, num_regimes)
    value, alphas, alpha0 = _forward(log_init, w, m, num_regimes, keep=True)
    return value, (w, alphas, alpha0)


def _log_lik_bwd(num_regimes, res, g):
    w, alphas, alpha0 = res
    alpha_prev = jnp.concatenate([alpha0[None], alphas[:-1]], axis=0)
    xi, gamma0 = _pairwise(alpha_prev, w, alphas[-1], num_regimes)
    n, S = alpha_prev.shape
    return g * gamma0, g * xi.reshape(n, S, num_regimes)


_log_lik.defvjp(_log_lik_fwd, _log_lik_bwd)


def history_log_likelihood(log_init: jax.Array, psi: jax.Array, num_regimes: int) -> jax.Array:
    r"""``log p(y)``: all regime paths summed out over the expanded states (see the module).

    .. math::
        \log p(y) = \log \sum_{e_0, \dots, e_{T-1}} \exp\Big(\ell_0(e_0)
            + \sum_{t \ge 1} \psi_t(e_{t-1}, j_t)\Big)

    over the paths whose consecutive states agree on their shared regimes.  Gradients (custom
    VJP, one backward pass): :math:`\partial/\partial\ell_0(e) = p(e_0 = e \mid y)` and
    :math:`\partial/\partial\psi_t(e', j) = p(e_{t-1} = e', s_t = j \mid y)`.  Reverse mode only.

    Args:
      log_init: ``[S]`` the first step's log-potentials over the expanded states.
      psi: ``[T-1, S, K]`` the log-potentials of the later steps (``T - 1 = 0`` allowed).
      num_regimes: ``K``.

    Returns:
      A scalar (``-inf`` when no path has positive weight).

    >>> import math, jax, jax.numpy as jnp
    >>> from coromix.markov.history import history_log_likelihood
    >>> log_init = jnp.log(jnp.array([0.5, 0.0, 0.5, 0.0]))  # p = 2, K = 2: e_0 = (s_0, -)
    >>> psi = jnp.log(jnp.full((3, 4, 2), 0.5))  # p(s_t | s_t-1, s_t-2) = 1/2, no observations
    >>> float(history_log_likelihood(log_init, psi, 2))  # the path probabilities sum to one
    0.0
    >>> psi = psi.at[..., 1].add(math.log(0.3))  # regime 1 explains each y_t 0.3 as well as 0
    >>> float(history_log_likelihood(log_init, psi, 2)), 3 * math.log(0.5 + 0.5 * 0.3)
    (-1.2923..., -1.2923...)
    >>> jax.grad(history_log_likelihood, 1)(log_init, psi, 2)[0].round(4)  # p(e_0, s_1 | y)
    Array([[0.3846, 0.1154],
           [0.    , 0.    ],
           [0.3846, 0.1154],
           [0.    , 0.    ]], dtype=float32)
    """
    if psi.shape[0] == 0:
        u0, top = scaled_exp(log_init, axes=(0,))
        return safe_log(jnp.sum(u0)) + top
    return _log_lik(log_init, psi, int(num_regimes))
