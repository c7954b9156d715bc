"""Poisson distribution."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, xlogy
from jax.typing import DTypeLike

from coromix import constraints
from coromix.distributions.distribution import Distribution, float_parameters, label_of
from coromix.utils import ArrayLike, Shape


class Poisson(Distribution):
    """Poisson(rate=r) or Poisson(log_rate=log(r)): ``P(X = k) = r**k exp(-r) / k!`` for integers
    ``k >= 0``.

    Samples are int32; ``log_prob`` is ``-inf`` for negative or non-integer values.

    >>> round(float(Poisson(rate=2.0).log_prob(1)), 4)   # log(2) - 2
    -1.3069
    """

    parameter_names = ("_param",)
    static_names = ("_kind",)
    is_discrete = True

    def __init__(
        self,
        rate: ArrayLike | None = None,
        log_rate: ArrayLike | None = None,
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        label = label_of("Poisson", name)
        if (rate is None) == (log_rate is None):
            raise ValueError(f"{label}: give exactly one of `rate` or `log_rate`")
        self._kind = "rate" if log_rate is None else "log_rate"
        (self._param,) = float_parameters(
            label, **{self._kind: rate if log_rate is None else log_rate}
        )
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        if self._kind == "log_rate":
            return [("log_rate", self._param < jnp.inf, "a number below +inf (not NaN)")]
        return [("rate", self._param >= 0, "nonnegative")]

    @property
    def rate(self) -> jax.Array:
        return self._param if self._kind == "rate" else jnp.exp(self._param)

    @property
    def log_rate(self) -> jax.Array:
        return self._param if self._kind == "log_rate" else jnp.log(self._param)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.nonnegative_integer

    @property
    def dtype(self) -> DTypeLike:
        return jnp.int32

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        rate = jnp.broadcast_to(self.rate, shape)
        return jax.random.poisson(key, rate, shape, jnp.int32)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        k = jnp.asarray(value)
        k = k.astype(jnp.result_type(k, self._param.dtype))
        inside = (k >= 0) & (k == jnp.floor(k))
        k = jnp.where(inside, k, 0)
        if self._kind == "log_rate":
            out = k * self._param - jnp.exp(self._param)
        else:
            out = xlogy(k, self._param) - self._param
        return jnp.where(inside, out - gammaln(k + 1), -jnp.inf)

    def mean(self) -> jax.Array:
        return self.rate

    def variance(self) -> jax.Array:
        return self.rate

    @property
    def has_enumerate_support(self) -> bool:
        return False
