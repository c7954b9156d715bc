"""Inverse-gamma distribution."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from coromix import constraints
from coromix.distributions.distribution import Distribution, float_parameters, label_of
from coromix.utils import ArrayLike, Shape


class InverseGamma(Distribution):
    """InverseGamma(concentration, scale): ``1 / X ~ Gamma(concentration, rate=scale)``; density
    ``scale**concentration x**(-concentration - 1) exp(-scale / x) / Gamma(concentration)``, ``x > 0``.

    ``log_prob`` is ``-inf`` for ``x <= 0``.  The mean is ``scale / (concentration - 1)`` and the
    variance ``scale**2 / ((concentration - 1)**2 (concentration - 2))``; both are ``inf`` where
    they diverge (``concentration <= 1``, resp. ``<= 2``), as SciPy.

    >>> round(float(InverseGamma(3.0, 2.0).log_prob(1.0)), 4)   # 3 log(2) - log(Gamma(3)) - 2
    -0.6137
    """

    parameter_names = ("concentration", "scale")

    def __init__(
        self,
        concentration: ArrayLike,
        scale: ArrayLike = 1.0,
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        self.concentration, self.scale = float_parameters(
            label_of("InverseGamma", name), concentration=concentration, scale=scale
        )
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        return [
            ("concentration", self.concentration > 0, "positive"),
            ("scale", self.scale > 0, "positive"),
        ]

    @property
    def support(self) -> constraints.Constraint:
        return constraints.positive

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        c = jnp.broadcast_to(self.concentration, shape)
        # small concentrations can underflow to 0: keep draws finite
        g = jnp.maximum(jax.random.gamma(key, c, shape, self.dtype), jnp.finfo(self.dtype).tiny)
        return self.scale / g

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        c, scale = self.concentration, self.scale
        inside = x > 0
        safe_x = jnp.where(inside, x, 1)
        out = c * jnp.log(scale) - gammaln(c) - (c + 1) * jnp.log(safe_x) - scale / safe_x
        return jnp.where(inside, out, -jnp.inf)

    def mean(self) -> jax.Array:
        c = jnp.broadcast_to(self.concentration, self.batch_shape)
        safe_c = jnp.where(c > 1, c, 2)
        return jnp.where(c > 1, self.scale / (safe_c - 1), jnp.inf)

    def variance(self) -> jax.Array:
        c = jnp.broadcast_to(self.concentration, self.batch_shape)
        safe_c = jnp.where(c > 2, c, 3)
        return jnp.where(c > 2, self.scale**2 / ((safe_c - 1) ** 2 * (safe_c - 2)), jnp.inf)
