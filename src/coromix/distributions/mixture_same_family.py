"""MixtureSameFamily: a finite mixture whose K components are one batched distribution."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from coromix import constraints
from coromix.distributions.distribution import Distribution
from coromix.utils import ArrayLike, Shape


def check_categorical(cat: Any, owner: str, arg: str) -> None:
    """``cat`` must be Categorical-like: ``logits``, ``num_categories`` and a scalar event."""
    if not (
        isinstance(cat, Distribution)
        and hasattr(cat, "logits")
        and hasattr(cat, "num_categories")
        and tuple(cat.event_shape) == ()
    ):
        raise TypeError(
            f"{owner}: `{arg}` must be a Categorical distribution (with `logits` and "
            f"`num_categories`); got {cat!r}"
        )


def _union_over_components(support, full_shape, axis):
    """The components' support with per-component bounds merged over the component axis.

    Parameter-free supports (``real``, ``positive``, ...) come back unchanged; a ``GreaterThan``
    whose bound varies over the K components becomes ``GreaterThan(min_k lower_k)`` (their exact
    union) and an ``Interval`` becomes ``Interval(min_k low_k, max_k high_k)`` (the smallest
    interval holding every component's support).
    """
    if isinstance(support, constraints.Independent):
        base = _union_over_components(support.base, full_shape, axis)
        return (
            support
            if base is support.base
            else constraints.Independent(base, support.reinterpreted_batch_ndims)
        )
    if isinstance(support, constraints.GreaterThan) and jnp.ndim(support.lower) > 0:
        return constraints.GreaterThan(jnp.min(jnp.broadcast_to(support.lower, full_shape), axis))
    if isinstance(support, constraints.Interval) and (
        jnp.ndim(support.low) > 0 or jnp.ndim(support.high) > 0
    ):
        return constraints.Interval(
            jnp.min(jnp.broadcast_to(support.low, full_shape), axis),
            jnp.max(jnp.broadcast_to(support.high, full_shape), axis),
        )
    return support


class MixtureSameFamily(Distribution):
    r"""Mixture of K components of one family, TensorFlow Probability's ``MixtureSameFamily``.

    ``mixture_distribution`` is a Categorical with batch shape ``B`` and ``K`` categories (weights
    ``w``); ``components_distribution`` has batch shape ``B + [K]`` and event shape ``E``.  The
    mixture has batch shape ``B`` and event shape ``E``:

    .. math::

        \log p(x) = \operatorname{logsumexp}_k \bigl(\log w_k + \log p_k(x)\bigr), \qquad
        \mathbb{E}[X] = \sum_k w_k \mu_k, \qquad
        \operatorname{Var}[X] = \sum_k w_k \sigma^2_k + \sum_k w_k (\mu_k - \mathbb{E}[X])^2

    (the law of total variance; for vector events the variance is elementwise).  A mixture batch
    shape of ``()`` broadcasts against the components' leading batch shape.

    >>> from coromix.distributions import Categorical, Normal
    >>> d = MixtureSameFamily(Categorical(probs=[0.3, 0.7]), Normal([-1.0, 2.0], 1.0))
    >>> d.batch_shape, d.event_shape
    ((), ())
    >>> round(float(d.log_prob(0.0)), 4)   # log((0.3 exp(-1/2) + 0.7 exp(-2)) / sqrt(2 pi))
    -2.2038
    """

    parameter_names = ("mixture_distribution", "components_distribution")

    def __init__(
        self,
        mixture_distribution: Distribution,
        components_distribution: Distribution,
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        label = f"MixtureSameFamily '{name}'" if name else "MixtureSameFamily"
        check_categorical(mixture_distribution, label, "mixture_distribution")
        if not isinstance(components_distribution, Distribution):
            raise TypeError(
                f"{label}: `components_distribution` must be a Distribution; "
                f"got {type(components_distribution).__name__}"
            )
        k = mixture_distribution.num_categories
        comp_batch = tuple(components_distribution.batch_shape)
        mix_batch = tuple(mixture_distribution.batch_shape)
        if len(comp_batch) == 0 or comp_batch[-1] != k:
            raise ValueError(
                f"{label}: the mixture has K = {k} categories (mixture_distribution batch_shape "
                f"{mix_batch}, {k} categories) but components_distribution has batch_shape "
                f"{comp_batch} and event_shape {tuple(components_distribution.event_shape)}; "
                f"its last batch dimension must be K = {k}"
            )
        try:
            jnp.broadcast_shapes(mix_batch, comp_batch[:-1])
        except ValueError:
            raise ValueError(
                f"{label}: mixture_distribution batch_shape {mix_batch} does not match "
                f"components_distribution batch_shape {comp_batch} without its last (K) dimension, "
                f"{comp_batch[:-1]}"
            ) from None
        self.mixture_distribution = mixture_distribution
        self.components_distribution = components_distribution
        self._init_common(name, validate_args)

    # --- shapes and properties --------------------------------------------------------------
    @property
    def num_components(self) -> int:
        return self.mixture_distribution.num_categories

    @property
    def batch_shape(self) -> Shape:
        return tuple(
            jnp.broadcast_shapes(
                tuple(self.mixture_distribution.batch_shape),
                tuple(self.components_distribution.batch_shape)[:-1],
            )
        )

    @property
    def event_shape(self) -> Shape:
        return tuple(self.components_distribution.event_shape)

    @property
    def support(self) -> constraints.Constraint:
        """The components' support (bounds that vary by component are merged over K)."""
        comp = self.components_distribution
        full = tuple(comp.batch_shape) + tuple(comp.event_shape)
        return _union_over_components(comp.support, full, -1 - len(self.event_shape))

    @property
    def is_discrete(self) -> bool:  # type: ignore[override]
        return self.components_distribution.is_discrete

    @property
    def dtype(self) -> DTypeLike:
        return self.components_distribution.dtype

    def _log_weights(self):
        """``log w`` with shape ``B + [K]``."""
        return jax.nn.log_softmax(self.mixture_distribution.logits, axis=-1)

    # --- sampling and densities -------------------------------------------------------------
    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        # shape = sample_shape + batch_shape.  Draw every component, then pick one per draw.
        key_mix, key_comp = jax.random.split(key)
        n_event = len(self.event_shape)
        k = self.mixture_distribution._sample(key_mix, shape)  # S + B
        xs = self.components_distribution._sample(key_comp, shape + (self.num_components,))
        xs = jnp.broadcast_to(xs, shape + (self.num_components,) + self.event_shape)  # S+B+[K]+E
        idx = k.reshape(k.shape + (1,) * (1 + n_event))
        return jnp.take_along_axis(xs, idx, axis=-1 - n_event).squeeze(-1 - n_event)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        value = jnp.asarray(value)
        n_event = len(self.event_shape)
        if value.ndim < n_event:
            value = jnp.broadcast_to(value, self.event_shape)
        # Insert the component axis just before the event dimensions: S + B + [1] + E.
        x = jnp.expand_dims(value, value.ndim - n_event)
        lp = self.components_distribution.log_prob(x)  # S + B + [K]
        return jax.nn.logsumexp(lp + self._log_weights(), axis=-1)

    def _weights_for_event(self):
        w = self.mixture_distribution.probs
        return w.reshape(w.shape + (1,) * len(self.event_shape))  # B + [K] + 1s

    def mean(self) -> jax.Array:
        w = self._weights_for_event()
        m = jnp.sum(w * self.components_distribution.mean(), axis=-1 - len(self.event_shape))
        return jnp.broadcast_to(m, self.batch_shape + self.event_shape)

    def variance(self) -> jax.Array:
        axis = -1 - len(self.event_shape)
        w = self._weights_for_event()
        mu = self.components_distribution.mean()
        m = jnp.sum(w * mu, axis=axis, keepdims=True)
        v = jnp.sum(w * (self.components_distribution.variance() + (mu - m) ** 2), axis=axis)
        return jnp.broadcast_to(v, self.batch_shape + self.event_shape)

    def __repr__(self) -> str:
        return (
            f"{self._label()}(batch_shape={self.batch_shape}, event_shape={self.event_shape}, "
            f"components={self.components_distribution!r})"
        )
