"""Cauchy distribution."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions.distribution import LocationScale

_log_pi = math.log(math.pi)


class Cauchy(LocationScale):
    """Cauchy(loc, scale): density ``1 / (pi scale (1 + ((x - loc) / scale)**2))``.

    Mean and variance are undefined: ``mean()`` and ``variance()`` return NaN (as TFP and SciPy).

    >>> Cauchy(0.0, 1.0).log_prob(0.0)   # -log(pi)
    """

    @property
    def support(self):
        return constraints.real

    def _sample(self, key, shape):
        return self.loc + self.scale * jax.random.cauchy(key, shape, self.dtype)

    def log_prob(self, value):
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        z = (x - self.loc) / self.scale
        return -_log_pi - jnp.log(self.scale) - jnp.log1p(z**2)

    def mean(self):
        return jnp.full(self.batch_shape, jnp.nan, self.dtype)

    def variance(self):
        return jnp.full(self.batch_shape, jnp.nan, self.dtype)
