"""Normal (Gaussian) distribution."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions.distribution import LocationScale

_half_log_2pi = 0.5 * math.log(2 * math.pi)


class Normal(LocationScale):
    """Normal(loc, scale): density ``exp(-((x - loc) / scale)**2 / 2) / (scale * sqrt(2 pi))``.

    >>> Normal(0.0, 2.0).log_prob(1.0)   # -log(2) - log(2 pi)/2 - 1/8
    """

    @property
    def support(self):
        return constraints.real

    def _sample(self, key, shape):
        return self.loc + self.scale * jax.random.normal(key, shape, self.dtype)

    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        return -0.5 * z**2 - jnp.log(self.scale) - _half_log_2pi

    def mean(self):
        return jnp.broadcast_to(self.loc, self.batch_shape)

    def variance(self):
        return jnp.broadcast_to(self.scale**2, self.batch_shape)
