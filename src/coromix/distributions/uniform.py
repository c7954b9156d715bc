"""Continuous uniform distribution."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions.distribution import Distribution, float_parameters, label_of
from coromix.utils import ArrayLike, Shape


class Uniform(Distribution):
    """Uniform(low, high): density ``1 / (high - low)`` on ``[low, high]``, ``-inf`` log density
    outside.

    >>> round(float(Uniform(0.0, 4.0).log_prob(1.0)), 4)   # -log(4)
    -1.3863
    """

    parameter_names = ("low", "high")

    def __init__(
        self,
        low: ArrayLike = 0.0,
        high: ArrayLike = 1.0,
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        self.low, self.high = float_parameters(label_of("Uniform", name), low=low, high=high)
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        return [
            ("low", jnp.isfinite(self.low), "finite"),
            ("high", jnp.isfinite(self.high), "finite"),
            ("high", self.high > self.low, "greater than `low`"),
        ]

    @property
    def support(self) -> constraints.Constraint:
        return constraints.Interval(self.low, self.high)

    def _value_constraint(self) -> constraints.Constraint:
        return constraints.real  # -inf outside [low, high]: it may be another component's range

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        u = jax.random.uniform(key, shape, self.dtype)
        return self.low + (self.high - self.low) * u

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        inside = (x >= self.low) & (x <= self.high)
        return jnp.where(inside, -jnp.log(self.high - self.low), -jnp.inf)

    def mean(self) -> jax.Array:
        return jnp.broadcast_to((self.low + self.high) / 2, self.batch_shape)

    def variance(self) -> jax.Array:
        return jnp.broadcast_to((self.high - self.low) ** 2 / 12, self.batch_shape)
