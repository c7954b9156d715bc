r"""The public Markov-chain functions: one filter per call, results in one :class:`MarkovPosterior`.

Every function takes one unbatched series (``log_init [K]``, ``log_trans [K, K]`` or
``[T-1, K, K]``, ``log_obs [T, K]``; see :mod:`coromix.markov`) and dispatches to the sequential
(:mod:`coromix.markov.sequential`) or parallel-in-time (:mod:`coromix.markov.parallel`) kernels.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from coromix.markov import parallel as parallel_kernels
from coromix.markov import sequential as sequential_kernels
from coromix.markov.common import SMALL_K, prepare, resolve_parallel, safe_log, safe_softmax
from coromix.utils import Shape, as_key, as_shape


class MarkovPosterior(NamedTuple):
    r"""What one forward and one backward pass give about the hidden chain ``z`` given ``y``.

    Fields (for one series; a distribution adds its batch dims in front of each):

    * ``log_likelihood`` ``[]``: :math:`\log p(y_{1:T})`, all paths summed out;
    * ``marginals`` ``[T, K]``: the smoothed marginals :math:`p(z_t = k \mid y_{1:T})`;
    * ``filtered`` ``[T, K]``: the filtered marginals :math:`p(z_t = k \mid y_{1:t})`.

    Rows of ``marginals``/``filtered`` are all zero where the observations have zero likelihood.

    >>> import jax.numpy as jnp
    >>> from coromix import markov
    >>> post = markov.posterior(jnp.log(jnp.array([0.5, 0.5])),
    ...                         jnp.log(jnp.array([[0.9, 0.1], [0.2, 0.8]])),
    ...                         jnp.log(jnp.array([[0.9, 0.1], [0.8, 0.2], [0.05, 0.95]])))
    >>> post._fields
    ('log_likelihood', 'marginals', 'filtered')
    """

    log_likelihood: jax.Array
    marginals: jax.Array
    filtered: jax.Array


def _filter(
    log_init: jax.Array,
    log_trans: jax.Array,
    log_obs: jax.Array,
    time_varying: bool,
    parallel: bool,
) -> tuple[jax.Array, jax.Array]:
    """The one forward pass: ``(log_likelihood, messages)``, messages = filtered probabilities
    ``[T, K]`` (sequential) or their logs (parallel)."""
    if parallel:
        return parallel_kernels.forward_filter(log_init, log_trans, log_obs, time_varying)
    return sequential_kernels.forward_filter(
        log_init, log_trans, log_obs, time_varying, keep_messages=True
    )


def _marginals(
    log_init: jax.Array,
    log_trans: jax.Array,
    log_obs: jax.Array,
    time_varying: bool,
    parallel: bool,
    messages: jax.Array,
    pairwise: bool,
) -> tuple[jax.Array, jax.Array | None]:
    """The one backward pass: smoothed marginals [T, K] and, if ``pairwise``, the pairwise
    marginals in ``log_trans``'s shape (summed over time for a homogeneous chain).  ``messages``
    from the matching :func:`_filter`."""
    if parallel:
        gamma, xi = parallel_kernels.smooth(messages, log_trans, log_obs, time_varying)
        if not pairwise:
            return gamma, None
        return gamma, (xi if time_varying else jnp.sum(xi, axis=0))
    alpha = messages
    gamma, r, A = sequential_kernels.smooth(alpha, log_trans, time_varying)
    if not pairwise:
        return gamma, None
    if time_varying:
        xi = alpha[:-1, :, None] * A * r[:, None, :]
    elif A.shape[-1] <= SMALL_K:
        # sum_t alpha_{t-1}(i) r_t(j): broadcast-sum for tiny K (faster on CPU), else a matmul
        # (no [T, K, K] intermediate)
        xi = A * jnp.sum(alpha[:-1, :, None] * r[:, None, :], axis=0)
    else:
        xi = A * (alpha[:-1].T @ r)
    return gamma, xi


# --------------------------------------------------------------------------------------------
# forward_log_likelihood with a custom VJP
# --------------------------------------------------------------------------------------------


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _log_lik(log_init, log_trans, log_obs, time_varying, parallel):
    if log_obs.shape[0] == 1:
        return jax.nn.logsumexp(log_init + log_obs[0])
    if parallel:
        return parallel_kernels.log_likelihood(log_init, log_trans, log_obs, time_varying)
    return sequential_kernels.forward_filter(
        log_init, log_trans, log_obs, time_varying, keep_messages=False
    )[0]


def _log_lik_fwd(log_init, log_trans, log_obs, time_varying, parallel):
    if log_obs.shape[0] == 1:
        value = jax.nn.logsumexp(log_init + log_obs[0])
        return value, (log_init, log_trans, log_obs, None)
    value, messages = _filter(log_init, log_trans, log_obs, time_varying, parallel)
    return value, (log_init, log_trans, log_obs, messages)


def _log_lik_bwd(time_varying, parallel, res, g):
    log_init, log_trans, log_obs, messages = res
    if log_obs.shape[0] == 1:
        gamma0 = safe_softmax(log_init + log_obs[0])
        return g * gamma0, jnp.zeros_like(log_trans), g * gamma0[None]
    gamma, d_trans = _marginals(
        log_init, log_trans, log_obs, time_varying, parallel, messages, pairwise=True
    )
    return g * gamma[0], g * d_trans, g * gamma


_log_lik.defvjp(_log_lik_fwd, _log_lik_bwd)


@partial(jax.jit, static_argnames=("parallel",))
def forward_log_likelihood(
    log_init: jax.Array, log_trans: jax.Array, log_obs: jax.Array, parallel: bool | None = False
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

    >>> import jax, jax.numpy as jnp
    >>> from coromix import markov
    >>> log_init = jnp.log(jnp.array([0.5, 0.5]))
    >>> log_trans = jnp.log(jnp.array([[0.9, 0.1], [0.2, 0.8]]))
    >>> log_obs = jnp.log(jnp.array([[0.9, 0.1], [0.8, 0.2], [0.05, 0.95]]))
    >>> markov.forward_log_likelihood(log_init, log_trans, log_obs)
    Array(-2.8206, dtype=float32)
    >>> jax.grad(markov.forward_log_likelihood, 2)(log_init, log_trans, log_obs)[-1]  # p(z_3|y)
    Array([0.2537..., 0.7463...], dtype=float32)
    """
    log_init, log_trans, log_obs, _, _, time_varying = prepare(log_init, log_trans, log_obs)
    return _log_lik(log_init, log_trans, log_obs, time_varying, resolve_parallel(parallel))


