"""Independent: reinterpret batch dimensions of a distribution as event dimensions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from coromix import constraints
from coromix.distributions.distribution import Distribution
from coromix.utils import ArrayLike, Shape


class Independent(Distribution):
    """Independent(distribution, reinterpreted_batch_ndims): the rightmost
    ``reinterpreted_batch_ndims`` batch dimensions of ``distribution`` become event dimensions
    (all of them when ``None``, as TFP); ``log_prob`` sums the base log densities over them.

    >>> from coromix.distributions import Normal
    >>> d = Independent(Normal(jnp.zeros(3), 1.0), 1)
    >>> d.batch_shape, d.event_shape
    ((), (3,))
    >>> round(float(d.log_prob(jnp.zeros(3))), 4)   # 3 log N(0 | 0, 1) = -3 log(2 pi) / 2
    -2.7568
    """

    parameter_names = ("distribution",)
    static_names = ("reinterpreted_batch_ndims",)

    def __init__(
        self,
        distribution: Distribution,
        reinterpreted_batch_ndims: int | None = None,
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        label = f"Independent '{name}'" if name else "Independent"
        if not isinstance(distribution, Distribution):
            raise TypeError(
                f"{label}: `distribution` must be a coromix Distribution; "
                f"got {type(distribution).__name__}"
            )
        base_ndims = len(distribution.batch_shape)
        if reinterpreted_batch_ndims is None:
            reinterpreted_batch_ndims = base_ndims
        n = int(reinterpreted_batch_ndims)
        if n != reinterpreted_batch_ndims or not 0 <= n <= base_ndims:
            raise ValueError(
                f"{label}: `reinterpreted_batch_ndims` must be an integer in "
                f"[0, {base_ndims}] (the base's batch_shape is "
                f"{distribution.batch_shape}); got {reinterpreted_batch_ndims}"
            )
        self.distribution = distribution
        self.reinterpreted_batch_ndims = n
        self._init_common(name, validate_args)

    @property
    def is_discrete(self) -> bool:  # type: ignore[override]  # follows the base distribution
        return self.distribution.is_discrete

    @property
    def _split(self) -> int:
        return len(self.distribution.batch_shape) - self.reinterpreted_batch_ndims

    @property
    def batch_shape(self) -> Shape:
        return tuple(self.distribution.batch_shape)[: self._split]

    @property
    def event_shape(self) -> Shape:
        base = self.distribution
        return tuple(base.batch_shape)[self._split :] + tuple(base.event_shape)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.Independent(self.distribution.support, self.reinterpreted_batch_ndims)

    @property
    def dtype(self) -> DTypeLike:
        return self.distribution.dtype

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        moved = tuple(self.distribution.batch_shape)[self._split :]
        return self.distribution._sample(key, tuple(shape) + moved)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        lp = self.distribution.log_prob(value)
        n = self.reinterpreted_batch_ndims
        return jnp.sum(lp, axis=tuple(range(-n, 0))) if n else lp

    def mean(self) -> jax.Array:
        return self.distribution.mean()

    def variance(self) -> jax.Array:
        return self.distribution.variance()
