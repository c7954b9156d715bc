"""Dirichlet distribution over the probability simplex."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, xlogy

from coromix import constraints
from coromix.distributions.distribution import Distribution, float_parameters, label_of
from coromix.utils import ArrayLike, Shape


class Dirichlet(Distribution):
    """Dirichlet(concentration): with ``a = concentration`` (last axis: K categories), density
    ``prod_k x_k**(a_k - 1) * Gamma(sum_k a_k) / prod_k Gamma(a_k)`` on the simplex.

    ``event_shape`` is ``(K,)``; ``log_prob`` is ``-inf`` off the simplex (a negative coordinate or
    a sum farther from 1 than 1e-4 in float32, 1e-10 in float64).

    >>> d = Dirichlet([1.0, 1.0, 1.0])
    >>> d.batch_shape, d.event_shape
    ((), (3,))
    >>> round(float(d.log_prob([0.2, 0.3, 0.5])), 4)   # log Gamma(3) = log(2)
    0.6931
    """

    parameter_names = ("concentration",)

    def __init__(
        self, concentration: ArrayLike, *, validate_args: bool = True, name: str | None = None
    ) -> None:
        label = label_of("Dirichlet", name)
        (self.concentration,) = float_parameters(label, concentration=concentration)
        if self.concentration.ndim == 0:
            raise ValueError(
                f"{label}: `concentration` needs a last axis of K categories; got a scalar"
            )
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        return [("concentration", self.concentration > 0, "positive")]

    @property
    def batch_shape(self) -> Shape:
        return tuple(self.concentration.shape[:-1])

    @property
    def event_shape(self) -> Shape:
        return tuple(self.concentration.shape[-1:])

    @property
    def support(self) -> constraints.Constraint:
        return constraints.simplex

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        return jax.random.dirichlet(key, self.concentration, shape, self.dtype)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        a = self.concentration
        k = a.shape[-1]
        tol = 1e-4 if x.dtype == jnp.float32 else 1e-10
        inside = jnp.all(x >= 0, axis=-1) & (jnp.abs(jnp.sum(x, axis=-1) - 1) < tol)
        safe_x = jnp.where(inside[..., None], x, 1 / k)
        log_norm = jnp.sum(gammaln(a), axis=-1) - gammaln(jnp.sum(a, axis=-1))
        out = jnp.sum(xlogy(a - 1, safe_x), axis=-1) - log_norm
        return jnp.where(inside, out, -jnp.inf)

    def mean(self) -> jax.Array:
        a = self.concentration
        return a / jnp.sum(a, axis=-1, keepdims=True)

    def variance(self) -> jax.Array:
        a = self.concentration
        a0 = jnp.sum(a, axis=-1, keepdims=True)
        return a * (a0 - a) / (a0**2 * (a0 + 1))
