"""Categorical distribution over {0, ..., K-1}."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from coromix import constraints
from coromix.distributions.distribution import Distribution, as_parameter, label_of
from coromix.utils import ArrayLike, Shape, as_float


def logits_and_probs(
    logits: ArrayLike | None, probs: ArrayLike | None, label: str
) -> tuple[jax.Array, str]:
    """Exactly one of ``logits``/``probs``; returns the one given as a float array and its kind."""
    if (logits is None) == (probs is None):
        raise ValueError(f"{label}: give exactly one of `logits` or `probs`")
    kind, value = ("logits", logits) if probs is None else ("probs", probs)
    return as_float(as_parameter(label, kind, value)), kind


class SuccessProbability:
    """``logits``/``probs`` views of a success probability kept as given (``_param``, ``_kind``)."""

    @property
    def logits(self) -> jax.Array:
        p = self._param
        return p if self._kind == "logits" else jnp.log(p) - jnp.log1p(-p)

    @property
    def probs(self) -> jax.Array:
        return self._param if self._kind == "probs" else jax.nn.sigmoid(self._param)


class Categorical(Distribution):
    """Categorical(probs=p) or Categorical(logits=l): ``P(X = k) = p[..., k]``, ``p = softmax(l)``.

    The last axis of ``probs``/``logits`` indexes the K categories; the rest is the batch shape.
    ``probs`` must sum to 1 over that axis (checked when the values are concrete; not renormalized).

    >>> round(float(Categorical(probs=[0.6, 0.4]).log_prob(1)), 4)   # log(0.4)
    -0.9163
    """

    parameter_names = ("_param",)
    static_names = ("_kind",)
    is_discrete = True

    def __init__(
        self,
        logits: ArrayLike | None = None,
        probs: ArrayLike | None = None,
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        label = label_of("Categorical", name)
        self._param, self._kind = logits_and_probs(logits, probs, label)
        if self._param.ndim == 0:
            raise ValueError(
                f"{label}: `{self._kind}` needs a last axis of K categories; got a scalar"
            )
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        if self._kind == "logits":
            # -inf is a category of probability 0; +inf or NaN makes the softmax NaN
            return [("logits", self._param < jnp.inf, "numbers below +inf (not NaN)")]
        p = self._param
        tol = 1e-4 if p.dtype == jnp.float32 else 1e-8
        return [
            (
                "probs",
                jnp.all(p >= 0) & jnp.all(jnp.abs(p.sum(-1) - 1) < tol),
                "probabilities (nonnegative, summing to 1 over the last axis)",
            )
        ]

    @property
    def logits(self) -> jax.Array:
        return self._param if self._kind == "logits" else jnp.log(self._param)

    @property
    def probs(self) -> jax.Array:
        return self._param if self._kind == "probs" else jax.nn.softmax(self._param, axis=-1)

    @property
    def num_categories(self) -> int:
        return self._param.shape[-1]

    @property
    def batch_shape(self) -> Shape:
        return tuple(self._param.shape[:-1])

    @property
    def support(self) -> constraints.Constraint:
        return constraints.IntegerInterval(0, self.num_categories - 1)

    @property
    def dtype(self) -> DTypeLike:
        return jnp.int32

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        logits = jnp.broadcast_to(self.logits, shape + (self.num_categories,))
        return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)

    def _log_probs(self):
        """``log p[..., k]``.  ``probs`` are used as given (as NumPyro does): they must sum to 1,
        which is checked when they are concrete.  Renormalizing would cost a log per batch
        member, and ``probs`` is often one vector broadcast over thousands of data points."""
        if self._kind == "logits":
            return jax.nn.log_softmax(self._param, axis=-1)
        return jnp.log(self._param)

    def enumerate_log_prob(self) -> jax.Array:
        """``log p(k)`` for every category, ``(K,) + batch_shape``.

        The K axis moves to the front *before* the log, not after it: with ``probs`` broadcast
        from one vector (``jnp.broadcast_to(w, (N, K))``, the usual mixture), the gradient with
        respect to ``w`` is then a sum of the ``(K, N)`` cotangent along N, where moving the axis
        after the log made XLA write a transposed ``(N, K)`` copy of it and read that again (one
        extra pass over N x K in every gradient; seen in the optimized HLO at N = 1e6).

        >>> Categorical(probs=jnp.array([[0.25, 0.75]])).enumerate_log_prob().shape
        (2, 1)
        """
        param = jnp.moveaxis(self._param, -1, 0)
        if self._kind == "probs":
            return jnp.log(param)
        return jax.nn.log_softmax(param, axis=0)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        value = jnp.asarray(value)
        log_p = self._log_probs()
        shape = jnp.broadcast_shapes(value.shape, self.batch_shape)
        log_p = jnp.broadcast_to(log_p, shape + (self.num_categories,))
        k = jnp.clip(jnp.broadcast_to(value, shape), 0, self.num_categories - 1).astype(jnp.int32)
        out = jnp.take_along_axis(log_p, k[..., None], axis=-1)[..., 0]
        inside = (value >= 0) & (value < self.num_categories) & (value == jnp.floor(value))
        return jnp.where(inside, out, -jnp.inf)

    def mean(self) -> jax.Array:
        p = self.probs
        return jnp.sum(p * jnp.arange(self.num_categories, dtype=p.dtype), axis=-1)

    def variance(self) -> jax.Array:
        p = self.probs
        k = jnp.arange(self.num_categories, dtype=p.dtype)
        m = jnp.sum(p * k, axis=-1)
        return jnp.sum(p * k**2, axis=-1) - m**2

    @property
    def has_enumerate_support(self) -> bool:
        return True

    def enumerate_support(self) -> np.ndarray:
        return np.arange(self.num_categories, dtype=np.int32)
