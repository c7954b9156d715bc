"""Half-normal distribution."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions.distribution import Distribution, float_parameters, label_of
from coromix.utils import ArrayLike, Shape

_half_log_2_over_pi = 0.5 * math.log(2 / math.pi)


class HalfNormal(Distribution):
    """HalfNormal(scale): density ``sqrt(2 / pi) / scale * exp(-(x / scale)**2 / 2)`` for ``x >= 0``.

    ``log_prob`` is ``-inf`` for ``x < 0``.

    >>> round(float(HalfNormal(2.0).log_prob(1.0)), 4)   # log(2 / pi) / 2 - log(2) - 1/8
    -1.0439
    """

    parameter_names = ("scale",)

    def __init__(
        self, scale: ArrayLike = 1.0, *, validate_args: bool = True, name: str | None = None
    ) -> None:
        (self.scale,) = float_parameters(label_of("HalfNormal", name), scale=scale)
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        return [("scale", self.scale > 0, "positive")]

    @property
    def support(self) -> constraints.Constraint:
        return constraints.positive

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        return self.scale * jnp.abs(jax.random.normal(key, shape, self.dtype))

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        z = x / self.scale
        out = _half_log_2_over_pi - jnp.log(self.scale) - 0.5 * z**2
        return jnp.where(x >= 0, out, -jnp.inf)

    def mean(self) -> jax.Array:
        return jnp.broadcast_to(self.scale * math.sqrt(2 / math.pi), self.batch_shape)

    def variance(self) -> jax.Array:
        return jnp.broadcast_to(self.scale**2 * (1 - 2 / math.pi), self.batch_shape)
