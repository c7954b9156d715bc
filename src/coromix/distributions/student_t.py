"""Student's t distribution."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln

from coromix import constraints
from coromix.distributions.distribution import Distribution, float_parameters, label_of
from coromix.utils import ArrayLike, Shape


class StudentT(Distribution):
    """StudentT(df, loc, scale): with ``z = (x - loc) / scale``, density
    ``Gamma((df + 1) / 2) / (Gamma(df / 2) sqrt(df pi) scale) * (1 + z**2 / df)**(-(df + 1) / 2)``.

    The mean is ``loc`` for ``df > 1`` (NaN otherwise: undefined); the variance is
    ``scale**2 df / (df - 2)`` for ``df > 2``, ``inf`` for ``1 < df <= 2`` and NaN for ``df <= 1``.

    >>> round(float(StudentT(3.0, 0.0, 1.0).log_prob(0.0)), 4)   # log(2 / (pi sqrt(3)))
    -1.0009
    """

    parameter_names = ("df", "loc", "scale")

    def __init__(
        self,
        df: ArrayLike,
        loc: ArrayLike = 0.0,
        scale: ArrayLike = 1.0,
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        self.df, self.loc, self.scale = float_parameters(
            label_of("StudentT", name), df=df, loc=loc, scale=scale
        )
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        return [
            ("df", self.df > 0, "positive"),
            ("loc", jnp.isfinite(self.loc), "finite"),
            ("scale", self.scale > 0, "positive"),
        ]

    @property
    def support(self) -> constraints.Constraint:
        return constraints.real

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        df = jnp.broadcast_to(self.df, shape)
        return self.loc + self.scale * jax.random.t(key, df, shape, self.dtype)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        df = self.df
        z = (x - self.loc) / self.scale
        return (
            gammaln(0.5 * (df + 1))
            - gammaln(0.5 * df)
            - 0.5 * jnp.log(df * math.pi)
            - jnp.log(self.scale)
            - 0.5 * (df + 1) * jnp.log1p(z**2 / df)
        )

    def mean(self) -> jax.Array:
        loc = jnp.broadcast_to(self.loc, self.batch_shape)
        return jnp.where(self.df > 1, loc, jnp.nan)

    def variance(self) -> jax.Array:
        df = jnp.broadcast_to(self.df, self.batch_shape)
        safe_df = jnp.where(df > 2, df, 3)
        var = self.scale**2 * safe_df / (safe_df - 2)
        return jnp.where(df > 2, var, jnp.where(df > 1, jnp.inf, jnp.nan))
