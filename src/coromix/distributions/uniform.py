"""Continuous uniform distribution."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions.distribution import Distribution
from coromix.utils import promote_floats


class Uniform(Distribution):
    """Uniform(low, high): density ``1 / (high - low)`` on ``[low, high]``, ``-inf`` log density
    outside.

    >>> Uniform(0.0, 4.0).log_prob(1.0)   # -log(4)
    """

    parameter_names = ("low", "high")

    def __init__(self, low=0.0, high=1.0, *, validate_args: bool = True, name: str | None = None):
        self.low, self.high = promote_floats(low, high)
        self._init_common(name, validate_args)

    def _parameter_checks(self):
        return [("high", self.high > self.low, "greater than `low`")]

    @property
    def support(self):
        return constraints.Interval(self.low, self.high)

    def _sample(self, key, shape):
        u = jax.random.uniform(key, shape, self.dtype)
        return self.low + (self.high - self.low) * u

    def log_prob(self, value):
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        inside = (x >= self.low) & (x <= self.high)
        return jnp.where(inside, -jnp.log(self.high - self.low), -jnp.inf)

    def mean(self):
        return jnp.broadcast_to((self.low + self.high) / 2, self.batch_shape)

    def variance(self):
        return jnp.broadcast_to((self.high - self.low) ** 2 / 12, self.batch_shape)
