"""Sample: iid draws of a distribution as extra event dimensions (TFP's ``tfd.Sample``)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from coromix import constraints
from coromix.distributions.distribution import Distribution
from coromix.utils import ArrayLike, Shape, as_shape


class Sample(Distribution):
    """Sample(distribution, sample_shape): ``prod(sample_shape)`` iid draws of ``distribution``
    as one event of shape ``sample_shape + distribution.event_shape`` (batch shape unchanged);
    ``log_prob`` sums the base log densities over the ``sample_shape`` dimensions.

    >>> from coromix.distributions import Normal
    >>> d = Sample(Normal(0.0, 1.0), 3)
    >>> d.batch_shape, d.event_shape
    ((), (3,))
    >>> round(float(d.log_prob(jnp.zeros(3))), 4)   # 3 log N(0 | 0, 1) = -3 log(2 pi) / 2
    -2.7568
    """

    parameter_names = ("distribution",)
    static_names = ("sample_shape",)

    def __init__(
        self,
        distribution: Distribution,
        sample_shape: int | Sequence[int] = (),
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        label = f"Sample '{name}'" if name else "Sample"
        if not isinstance(distribution, Distribution):
            raise TypeError(
                f"{label}: `distribution` must be a coromix Distribution; "
                f"got {type(distribution).__name__}"
            )
        shape = as_shape(sample_shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"{label}: `sample_shape` must have nonnegative sizes; got {shape}")
        self.distribution = distribution
        self.sample_shape = shape
        self._init_common(name, validate_args)

    @property
    def is_discrete(self) -> bool:  # type: ignore[override]  # follows the base distribution
        return self.distribution.is_discrete

    @property
    def batch_shape(self) -> Shape:
        return tuple(self.distribution.batch_shape)

    @property
    def event_shape(self) -> Shape:
        return self.sample_shape + tuple(self.distribution.event_shape)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.Independent(self.distribution.support, len(self.sample_shape))

    @property
    def dtype(self) -> DTypeLike:
        return self.distribution.dtype

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        # Draw with the sample dims in front of the base's batch dims (where the base broadcasts
        # its parameters), then move them between the batch and the base's event dims.
        shape = tuple(shape)
        n_outer = len(shape) - len(self.batch_shape)
        s, b = len(self.sample_shape), len(self.batch_shape)
        e = len(self.distribution.event_shape)
        x = self.distribution._sample(key, shape[:n_outer] + self.sample_shape + shape[n_outer:])
        perm = (
            tuple(range(n_outer))
            + tuple(range(n_outer + s, n_outer + s + b))
            + tuple(range(n_outer, n_outer + s))
            + tuple(range(n_outer + s + b, n_outer + s + b + e))
        )
        return jnp.transpose(x, perm)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        x = jnp.asarray(value)
        s, b = len(self.sample_shape), len(self.batch_shape)
        e = len(self.distribution.event_shape)
        x = jnp.broadcast_to(x, jnp.broadcast_shapes(x.shape, self.batch_shape + self.event_shape))
        n_outer = x.ndim - (b + s + e)
        # (outer, batch, sample, event) -> (outer, sample, batch, event) for the base.
        perm = (
            tuple(range(n_outer))
            + tuple(range(n_outer + b, n_outer + b + s))
            + tuple(range(n_outer, n_outer + b))
            + tuple(range(n_outer + b + s, x.ndim))
        )
        lp = self.distribution.log_prob(jnp.transpose(x, perm))
        # lp: (outer, sample, batch); sum the sample dims.
        return jnp.sum(lp, axis=tuple(range(n_outer, n_outer + s)))

    def _expand(self, stat):
        b, e = len(self.batch_shape), len(self.distribution.event_shape)
        stat = jnp.broadcast_to(stat, self.batch_shape + tuple(self.distribution.event_shape))
        stat = jnp.reshape(
            stat, self.batch_shape + (1,) * len(self.sample_shape) + tuple(stat.shape[b : b + e])
        )
        return jnp.broadcast_to(stat, self.batch_shape + self.event_shape)

    def mean(self) -> jax.Array:
        return self._expand(self.distribution.mean())

    def variance(self) -> jax.Array:
        return self._expand(self.distribution.variance())
