"""Laplace (double exponential) distribution."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions.distribution import LocationScale
from coromix.utils import ArrayLike, Shape

_log_2 = math.log(2)


class Laplace(LocationScale):
    """Laplace(loc, scale): density ``exp(-|x - loc| / scale) / (2 scale)``.

    >>> round(float(Laplace(0.0, 1.0).log_prob(1.0)), 4)   # -log(2) - 1
    -1.6931
    """

    @property
    def support(self) -> constraints.Constraint:
        return constraints.real

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        return self.loc + self.scale * jax.random.laplace(key, shape, self.dtype)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        return -jnp.abs(x - self.loc) / self.scale - jnp.log(self.scale) - _log_2

    def mean(self) -> jax.Array:
        return jnp.broadcast_to(self.loc, self.batch_shape)

    def variance(self) -> jax.Array:
        return jnp.broadcast_to(2 * self.scale**2, self.batch_shape)
