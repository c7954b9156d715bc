"""Cauchy distribution."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions.distribution import LocationScale
from coromix.utils import ArrayLike, Shape

_log_pi = math.log(math.pi)


class Cauchy(LocationScale):
    """Cauchy(loc, scale): density ``1 / (pi scale (1 + ((x - loc) / scale)**2))``.

    Mean and variance are undefined: ``mean()`` and ``variance()`` return NaN (as TFP and SciPy).

    >>> round(float(Cauchy(0.0, 1.0).log_prob(0.0)), 4)   # -log(pi)
    -1.1447
    """

    @property
    def support(self) -> constraints.Constraint:
        return constraints.real

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        return self.loc + self.scale * jax.random.cauchy(key, shape, self.dtype)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        z = (x - self.loc) / self.scale
        return -_log_pi - jnp.log(self.scale) - jnp.log1p(z**2)

    def mean(self) -> jax.Array:
        return jnp.full(self.batch_shape, jnp.nan, self.dtype)

    def variance(self) -> jax.Array:
        return jnp.full(self.batch_shape, jnp.nan, self.dtype)