# --------------------------------------------------------------------------------------------
# posterior: likelihood, smoothed and filtered marginals from one forward and one backward pass
# --------------------------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("parallel",))
def posterior(
    log_init: jax.Array, log_trans: jax.Array, log_obs: jax.Array, parallel: bool | None = False
) -> MarkovPosterior:
    r"""Log-likelihood, smoothed and filtered marginals from ONE forward and ONE backward pass.

    The forward filter gives :math:`\hat\alpha_t(k) = p(z_t = k\mid y_{1:t})` and
    :math:`\log p(y_{1:T}) = \sum_t \log c_t` (its per-step normalizers); the backward pass gives

    .. math::
        \gamma_T = \hat\alpha_T,\qquad
        \gamma_{t-1} = \hat\alpha_{t-1}\odot\tilde A_t\,\big(\gamma_t / (\hat\alpha_{t-1}\tilde A_t)\big),

    :math:`\gamma_t(k) = p(z_t = k\mid y_{1:T})`; with ``parallel=True`` both passes are
    associative scans in log space.  Arguments as in :func:`forward_log_likelihood`.  The
    ``log_likelihood`` field equals :func:`forward_log_likelihood` (differentiable here by plain
    autodiff through the filter; use :func:`forward_log_likelihood` for the cheaper custom VJP).

    >>> import jax.numpy as jnp
    >>> from coromix import markov
    >>> post = markov.posterior(jnp.log(jnp.array([0.5, 0.5])),
    ...                         jnp.log(jnp.array([[0.9, 0.1], [0.2, 0.8]])),
    ...                         jnp.log(jnp.array([[0.9, 0.1], [0.8, 0.2], [0.05, 0.95]])))
    >>> post.log_likelihood
    Array(-2.8206, dtype=float32)
    >>> post.marginals        # p(z_t | y_1, y_2, y_3)
    Array([[0.8778..., 0.1222...],
           [0.7803..., 0.2197...],
           [0.2537..., 0.7463...]], dtype=float32)
    >>> post.filtered         # p(z_t | y_1, ..., y_t)
    Array([[0.9..., 0.1...],
           [0.9513..., 0.0487...],
           [0.2537..., 0.7463...]], dtype=float32)
    """
    log_init, log_trans, log_obs, T, _, time_varying = prepare(log_init, log_trans, log_obs)
    parallel = resolve_parallel(parallel)
    if T == 1:
        x = log_init + log_obs[0]
        p = safe_softmax(x)[None]
        return MarkovPosterior(jax.nn.logsumexp(x), p, p)
    log_lik, messages = _filter(log_init, log_trans, log_obs, time_varying, parallel)
    gamma, _ = _marginals(
        log_init, log_trans, log_obs, time_varying, parallel, messages, pairwise=False
    )
    filtered = jnp.exp(messages) if parallel else messages
    return MarkovPosterior(log_lik, gamma, filtered)


