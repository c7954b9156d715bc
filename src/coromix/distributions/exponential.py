"""Exponential distribution."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions.distribution import Distribution, float_parameters, label_of
from coromix.utils import ArrayLike, Shape


class Exponential(Distribution):
    """Exponential(rate): density ``rate * exp(-rate x)`` for ``x >= 0``; ``-inf`` log density below 0.

    >>> round(float(Exponential(2.0).log_prob(1.0)), 4)   # log(2) - 2
    -1.3069
    """

    parameter_names = ("rate",)

    def __init__(
        self, rate: ArrayLike = 1.0, *, validate_args: bool = True, name: str | None = None
    ) -> None:
        (self.rate,) = float_parameters(label_of("Exponential", name), rate=rate)
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        return [("rate", self.rate > 0, "positive")]

    @property
    def support(self) -> constraints.Constraint:
        return constraints.positive

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        # a uniform draw of exactly 0 gives 0: keep draws inside the support x > 0 (as TFP)
        e = jnp.maximum(jax.random.exponential(key, shape, self.dtype), jnp.finfo(self.dtype).tiny)
        return e / self.rate

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        return jnp.where(x >= 0, jnp.log(self.rate) - self.rate * x, -jnp.inf)

    def mean(self) -> jax.Array:
        return jnp.broadcast_to(1 / self.rate, self.batch_shape)

    def variance(self) -> jax.Array:
        return jnp.broadcast_to(self.rate**-2, self.batch_shape)
