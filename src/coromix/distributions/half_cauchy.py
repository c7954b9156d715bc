"""Half-Cauchy distribution."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from coromix import constraints
from coromix.distributions.distribution import LocationScale
from coromix.utils import ArrayLike, Shape

_log_2_over_pi = math.log(2 / math.pi)


class HalfCauchy(LocationScale):
    """HalfCauchy(loc, scale): density ``2 / (pi scale (1 + ((x - loc) / scale)**2))`` for
    ``x >= loc``; ``log_prob`` is ``-inf`` below ``loc``.

    Mean and variance are infinite: ``mean()`` and ``variance()`` return ``inf`` (as SciPy).

    >>> round(float(HalfCauchy(0.0, 1.0).log_prob(0.0)), 4)   # log(2 / pi)
    -0.4516
    """

    @property
    def support(self) -> constraints.Constraint:
        return constraints.GreaterThan(self.loc)

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        return self.loc + self.scale * jnp.abs(jax.random.cauchy(key, shape, self.dtype))

    def _value_constraint(self) -> constraints.Constraint:
        return constraints.real  # -inf below `loc`: it may be another component's range

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        z = (x - self.loc) / self.scale
        out = _log_2_over_pi - jnp.log(self.scale) - jnp.log1p(z**2)
        return jnp.where(x >= self.loc, out, -jnp.inf)

    def mean(self) -> jax.Array:
        return jnp.full(self.batch_shape, jnp.inf, self.dtype)

    def variance(self) -> jax.Array:
        return jnp.full(self.batch_shape, jnp.inf, self.dtype)
