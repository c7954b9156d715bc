"""Beta distribution."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import betaln, xlog1py, xlogy

from coromix import constraints
from coromix.distributions.distribution import Distribution, float_parameters, label_of
from coromix.utils import ArrayLike, Shape


class Beta(Distribution):
    """Beta(concentration1, concentration0): with ``a = concentration1``, ``b = concentration0``,
    density ``x**(a - 1) (1 - x)**(b - 1) / B(a, b)`` for ``0 < x < 1``.

    ``log_prob`` is ``-inf`` outside ``[0, 1]``; at 0 and 1 it is the density's limit (as SciPy).

    >>> round(float(Beta(2.0, 3.0).log_prob(0.5)), 4)   # log(0.5 * 0.5**2 / B(2, 3)) = log(1.5)
    0.4055
    """

    parameter_names = ("concentration1", "concentration0")

    def __init__(
        self,
        concentration1: ArrayLike,
        concentration0: ArrayLike,
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        self.concentration1, self.concentration0 = float_parameters(
            label_of("Beta", name), concentration1=concentration1, concentration0=concentration0
        )
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        return [
            ("concentration1", self.concentration1 > 0, "positive"),
            ("concentration0", self.concentration0 > 0, "positive"),
        ]

    @property
    def support(self) -> constraints.Constraint:
        return constraints.unit_interval

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        a = jnp.broadcast_to(self.concentration1, shape)
        b = jnp.broadcast_to(self.concentration0, shape)
        x = jax.random.beta(key, a, b, shape, self.dtype)
        # float32 rounding can give exactly 0 or 1; keep draws inside the open support (0, 1)
        finfo = jnp.finfo(self.dtype)
        return jnp.clip(x, finfo.tiny, 1 - finfo.epsneg)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        a, b = self.concentration1, self.concentration0
        inside = (x >= 0) & (x <= 1)
        safe_x = jnp.where(inside, x, 0.5)
        out = xlogy(a - 1, safe_x) + xlog1py(b - 1, -safe_x) - betaln(a, b)
        return jnp.where(inside, out, -jnp.inf)

    def mean(self) -> jax.Array:
        a, b = self.concentration1, self.concentration0
        return jnp.broadcast_to(a / (a + b), self.batch_shape)

    def variance(self) -> jax.Array:
        a, b = self.concentration1, self.concentration0
        total = a + b
        return jnp.broadcast_to(a * b / (total**2 * (total + 1)), self.batch_shape)
