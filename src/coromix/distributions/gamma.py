"""Gamma distribution."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, xlogy

from coromix import constraints
from coromix.distributions.distribution import Distribution, float_parameters, label_of
from coromix.utils import ArrayLike, Shape


class Gamma(Distribution):
    """Gamma(concentration, rate): density
    ``rate**concentration x**(concentration - 1) exp(-rate x) / Gamma(concentration)`` for ``x > 0``.

    ``log_prob`` is ``-inf`` for ``x < 0``; at ``x = 0`` it is the density's limit (as SciPy and TFP):
    ``log(rate)`` when ``concentration = 1``, ``-inf`` above 1 and ``+inf`` below 1.

    >>> round(float(Gamma(2.0, 3.0).log_prob(1.0)), 4)   # 2 log(3) - 3
    -0.8028
    """

    parameter_names = ("concentration", "rate")

    def __init__(
        self,
        concentration: ArrayLike,
        rate: ArrayLike = 1.0,
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        self.concentration, self.rate = float_parameters(
            label_of("Gamma", name), concentration=concentration, rate=rate
        )
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        return [
            ("concentration", self.concentration > 0, "positive"),
            ("rate", self.rate > 0, "positive"),
        ]

    @property
    def support(self) -> constraints.Constraint:
        return constraints.positive

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        c = jnp.broadcast_to(self.concentration, shape)
        # small concentrations can underflow to 0: keep draws inside the support x > 0
        g = jnp.maximum(jax.random.gamma(key, c, shape, self.dtype), jnp.finfo(self.dtype).tiny)
        return g / self.rate

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        c, rate = self.concentration, self.rate
        inside = x >= 0
        safe_x = jnp.where(inside, x, 1)
        out = xlogy(c - 1, safe_x) - rate * safe_x - gammaln(c) + c * jnp.log(rate)
        return jnp.where(inside, out, -jnp.inf)

    def mean(self) -> jax.Array:
        return jnp.broadcast_to(self.concentration / self.rate, self.batch_shape)

    def variance(self) -> jax.Array:
        return jnp.broadcast_to(self.concentration / self.rate**2, self.batch_shape)
