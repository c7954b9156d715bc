"""Ordered: an exchangeable batch of K scalars restricted to strictly increasing vectors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from coromix import constraints
from coromix.distributions.distribution import Distribution
from coromix.utils import ArrayLike, Shape, as_float, is_concrete


class Ordered(Distribution):
    """Ordered(distribution): the base's K iid draws, sorted; a strictly increasing K-vector.

    The base's last batch dimension (length K) becomes the event dimension, like ``Independent``
    with one reinterpreted dimension.  Use it to break label switching in mixtures::

        mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(3), 5.0))   # mu[0] < mu[1] < mu[2]

    Density: ``log_prob(x) = sum_k base.log_prob(x_k) + log(K!)`` where ``x`` is strictly increasing
    and ``-inf`` elsewhere; sampling sorts K base draws.  Support: ``ordered_vector``, or
    ``positive_ordered_vector`` when the base's support is ``positive``.

    >>> from coromix.distributions import Normal
    >>> d = Ordered(Normal(jnp.zeros(2), 1.0))
    >>> d.batch_shape, d.event_shape
    ((), (2,))
    >>> print(d.support)
    ordered vector (strictly increasing)
    >>> round(float(d.log_prob([-1.0, 1.0])), 4)   # 2 log N(1 | 0, 1) + log(2!) = -log(pi) - 1
    -2.1447
    >>> float(d.log_prob([1.0, -1.0]))   # not increasing
    -inf

    **The base must be exchangeable along its last batch axis**: the K scalars iid, i.e. every
    parameter the same for all K (``Normal(jnp.zeros(3), 5.0)``, not
    ``Normal(jnp.arange(3.0), 1.0)``).
    Only then is the density above normalized (the sorted vector of K iid draws has exactly that
    density) and ``sample`` its draw.  With a non-exchangeable base the normalizing constant is not
    ``K!`` and depends on the parameters, so the posterior would be wrong; this is checked when the
    parameters are concrete and ``validate_args`` is true (it cannot be checked under ``jit``).
    The base must be continuous with scalar events and support ``real`` or ``positive``.
    """

    parameter_names = ("distribution",)

    def __init__(
        self, distribution: Distribution, *, validate_args: bool = True, name: str | None = None
    ) -> None:
        label = f"Ordered '{name}'" if name else "Ordered"
        if not isinstance(distribution, Distribution):
            raise TypeError(
                f"{label}: needs a coromix distribution; got {type(distribution).__name__}"
            )
        if distribution.is_discrete:
            raise TypeError(
                f"{label}: the base {distribution._label()} is discrete; "
                "Ordered needs a continuous base"
            )
        if tuple(distribution.event_shape) != ():
            raise ValueError(
                f"{label}: the base must have scalar events; got event_shape "
                f"{tuple(distribution.event_shape)}"
            )
        if len(distribution.batch_shape) == 0:
            raise ValueError(
                f"{label}: the base needs a last batch dimension of K values to order "
                f"(e.g. Normal(jnp.zeros(K), 1.0)); got batch_shape ()"
            )
        if _ordered_support(distribution.support) is None:
            raise ValueError(
                f"{label}: the base's support must be real or positive; got "
                f"'{distribution.support}'"
            )
        self.distribution = distribution
        self._init_common(name, validate_args)

    def _validate(self) -> None:
        super()._validate()
        k = self.num_values
        for leaf in jax.tree_util.tree_leaves(self.distribution):
            if not is_concrete(leaf):
                continue
            leaf = np.asarray(leaf)
            # Parameters broadcast from the right, so a leaf's last axis is the K axis.
            if leaf.ndim == 0 or leaf.shape[-1] == 1:
                continue
            if leaf.shape[-1] == k and not np.all(leaf == leaf[..., :1]):
                raise ValueError(
                    f"{self._label()}: the base {self.distribution._label()} must be exchangeable "
                    "(the same parameters for all K values along its last batch axis, e.g. "
                    "Normal(jnp.zeros(K), 5.0)); its parameters differ along that axis, so log(K!) "
                    "would not normalize the ordered density"
                )

    @property
    def num_values(self) -> int:
        """K, the length of the ordered vector."""
        return int(self.distribution.batch_shape[-1])

    @property
    def batch_shape(self) -> Shape:
        return tuple(self.distribution.batch_shape[:-1])

    @property
    def event_shape(self) -> Shape:
        return (self.num_values,)

    @property
    def support(self) -> constraints.Constraint:
        return _ordered_support(self.distribution.support)

    @property
    def dtype(self) -> DTypeLike:
        return self.distribution.dtype

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        draws = self.distribution._sample(key, tuple(shape) + (self.num_values,))
        return jnp.sort(draws, axis=-1)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        value = as_float(value)
        k = self.num_values
        lp = jnp.sum(self.distribution.log_prob(value), axis=-1) + math.lgamma(k + 1)
        increasing = jnp.all(jnp.diff(value, axis=-1) > 0, axis=-1)
        return jnp.where(increasing, lp, -jnp.inf)


def _ordered_support(base_support):
    if isinstance(base_support, constraints.Real):
        return constraints.ordered_vector
    if isinstance(base_support, constraints.Positive):
        return constraints.positive_ordered_vector
    return None
