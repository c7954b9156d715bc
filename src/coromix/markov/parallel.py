r"""Parallel-in-time kernels: :func:`jax.lax.associative_scan` over max-normalized log-space
``K x K`` matrices (``O(log T)`` depth, ``O(K^3 T)`` work), for GPUs and TPUs.

The chain is the product of the elements :math:`E_1 = \mathbf 1\,(\log\pi + \log p(y_1|\cdot))^\top`
(identical rows) and :math:`E_t = \log A_t + \log p(y_t|\cdot)` (added to every row) in the
``(logsumexp, +)`` semiring; each element carries its max as a separate scale so that float32 has
no range limit.  Shapes as in :mod:`coromix.markov`, one unbatched series with ``T >= 2``.
:func:`sharded_log_likelihood` takes the same product across the devices of a mesh axis, one
block of steps per device.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh, PartitionSpec

from coromix.markov.common import SMALL_K, finite_or_zero, prepare, safe_softmax

Element = tuple[jax.Array, jax.Array]  # (max-normalized log-matrix [..., K, K], its scale [...])


def _log_matmul(X: jax.Array, Y: jax.Array) -> jax.Array:
    r"""Batched log-space product :math:`C_{ij} = \log\sum_k \exp(X_{ik} + Y_{kj})`."""
    K = X.shape[-1]
    if K <= SMALL_K:
        Z = X[..., :, :, None] + Y[..., None, :, :]  # [..., i, k, j]
        mz = finite_or_zero(jnp.max(Z, axis=-2, keepdims=True))
        return jnp.log(jnp.sum(jnp.exp(Z - mz), axis=-2)) + mz[..., 0, :]
    mx = finite_or_zero(jnp.max(X, axis=-1, keepdims=True))  # row max of X  [..., i, 1]
    my = finite_or_zero(jnp.max(Y, axis=-2, keepdims=True))  # col max of Y  [..., 1, j]
    return jnp.log(jnp.exp(X - mx) @ jnp.exp(Y - my)) + mx + my


def _normalize_log_matrix(C: jax.Array) -> Element:
    mc = finite_or_zero(jnp.max(C, axis=(-2, -1), keepdims=True))
    return C - mc, mc[..., 0, 0]


def _combine(x: Element, y: Element) -> Element:
    """Compose two normalized log-matrices ``(N, scale)``: earlier ``x`` then later ``y``."""
    N, s = _normalize_log_matrix(_log_matmul(x[0], y[0]))
    return N, x[1] + y[1] + s


def _combine_reversed(x: Element, y: Element) -> Element:
    return _combine(y, x)


def _log_elements(
    log_init: jax.Array, log_trans: jax.Array, log_obs: jax.Array, time_varying: bool
) -> Element:
    """Max-normalized elements ``E_0 = 1 (log_init + log_obs[0])^T`` (identical rows) and
    ``E_t = log_trans_t + log_obs[t]`` (added to every row), with their scales."""
    T, K = log_obs.shape
    E0 = jnp.broadcast_to(log_init + log_obs[0], (1, K, K))
    lt = log_trans if time_varying else jnp.broadcast_to(log_trans, (T - 1, K, K))
    Et = lt + log_obs[1:, None, :]
    return _normalize_log_matrix(jnp.concatenate([E0, Et], axis=0))


def _tree_reduce(combine, elems: Element, identity: Element) -> Element:
    """Pairwise reduction of ``elems`` (leading axis) with an associative ``combine``."""
    n = elems[0].shape[0]
    size = 1 << max(0, (n - 1).bit_length())
    if size > n:
        pad = [jnp.broadcast_to(i, (size - n,) + i.shape) for i in identity]
        elems = tuple(jnp.concatenate([e, p], axis=0) for e, p in zip(elems, pad))
    while elems[0].shape[0] > 1:
        elems = combine(tuple(e[0::2] for e in elems), tuple(e[1::2] for e in elems))
    return tuple(e[0] for e in elems)


def _identity(K: int, dtype) -> Element:
    eye = jnp.where(jnp.eye(K, dtype=bool), jnp.zeros((), dtype), -jnp.inf).astype(dtype)
    return eye, jnp.zeros((), dtype)


def log_likelihood(
    log_init: jax.Array, log_trans: jax.Array, log_obs: jax.Array, time_varying: bool
) -> jax.Array:
    """``log p(y_{1:T})`` by a tree reduction of all elements (no per-step messages kept)."""
    K = log_obs.shape[1]
    N, s = _log_elements(log_init, log_trans, log_obs, time_varying)
    N_tot, s_tot = _tree_reduce(_combine, (N, s), _identity(K, log_obs.dtype))
    return jax.nn.logsumexp(N_tot[0]) + s_tot


def forward_filter(
    log_init: jax.Array, log_trans: jax.Array, log_obs: jax.Array, time_varying: bool
) -> tuple[jax.Array, jax.Array]:
    r"""Prefix scan; returns ``(log_likelihood, log alpha_hat [T, K])``, the log filtered marginals
    :math:`\log p(z_t = k \mid y_{1:t})` (rows of ``-inf`` where ``y_{1:t}`` is impossible)."""
    N, s = _log_elements(log_init, log_trans, log_obs, time_varying)
    P, sp = lax.associative_scan(_combine, (N, s))
    rows = P[:, 0, :]  # [T, K]
    log_lik = jax.nn.logsumexp(rows[-1]) + sp[-1]
    return log_lik, rows - finite_or_zero(jax.nn.logsumexp(rows, axis=-1, keepdims=True))


def smooth(
    log_alpha: jax.Array, log_trans: jax.Array, log_obs: jax.Array, time_varying: bool
) -> tuple[jax.Array, jax.Array]:
    r"""Smoothed and pairwise marginals from ``log alpha_hat`` (from :func:`forward_filter`) by a
    reverse (suffix) scan giving the backward messages
    :math:`\log\beta_t(i) = \log\sum_j \big(E_{t+1}\cdots E_T\big)_{ij}` up to a constant;
    :math:`\gamma_t \propto \alpha_t\beta_t` and
    :math:`\xi_t(i,j) \propto \alpha_{t-1}(i) A_t(i,j) p(y_t|j) \beta_t(j)`, each normalized to one.
    Returns ``(gamma [T, K], xi [T-1, K, K])``."""
    T, K = log_obs.shape
    N, _ = _log_elements(jnp.zeros((K,), log_obs.dtype), log_trans, log_obs, time_varying)
    Nt = N[1:]  # [T-1, K, K]
    S, _ = lax.associative_scan(_combine_reversed, (Nt[::-1], jnp.zeros((T - 1,), N.dtype)))
    S = S[::-1]  # S[t-1] = E_t ... E_{T-1}
    log_beta = jax.nn.logsumexp(S, axis=-1)  # [T-1, K]: beta_{t-1}, t=1..T-1
    log_beta = jnp.concatenate([log_beta, jnp.zeros((1, K), N.dtype)], axis=0)
    log_beta = log_beta - finite_or_zero(jnp.max(log_beta, axis=-1, keepdims=True))
    gamma = safe_softmax(log_alpha + log_beta, axis=-1)
    X = log_alpha[:-1, :, None] + Nt + log_beta[1:, None, :]
    xi = safe_softmax(X.reshape(T - 1, K * K), axis=-1).reshape(T - 1, K, K)
    return gamma, xi


def sharded_log_likelihood(
    log_init: jax.Array,
    log_trans: jax.Array,
    log_obs: jax.Array,
    mesh: Mesh,
    axis: str,
) -> jax.Array:
    r"""``log p(y_{1:T})`` with the steps split into ``mesh.shape[axis]`` blocks, one per device.

    Args:
      log_init: ``[K]`` log initial potentials.
      log_trans: ``[K, K]`` or ``[T-1, K, K]`` log transition potentials (entry ``t-1`` for the
        move into step ``t``).
      log_obs: ``[T, K]`` log observation potentials; any sharding (it is laid out along
        ``axis`` here; a series already sharded that way is not moved).
      mesh: the device mesh.
      axis: the name of the mesh axis the time steps are split over.

    Returns the same number as :func:`coromix.markov.forward_log_likelihood` (to rounding: the
    products are taken in another order), replicated on the mesh.  Each of the ``D`` devices of
    the axis holds a block of ``L = ceil(T / D)`` consecutive steps (the last one padded with
    identity steps) and reduces it, with no communication, to one max-normalized ``K x K``
    log-space matrix, the ``(logsumexp, +)`` product of its elements (those of the module
    docstring):

    .. math::

        B_d = E_{dL} \otimes E_{dL + 1} \otimes \dots \otimes E_{dL + L - 1};

    the ``D`` matrices are then gathered on every device (``D K^2`` numbers) and multiplied in
    order, :math:`\log p(y_{1:T}) = \operatorname{logsumexp}_j (B_0 \otimes \dots \otimes
    B_{D-1})_{0j}` (the rows of :math:`E_1` are identical).  Work ``O(K^3 T / D)`` per device and
    one all-gather; JAX's gradient through the same pieces sends the gathered cotangents back to
    their blocks.  For one series longer than a device's memory, or several devices (CPU or GPU)
    on one series: it is split along time instead of replicated.

    >>> import numpy as np
    >>> from jax.sharding import Mesh
    >>> from coromix import markov
    >>> mesh = Mesh(np.array(jax.devices()[:1]), ("time",))
    >>> log_init = jnp.log(jnp.array([0.5, 0.5]))
    >>> log_trans = jnp.log(jnp.array([[0.9, 0.1], [0.2, 0.8]]))
    >>> log_obs = jnp.log(jnp.array([[0.9, 0.1], [0.8, 0.2], [0.05, 0.95]]))
    >>> value = sharded_log_likelihood(log_init, log_trans, log_obs, mesh, "time")
    >>> bool(jnp.allclose(value, markov.forward_log_likelihood(log_init, log_trans, log_obs)))
    True
    """
    if axis not in mesh.axis_names:
        raise ValueError(
            f"sharded_log_likelihood: axis {axis!r} is not an axis of the mesh; its axes are "
            f"{tuple(mesh.axis_names)}"
        )
    log_init, log_trans, log_obs, T, K, time_varying = prepare(log_init, log_trans, log_obs)
    D = mesh.shape[axis]
    L = -(-T // D)
    dtype = log_obs.dtype
    pad = D * L - T
    log_obs = jnp.pad(log_obs, ((0, pad), (0, 0)))
    if time_varying:  # aligned with the step it moves into (row 0 unused), padded like log_obs
        log_trans = jnp.pad(log_trans, ((1, pad), (0, 0), (0, 0)))
        trans_spec = PartitionSpec(axis)
    else:
        trans_spec = PartitionSpec()

    def block(log_init, log_trans, log_obs):
        t = lax.axis_index(axis) * L + jnp.arange(L)  # the block's global steps
        first = jnp.broadcast_to(log_init + log_obs[0], (K, K))
        steps = log_trans + log_obs[:, None, :]  # [L, K, K] (homogeneous: broadcast)
        elements = jnp.where((t == 0)[:, None, None], first[None], steps)
        eye, zero = _identity(K, dtype)
        N, s = _normalize_log_matrix(jnp.where((t < T)[:, None, None], elements, eye[None]))
        s = jnp.where(t < T, s, zero)
        local = _tree_reduce(_combine, (N, s), (eye, zero))
        gathered = tuple(lax.all_gather(x, axis) for x in local)  # [D, K, K], [D]
        N_tot, s_tot = _tree_reduce(_combine, gathered, (eye, zero))
        return jax.nn.logsumexp(N_tot[0]) + s_tot

    return jax.shard_map(
        block,
        mesh=mesh,
        in_specs=(PartitionSpec(), trans_spec, PartitionSpec(axis)),
        out_specs=PartitionSpec(),
        axis_names={axis},
        check_vma=False,  # the result is computed from the all-gather: the same on every device
    )(log_init, log_trans, log_obs)
