"""Half-normal distribution."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions.distribution import Distribution
from coromix.utils import promote_floats

_half_log_2_over_pi = 0.5 * math.log(2 / math.pi)


class HalfNormal(Distribution):
    """HalfNormal(scale): density ``sqrt(2 / pi) / scale * exp(-(x / scale)**2 / 2)`` for ``x >= 0``.

    ``log_prob`` is ``-inf`` for ``x < 0``.

    >>> HalfNormal(2.0).log_prob(1.0)   # log(2 / pi) / 2 - log(2) - 1/8
    """

    parameter_names = ("scale",)

    def __init__(self, scale=1.0, *, validate_args: bool = True, name: str | None = None):
        (self.scale,) = promote_floats(scale)
        self._init_common(name, validate_args)

    def _parameter_checks(self):
        return [("scale", self.scale > 0, "positive")]

    @property
    def support(self):
        return constraints.positive

    def _sample(self, key, shape):
        return self.scale * jnp.abs(jax.random.normal(key, shape, self.dtype))

    def log_prob(self, value):
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        z = x / self.scale
        out = _half_log_2_over_pi - jnp.log(self.scale) - 0.5 * z**2
        return jnp.where(x >= 0, out, -jnp.inf)

    def mean(self):
        return jnp.broadcast_to(self.scale * math.sqrt(2 / math.pi), self.batch_shape)

    def variance(self):
        return jnp.broadcast_to(self.scale**2 * (1 - 2 / math.pi), self.batch_shape)
