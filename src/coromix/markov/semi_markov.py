r"""Exact sums over a semi-Markov chain of regimes with explicit durations, in ``O(T K E)`` work.

A hidden semi-Markov model stays in regime ``k`` for a duration :math:`d\sim p_k` on
``1..D``, then moves to a regime :math:`j \ne k` with probability :math:`A(k, j)` (a zero
diagonal), and so on; the observations depend on the current regime.  The kernels here work on
the *expanded* chain of pairs ``(regime k, elapsed e)``, ``e`` = steps spent in the current
segment so far (``e = 1`` at its first step), whose transitions are sparse: each pair has at most
``K`` successors,

.. math::
    (k, e) \to (k, e + 1) \text{ with } \frac{S_k(e + 1)}{S_k(e)},\qquad
    (k, e) \to (j, 1) \text{ with } h_k(e)\,A(k, j),\qquad
    S_k(e) = \sum_{d \ge e} p_k(d),\quad h_k(e) = \frac{p_k(e)}{S_k(e)},

with :math:`(k, 1)` drawn from :math:`\pi` at the first step.  A regime path :math:`z_{1:T}` fixes
the segments (runs of one regime, since a regime never follows itself) and so the elapsed path;
the product of its expanded transitions telescopes to

.. math::
    p(z_{1:T}) = \pi(z_1)\prod_{\text{segments } s < \text{last}} p_{k_s}(d_s)\,A(k_s, k_{s+1})
        \cdot S_{k_\text{last}}(d_\text{last}),

the last segment *right-censored* at ``T`` (its duration is at least the steps it has in the
data).  Hence the forward algorithm over the pairs gives :math:`\log p(y_{1:T})`, the Viterbi path
of the pairs is the most probable regime path, and backward sampling of the pairs draws exact
regime paths.  The elapsed time never exceeds ``T``, so only ``E = min(D, T)`` values of ``e``
are tracked (:func:`duration_potentials`): ``O(T K E + T K^2)`` work, not the ``O(T (K D)^2)`` of
a dense expanded chain.

Inputs (one series, unbatched; ``jax.vmap`` for batches): ``log_init [K]``, ``log_trans [K, K]``
(rows log-normalized, ``-inf`` diagonal), ``log_stay, log_end [K, E]`` from
:func:`duration_potentials`, ``log_obs [T, K]``.

>>> import jax.numpy as jnp
>>> from coromix.markov import semi_markov
>>> log_dur = jnp.log(jnp.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]))   # p_k(1), p_k(2), p_k(3)
>>> stay, end = semi_markov.duration_potentials(log_dur, num_steps=4)
>>> jnp.exp(end).tolist()     # hazards h_k(e): p_k(e) / S_k(e)
[[0.2, 0.625, 1.0], [0.6, 0.75, 1.0]]
>>> log_trans = jnp.log(jnp.array([[0.0, 1.0], [1.0, 0.0]]))
>>> semi_markov.log_likelihood(jnp.log(jnp.array([0.5, 0.5])), log_trans, stay, end,
...                            jnp.zeros((4, 2)))   # no observations: the paths sum to one
Array(0., dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from coromix.markov.api import MarkovPosterior
from coromix.markov.common import (
    categorical_from_uniform,
    finite_or_zero,
    kahan_add,
    safe_log,
    safe_normalize,
    scaled_exp,
    vecmat,
)
from coromix.utils import Shape, as_key, as_shape, promote_floats

__all__ = [
    "duration_potentials",
    "forward_filter",
    "log_likelihood",
    "posterior",
    "posterior_mode",
    "posterior_sample",
    "predict",
]


def duration_potentials(log_dur: jax.Array, num_steps: int) -> tuple[jax.Array, jax.Array]:
    r"""``(log_stay, log_end)`` ``[..., K, E]``, ``E = min(D, num_steps)``, from the duration
    log-probabilities ``log_dur`` ``[..., K, D]`` (entry ``d - 1`` is :math:`\log p_k(d)`,
    normalized over ``1..D``).

    With the survivor :math:`S_k(e) = \sum_{d\ge e} p_k(d)`, column ``e - 1`` holds
    :math:`\log S_k(e+1) - \log S_k(e)` (stay one more step) and
    :math:`\log p_k(e) - \log S_k(e)` (end the segment after ``e`` steps); both are ``-inf``
    where :math:`S_k(e) = 0` (elapsed times that cannot occur), and staying past ``D`` is
    ``-inf``.  Elapsed times past ``num_steps`` are dropped: no segment of the data reaches them.

    >>> import jax.numpy as jnp
    >>> stay, end = duration_potentials(jnp.log(jnp.array([[0.5, 0.25, 0.25]])), num_steps=2)
    >>> jnp.exp(stay), jnp.exp(end)
    (Array([[0.5, 0.5]], dtype=float32), Array([[0.5, 0.5]], dtype=float32))
    """
    D = log_dur.shape[-1]
    # log S(e) for e = 1..D+1 (S(D + 1) = 0), as a reverse cumulative log-sum-exp
    log_surv = jnp.flip(lax.cumlogsumexp(jnp.flip(log_dur, -1), axis=log_dur.ndim - 1), -1)
    tail = jnp.full(log_dur.shape[:-1] + (1,), -jnp.inf, log_dur.dtype)
    log_surv = jnp.concatenate([log_surv, tail], axis=-1)
    reachable = log_surv[..., :D] > -jnp.inf
    denom = jnp.where(reachable, log_surv[..., :D], 0.0)
    log_stay = jnp.where(reachable, log_surv[..., 1:] - denom, -jnp.inf)
    log_end = jnp.where(reachable, log_dur - denom, -jnp.inf)
    E = min(D, int(num_steps))
    return log_stay[..., :E], log_end[..., :E]


def _prepare(log_init, log_trans, log_stay, log_end, log_obs):
    log_init, log_trans, log_stay, log_end, log_obs = promote_floats(
        log_init, log_trans, log_stay, log_end, log_obs
    )
    if log_obs.ndim != 2:
        raise ValueError(
            f"log_obs must have shape [T, K]; got {log_obs.shape} (use jax.vmap for batches)"
        )
    T, K = log_obs.shape
    if log_init.shape != (K,) or log_trans.shape != (K, K):
        raise ValueError(
            f"log_init must have shape [K] = [{K}] and log_trans [K, K]; got "
            f"{log_init.shape} and {log_trans.shape}"
        )
    if log_stay.ndim != 2 or log_stay.shape[0] != K or log_stay.shape != log_end.shape:
        raise ValueError(
            f"log_stay and log_end must have one shape [K, E] = [{K}, E]; got "
            f"{log_stay.shape} and {log_end.shape}"
        )
    if log_stay.shape[1] > T:
        raise ValueError(
            f"log_stay/log_end track E = {log_stay.shape[1]} elapsed times, more than the "
            f"{T} steps; use duration_potentials(log_dur, num_steps={T})"
        )
    return log_init, log_trans, log_stay, log_end, log_obs


def _advance(alpha: jax.Array, A: jax.Array, stay: jax.Array, end: jax.Array) -> jax.Array:
    """One step of the expanded chain (no observation): ``[K, E]`` weights moved forward."""
    new = vecmat(jnp.sum(alpha * end, axis=1), A)  # segments that end, into their next regime
    return jnp.concatenate([new[:, None], alpha[:, :-1] * stay[:, :-1]], axis=1)


def forward_filter(
    log_init: jax.Array,
    log_trans: jax.Array,
    log_stay: jax.Array,
    log_end: jax.Array,
    log_obs: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    r"""Scaled forward recursion over the pairs: ``(log_likelihood, alpha [T, K, E])``.

    :math:`\hat\alpha_t(k, e) = p(z_t = k, e_t = e\mid y_{1:t})`, from

    .. math::
        u_t(j, 1) = b_t(j)\sum_{k} A(k, j)\sum_e \hat\alpha_{t-1}(k, e)\,h_k(e),\qquad
        u_t(k, e + 1) = b_t(k)\,\hat\alpha_{t-1}(k, e)\,\frac{S_k(e+1)}{S_k(e)},

    :math:`b_t = \exp(\log p(y_t\mid\cdot) - m_t)`, :math:`\hat\alpha_t = u_t / s_t`,
    :math:`\log p(y_{1:T}) = \sum_t (\log s_t + m_t)` (Kahan-compensated); transitions and
    durations are probabilities (``<= 1``), so only the observations are rescaled.

    >>> import jax.numpy as jnp
    >>> stay, end = duration_potentials(jnp.log(jnp.array([[0.5, 0.5], [1.0, 0.0]])), 3)
    >>> ll, alpha = forward_filter(jnp.log(jnp.array([1.0, 0.0])),
    ...                            jnp.log(jnp.array([[0.0, 1.0], [1.0, 0.0]])), stay, end,
    ...                            jnp.zeros((3, 2)))
    >>> alpha.sum(-1)    # p(z_t): regime 0 for one or two steps, then regime 1 for one
    Array([[1. , 0. ],
           [0.5, 0.5],
           [0.5, 0.5]], dtype=float32)
    """
    log_init, log_trans, log_stay, log_end, log_obs = _prepare(
        log_init, log_trans, log_stay, log_end, log_obs
    )
    K, E = log_stay.shape
    b, m = scaled_exp(log_obs, axes=(1,))
    A, stay, end = jnp.exp(log_trans), jnp.exp(log_stay), jnp.exp(log_end)
    p0, i0 = scaled_exp(log_init, axes=(0,))
    u0 = jnp.zeros((K, E), b.dtype).at[:, 0].set(p0 * b[0])
    s0 = jnp.sum(u0)
    alpha0 = safe_normalize(u0.reshape(-1)).reshape(K, E)
    total0 = safe_log(s0) + m[0] + i0

    def step(carry, x):
        alpha, total, comp = carry
        b_t, m_t = x
        u = _advance(alpha, A, stay, end) * b_t[:, None]
        s = jnp.sum(u)
        alpha = u / jnp.where(s > 0, s, jnp.ones_like(s))
        total, comp = kahan_add(total, comp, safe_log(s) + m_t)
        return (alpha, total, comp), alpha

    carry0 = (alpha0, total0, jnp.zeros((), b.dtype))
    (_, total, comp), alphas = lax.scan(step, carry0, (b[1:], m[1:]))
    return total + comp, jnp.concatenate([alpha0[None], alphas], axis=0)


@jax.jit
def log_likelihood(
    log_init: jax.Array,
    log_trans: jax.Array,
    log_stay: jax.Array,
    log_end: jax.Array,
    log_obs: jax.Array,
) -> jax.Array:
    r""":math:`\log p(y_{1:T})`, every segmentation and regime path summed out (the last segment
    censored at ``T``); differentiable by reverse-mode autodiff through the filter.

    >>> import jax.numpy as jnp
    >>> stay, end = duration_potentials(jnp.log(jnp.array([[0.5, 0.5], [1.0, 0.0]])), 2)
    >>> float(log_likelihood(jnp.log(jnp.array([1.0, 0.0])),
    ...                      jnp.log(jnp.array([[0.0, 1.0], [1.0, 0.0]])), stay, end,
    ...                      jnp.log(jnp.array([[0.5, 0.1], [0.2, 0.4]]))))  # log 0.15
    -1.8971...
    """
    return forward_filter(log_init, log_trans, log_stay, log_end, log_obs)[0]


@jax.jit
def posterior(
    log_init: jax.Array,
    log_trans: jax.Array,
    log_stay: jax.Array,
    log_end: jax.Array,
    log_obs: jax.Array,
) -> MarkovPosterior:
    r"""Log-likelihood, smoothed and filtered regime marginals: a
    :class:`~coromix.markov.MarkovPosterior` (``marginals``, ``filtered`` ``[T, K]``).

    The smoothed marginals are the gradient of the log-likelihood with respect to ``log_obs``,

    .. math::
        p(z_t = k\mid y_{1:T}) = \frac{\partial \log p(y_{1:T})}{\partial \log p(y_t\mid k)},

    one reverse-mode pass through the forward filter (the backward recursion, derived by JAX);
    the filtered ones sum :math:`\hat\alpha_t(k, e)` over ``e``.  Rows are zero where the
    observations have zero likelihood.

    >>> import jax.numpy as jnp
    >>> stay, end = duration_potentials(jnp.log(jnp.array([[0.5, 0.5], [1.0, 0.0]])), 2)
    >>> post = posterior(jnp.log(jnp.array([1.0, 0.0])),
    ...                  jnp.log(jnp.array([[0.0, 1.0], [1.0, 0.0]])), stay, end,
    ...                  jnp.log(jnp.array([[0.5, 0.1], [0.2, 0.4]])))
    >>> post.marginals   # z_2 = 1 with weight .5 * .4 against .5 * .2
    Array([[1.    , 0.    ],
           [0.3333, 0.6667]], dtype=float32)
    """

    def value_and_alpha(lo):
        return forward_filter(log_init, log_trans, log_stay, log_end, lo)

    (log_lik, alpha), gamma = jax.value_and_grad(value_and_alpha, has_aux=True)(
        jnp.asarray(log_obs)
    )
    ok = jnp.isfinite(log_lik)
    gamma = jnp.where(ok, gamma, 0.0)
    return MarkovPosterior(log_lik, gamma, jnp.where(ok, jnp.sum(alpha, axis=-1), 0.0))


@jax.jit
def posterior_mode(
    log_init: jax.Array,
    log_trans: jax.Array,
    log_stay: jax.Array,
    log_end: jax.Array,
    log_obs: jax.Array,
) -> jax.Array:
    r"""The most probable regime path :math:`\arg\max_{z_{1:T}} p(z_{1:T}\mid y_{1:T})`, ``int32
    [T]``, by max-product over the pairs (a regime path and its pair path determine each other,
    so this is the mode over regime paths, the last segment censored).

    .. math::
        \delta_t(j, 1) = \max_{k, e}\big[\delta_{t-1}(k, e) + \log h_k(e) + \log A(k, j)\big]
            + \log p(y_t|j),\qquad
        \delta_t(k, e+1) = \delta_{t-1}(k, e) + \log\tfrac{S_k(e+1)}{S_k(e)} + \log p(y_t|k),

    then back-tracking (a continued segment's predecessor is fixed; a new one's is the stored
    argmax).  Ties go to the lowest index.

    >>> import jax.numpy as jnp
    >>> stay, end = duration_potentials(jnp.log(jnp.array([[0.1, 0.9], [0.5, 0.5]])), 3)
    >>> posterior_mode(jnp.log(jnp.array([0.5, 0.5])),
    ...                jnp.log(jnp.array([[0.0, 1.0], [1.0, 0.0]])), stay, end,
    ...                jnp.zeros((3, 2)))   # 0 0 1 has prior .5 * .9 (1 segment of 2, then 1+)
    Array([0, 0, 1], dtype=int32)
    """
    log_init, log_trans, log_stay, log_end, log_obs = _prepare(
        log_init, log_trans, log_stay, log_end, log_obs
    )
    T = log_obs.shape[0]
    K, E = log_stay.shape

    def shift(d):
        return d - finite_or_zero(jnp.max(d))

    delta0 = jnp.full((K, E), -jnp.inf, log_obs.dtype).at[:, 0].set(log_init + log_obs[0])
    delta0 = shift(delta0)

    def step(delta, lo_t):
        ending = delta + log_end
        best_e = jnp.argmax(ending, axis=1).astype(jnp.int32)  # [K]: when regime k ends
        scores = jnp.max(ending, axis=1)[:, None] + log_trans  # [from, to]
        best_k = jnp.argmax(scores, axis=0).astype(jnp.int32)  # [K]: which regime j follows
        new = jnp.max(scores, axis=0)
        delta = jnp.concatenate([new[:, None], delta[:, :-1] + log_stay[:, :-1]], axis=1)
        return shift(delta + lo_t[:, None]), (best_k, best_e)

    delta_T, (best_k, best_e) = lax.scan(step, delta0, log_obs[1:])
    flat = jnp.argmax(delta_T.reshape(-1)).astype(jnp.int32)
    last = (flat // E, flat % E)

    def back(state, x):
        k, e = state
        bk, be = x
        k_prev = jnp.where(e > 0, k, bk[k])
        e_prev = jnp.where(e > 0, e - 1, be[bk[k]])
        return (k_prev, e_prev), k_prev

    _, path = lax.scan(back, last, (best_k, best_e), reverse=True)
    return jnp.concatenate([path, last[0][None]]).astype(jnp.int32)


def posterior_sample(
    key: Any,
    log_init: jax.Array,
    log_trans: jax.Array,
    log_stay: jax.Array,
    log_end: jax.Array,
    log_obs: jax.Array,
    sample_shape: int | Sequence[int] = (),
) -> jax.Array:
    r"""Exact draws of regime paths from :math:`p(z_{1:T}\mid y_{1:T})`, ``int32 sample_shape +
    [T]``: forward filtering, backward sampling over the pairs.

    .. math::
        (z_T, e_T) \sim \hat\alpha_T,\qquad
        (z_{t-1}, e_{t-1}) = (z_t, e_t - 1) \text{ if } e_t > 1, \text{ else }
        p(z_{t-1} = k, e_{t-1} = e\mid\cdot) \propto \hat\alpha_{t-1}(k, e)\,h_k(e)\,A(k, z_t).

    >>> import jax.numpy as jnp
    >>> stay, end = duration_potentials(jnp.log(jnp.array([[0.5, 0.5], [1.0, 0.0]])), 3)
    >>> posterior_sample(0, jnp.log(jnp.array([1.0, 0.0])),
    ...                  jnp.log(jnp.array([[0.0, 1.0], [1.0, 0.0]])), stay, end,
    ...                  jnp.log(jnp.array([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])), 2)
    Array([[0, 0, 1],
           [0, 0, 1]], dtype=int32)
    """
    return _posterior_sample(
        as_key(key), log_init, log_trans, log_stay, log_end, log_obs, as_shape(sample_shape)
    )


@partial(jax.jit, static_argnums=6)
def _posterior_sample(key, log_init, log_trans, log_stay, log_end, log_obs, sample_shape: Shape):
    log_init, log_trans, log_stay, log_end, log_obs = _prepare(
        log_init, log_trans, log_stay, log_end, log_obs
    )
    T = log_obs.shape[0]
    K, E = log_stay.shape
    n = int(np.prod(sample_shape, dtype=np.int64))
    _, alpha = forward_filter(log_init, log_trans, log_stay, log_end, log_obs)
    log_alpha = safe_log(alpha)  # [T, K, E]
    u = jax.random.uniform(key, (T, n), log_obs.dtype)
    flat = categorical_from_uniform(jnp.broadcast_to(log_alpha[-1].reshape(-1), (n, K * E)), u[-1])
    last = (flat // E, flat % E)

    def back(state, x):
        k, e = state
        u_t, la = x
        ending = (la + log_end)[None] + log_trans[:, k].T[:, :, None]  # [n, K, E]
        draw = categorical_from_uniform(ending.reshape(n, K * E), u_t)
        k_prev = jnp.where(e > 0, k, draw // E)
        e_prev = jnp.where(e > 0, e - 1, draw % E)
        return (k_prev, e_prev), k_prev

    _, path = lax.scan(back, last, (u[:-1], log_alpha[:-1]), reverse=True)  # [T-1, n]
    paths = jnp.concatenate([path, last[0][None]], axis=0).T.astype(jnp.int32)
    return paths.reshape(sample_shape + (T,))


def predict(
    alpha: jax.Array,
    log_trans: jax.Array,
    log_stay: jax.Array,
    log_end: jax.Array,
    num_steps: int,
) -> jax.Array:
    r"""The pair probabilities ``num_steps`` steps on, with no observations: ``[h, K, E]``.

    Row ``h - 1`` is :math:`p(z_{T+h}, e_{T+h}\mid y_{1:T})` from ``alpha`` ``[K, E]``
    (:math:`\hat\alpha_T`); ``E`` must be at least ``T + h`` or ``D`` (elapsed times grow by one
    per step: use :func:`duration_potentials` with ``num_steps=T + h`` and pad ``alpha``).

    >>> import jax.numpy as jnp
    >>> stay, end = duration_potentials(jnp.log(jnp.array([[0.5, 0.5], [0.2, 0.8]])), 3)
    >>> alpha = jnp.array([[1.0, 0.0], [0.0, 0.0]])          # regime 0, first step
    >>> predict(alpha, jnp.log(jnp.array([[0.0, 1.0], [1.0, 0.0]])), stay, end, 2).sum(-1).tolist()
    [[0.5, 0.5], [0.1, 0.9]]
    """
    A, stay, end = jnp.exp(log_trans), jnp.exp(log_stay), jnp.exp(log_end)

    def step(a, _):
        a = _advance(a, A, stay, end)
        return a, a

    return lax.scan(step, alpha, None, length=int(num_steps))[1]
