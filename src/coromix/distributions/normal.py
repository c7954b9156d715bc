"""Normal (Gaussian) distribution."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions.distribution import Distribution, batch_of, promote_floats

_half_log_2pi = 0.5 * math.log(2 * math.pi)


class Normal(Distribution):
    """Normal(loc, scale): density ``exp(-((x - loc) / scale)**2 / 2) / (scale * sqrt(2 pi))``.

    >>> Normal(0.0, 2.0).log_prob(1.0)   # -log(2) - log(2 pi)/2 - 1/8
    """

    parameter_names = ("loc", "scale")

    def __init__(self, loc=0.0, scale=1.0, *, validate_args: bool = True, name: str | None = None):
        self.loc, self.scale = promote_floats(loc, scale)
        self._init_common(name, validate_args)

    def _parameter_checks(self):
        return [("scale", self.scale > 0, "positive")]

    @property
    def batch_shape(self):
        return batch_of(self.loc, self.scale)

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
