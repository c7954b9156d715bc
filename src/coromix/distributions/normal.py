"""Normal (Gaussian) distribution."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions.distribution import LocationScale
from coromix.utils import ArrayLike, Shape

_half_log_2pi = 0.5 * math.log(2 * math.pi)


class Normal(LocationScale):
    """Normal(loc, scale): density ``exp(-((x - loc) / scale)**2 / 2) / (scale * sqrt(2 pi))``.

    >>> round(float(Normal(0.0, 2.0).log_prob(1.0)), 4)   # -log(2) - log(2 pi)/2 - 1/8
    -1.7371
    """

    @property
    def support(self) -> constraints.Constraint:
        return constraints.real

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        return self.loc + self.scale * jax.random.normal(key, shape, self.dtype)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        z = (value - self.loc) / self.scale
        return -0.5 * z**2 - jnp.log(self.scale) - _half_log_2pi

    def mean(self) -> jax.Array:
        return jnp.broadcast_to(self.loc, self.batch_shape)

    def variance(self) -> jax.Array:
        return jnp.broadcast_to(self.scale**2, self.batch_shape)
