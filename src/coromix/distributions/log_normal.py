"""Log-normal distribution."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions.distribution import LocationScale
from coromix.utils import ArrayLike, Shape

_half_log_2pi = 0.5 * math.log(2 * math.pi)


class LogNormal(LocationScale):
    """LogNormal(loc, scale): ``log(X) ~ Normal(loc, scale)``; density
    ``exp(-((log(x) - loc) / scale)**2 / 2) / (x * scale * sqrt(2 pi))`` for ``x > 0``.

    ``log_prob`` is ``-inf`` for ``x <= 0``.

    >>> round(float(LogNormal(0.0, 1.0).log_prob(1.0)), 4)   # -log(2 pi) / 2
    -0.9189
    """

    @property
    def support(self) -> constraints.Constraint:
        return constraints.positive

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        return jnp.exp(self.loc + self.scale * jax.random.normal(key, shape, self.dtype))

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        inside = x > 0
        log_x = jnp.log(jnp.where(inside, x, 1))
        z = (log_x - self.loc) / self.scale
        out = -0.5 * z**2 - jnp.log(self.scale) - _half_log_2pi - log_x
        return jnp.where(inside, out, -jnp.inf)

    def mean(self) -> jax.Array:
        return jnp.broadcast_to(jnp.exp(self.loc + 0.5 * self.scale**2), self.batch_shape)

    def variance(self) -> jax.Array:
        s2 = self.scale**2
        return jnp.broadcast_to(jnp.expm1(s2) * jnp.exp(2 * self.loc + s2), self.batch_shape)