def posterior_marginals(
    log_init: jax.Array, log_trans: jax.Array, log_obs: jax.Array, parallel: bool | None = False
) -> jax.Array:
    r"""Smoothed marginals :math:`\gamma_t(k) = p(z_t = k\mid y_{1:T})`, shape ``[T, K]``.

    ``posterior(...).marginals`` (:func:`posterior`): forward-backward, every row normalized to sum
    to one (all zero if the observations have zero likelihood).

    >>> import jax.numpy as jnp
    >>> from coromix import markov
    >>> markov.posterior_marginals(jnp.log(jnp.array([0.5, 0.5])),
    ...                            jnp.log(jnp.array([[0.9, 0.1], [0.2, 0.8]])),
    ...                            jnp.log(jnp.array([[0.9, 0.1], [0.8, 0.2], [0.05, 0.95]])))
    Array([[0.8778..., 0.1222...],
           [0.7803..., 0.2197...],
           [0.2537..., 0.7463...]], dtype=float32)
    """
    return posterior(log_init, log_trans, log_obs, parallel=parallel).marginals


# --------------------------------------------------------------------------------------------
# mode and samples
# --------------------------------------------------------------------------------------------


@jax.jit
def posterior_mode(log_init: jax.Array, log_trans: jax.Array, log_obs: jax.Array) -> jax.Array:
    r"""Most probable state path (Viterbi), ``int32 [T]``.

    .. math::
        \delta_1 = \log\pi + \log p(y_1|\cdot),\quad
        \delta_t(j) = \max_i\big[\delta_{t-1}(i) + \log A_t(i,j)\big] + \log p(y_t|j),\quad
        \psi_t(j) = \arg\max_i[\dots]

    with :math:`\delta_t` shifted by its maximum each step (the argmaxes do not change, and the
    numbers stay small in float32); then :math:`z_T = \arg\max\delta_T` and
    :math:`z_{t-1} = \psi_t(z_t)` by a reverse :func:`jax.lax.scan`.  Ties go to the lowest index.
    A max-product pass, not the forward filter; it is sequential whatever ``parallel`` says
    elsewhere.

    >>> import jax.numpy as jnp
    >>> from coromix import markov
    >>> markov.posterior_mode(jnp.log(jnp.array([0.5, 0.5])),
    ...                       jnp.log(jnp.array([[0.9, 0.1], [0.2, 0.8]])),
    ...                       jnp.log(jnp.array([[0.9, 0.1], [0.8, 0.2], [0.05, 0.95]])))
    Array([0, 0, 1], dtype=int32)
    """
    log_init, log_trans, log_obs, _, _, time_varying = prepare(log_init, log_trans, log_obs)
    return sequential_kernels.viterbi(log_init, log_trans, log_obs, time_varying)


def posterior_sample(
    key: Any,
    log_init: jax.Array,
    log_trans: jax.Array,
    log_obs: jax.Array,
    sample_shape: int | Sequence[int] = (),
    parallel: bool | None = False,
) -> jax.Array:
    r"""Exact draws of the whole path from :math:`p(z_{1:T}\mid y_{1:T})`, ``int32
    sample_shape + [T]``, by forward filtering, backward sampling:

    .. math::
        z_T \sim \hat\alpha_T,\qquad
        p(z_{t-1} = i\mid z_t, y_{1:T}) \propto \hat\alpha_{t-1}(i)\, A_t(i, z_t).

    All ``prod(sample_shape)`` paths share one forward pass (sequential or parallel as
    ``parallel`` says); the backward pass draws them together.  ``key`` is a JAX PRNG key (or an
    int seed).

    >>> import jax.numpy as jnp
    >>> from coromix import markov
    >>> log_obs = jnp.log(jnp.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]))  # z_1 = 0, z_3 = 1
    >>> paths = markov.posterior_sample(0, jnp.zeros(2), jnp.log(jnp.full((2, 2), 0.5)),
    ...                                 log_obs, sample_shape=(4,))
    >>> paths.shape, paths.dtype
    ((4, 3), dtype('int32'))
    >>> paths[:, 0], paths[:, 2]
    (Array([0, 0, 0, 0], dtype=int32), Array([1, 1, 1, 1], dtype=int32))
    """
    return _posterior_sample(
        as_key(key),
        log_init,
        log_trans,
        log_obs,
        as_shape(sample_shape),
        resolve_parallel(parallel),
    )


@partial(jax.jit, static_argnums=(4, 5))
def _posterior_sample(
    key: jax.Array,
    log_init: jax.Array,
    log_trans: jax.Array,
    log_obs: jax.Array,
    sample_shape: Shape,
    parallel: bool,
) -> jax.Array:
    log_init, log_trans, log_obs, T, _, time_varying = prepare(log_init, log_trans, log_obs)
    n = int(np.prod(sample_shape, dtype=np.int64))
    if T == 1:
        log_alpha = jax.nn.log_softmax(log_init + log_obs[0])[None]
    else:
        _, messages = _filter(log_init, log_trans, log_obs, time_varying, parallel)
        log_alpha = messages if parallel else safe_log(messages)
    u = jax.random.uniform(key, (T, n), log_obs.dtype)  # one uniform per draw and step
    paths = sequential_kernels.backward_sample(u, log_alpha, log_trans, time_varying)  # [n, T]
    return paths.reshape(sample_shape + (T,))
