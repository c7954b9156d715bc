"""Helpers shared by the sequential and parallel Markov-chain kernels: input checks, the
backend-dependent default, scaled exponentials, safe normalizers and the inverse-CDF draw."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from coromix.utils import promote_floats

# Up to this many states, products with a K x K matrix are written as broadcast-multiply-sum (much
# faster than a dot for tiny K on CPU) and the parallel log-matmul uses an exact K^3 log-sum-exp.
SMALL_K = 8


def default_parallel() -> bool:
    """Whether ``parallel=None`` means the parallel-in-time kernels on this machine.

    True when JAX's default backend is an accelerator (``gpu``/``tpu``), where the parallel-in-time
    scan (``O(log T)`` depth) wins; False on CPU, where the sequential recursion (``O(K^2 T)``
    work) is faster.

    >>> import jax
    >>> from coromix import markov
    >>> markov.default_parallel() == (jax.default_backend() in ("gpu", "cuda", "rocm", "tpu"))
    True
    """
    return jax.default_backend() in ("gpu", "cuda", "rocm", "tpu")


def resolve_parallel(parallel: bool | None) -> bool:
    """``parallel`` as a bool: ``None`` becomes :func:`default_parallel`."""
    return default_parallel() if parallel is None else bool(parallel)


def prepare(
    log_init: jax.Array, log_trans: jax.Array, log_obs: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, int, int, bool]:
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


def finite_or_zero(x: jax.Array) -> jax.Array:
    return jnp.where(jnp.isfinite(x), x, jnp.zeros_like(x))


def scaled_exp(log_x: jax.Array, axes: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """``exp(log_x - m)`` with ``m`` the max over ``axes`` (0 where that max is not finite)."""
    m = finite_or_zero(jnp.max(log_x, axis=axes, keepdims=True))
    return jnp.exp(log_x - m), jnp.squeeze(m, axis=axes)


def vecmat(v: jax.Array, M: jax.Array) -> jax.Array:
    """``v @ M`` for a vector ``v`` [K] and matrix ``M`` [K, K]."""
    if M.shape[-1] <= SMALL_K:
        return jnp.sum(v[:, None] * M, axis=0)
    return v @ M


def matvec(M: jax.Array, v: jax.Array) -> jax.Array:
    """``M @ v`` for a matrix ``M`` [K, K] and vector ``v`` [K]."""
    if M.shape[-1] <= SMALL_K:
        return jnp.sum(M * v[None, :], axis=1)
    return M @ v


def kahan_add(total: jax.Array, comp: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One step of Kahan compensated summation; a non-finite ``y`` (``-inf``) stays exact."""
    y_c = y - comp
    t = total + y_c
    comp = finite_or_zero((t - total) - y_c)
    return t, comp


def safe_normalize(u: jax.Array, axis: int = -1) -> jax.Array:
    """``u / sum(u)`` along ``axis``; all-zero rows stay zero."""
    s = jnp.sum(u, axis=axis, keepdims=True)
    return u / jnp.where(s > 0, s, jnp.ones_like(s))


def safe_softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    """Softmax along ``axis``; rows that are all ``-inf`` give zeros instead of NaN."""
    m = finite_or_zero(jnp.max(x, axis=axis, keepdims=True))
    return safe_normalize(jnp.exp(x - m), axis=axis)


def safe_log(x: jax.Array) -> jax.Array:
    """``log(x)`` with ``-inf`` (not NaN, and a zero gradient) where ``x <= 0``."""
    return jnp.where(x > 0, jnp.log(jnp.where(x > 0, x, jnp.ones_like(x))), -jnp.inf)


def categorical_from_uniform(logits: jax.Array, u: jax.Array) -> jax.Array:
    r"""Inverse-CDF draw from ``Categorical(logits)`` (last axis) with a uniform ``u`` in [0, 1).

    With weights :math:`w_k = \exp(\ell_k - \max\ell)` and cumulative sums :math:`c_k`, the draw is
    the number of :math:`c_k \le u\,c_{K-1}`, i.e. the smallest ``k`` with
    :math:`u\,c_{K-1} < c_k`.  ``u`` has the batch shape (``logits.shape[:-1]``); the result is
    ``int32`` of that shape.  States of zero probability (``-inf``) are never returned, even when
    rounding puts ``u * total`` at or past the last cumulative weight.

    >>> import jax.numpy as jnp
    >>> from coromix import markov
    >>> logits = jnp.log(jnp.array([[0.2, 0.0, 0.8]] * 3))   # 3 draws from one distribution
    >>> markov.categorical_from_uniform(logits, jnp.array([0.1, 0.5, 0.999999]))
    Array([0, 2, 2], dtype=int32)
    """
    K = logits.shape[-1]
    w = jnp.exp(logits - finite_or_zero(jnp.max(logits, axis=-1, keepdims=True)))
    c = jnp.cumsum(w, axis=-1)
    z = jnp.sum(c <= u[..., None] * c[..., -1:], axis=-1)
    last = K - 1 - jnp.argmax((w > 0)[..., ::-1], axis=-1)
    return jnp.minimum(z, last).astype(jnp.int32)
