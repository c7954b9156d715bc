"""Negative binomial distribution (TFP's parameterization)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, xlog1py, xlogy
from jax.typing import DTypeLike

from coromix import constraints
from coromix.distributions.categorical import SuccessProbability, logits_and_probs
from coromix.distributions.distribution import Distribution, float_parameters, label_of
from coromix.utils import ArrayLike, Shape


class NegativeBinomial(SuccessProbability, Distribution):
    """NegativeBinomial(total_count, probs=p) or (total_count, logits=l): the number of successes
    (probability ``p = sigmoid(l)`` each) before ``n = total_count`` failures;
    ``P(X = k) = Gamma(n + k) / (Gamma(n) k!) p**k (1 - p)**n`` for integers ``k >= 0``.

    The mean is ``n p / (1 - p)`` and the variance ``n p / (1 - p)**2``; this is
    ``scipy.stats.nbinom(n, 1 - p)``.  Samples (int32) are drawn as a gamma-Poisson mixture;
    ``log_prob`` is ``-inf`` for negative or non-integer values.

    >>> round(float(NegativeBinomial(2.0, probs=0.5).log_prob(0)), 4)   # 2 log(0.5)
    -1.3863
    """

    parameter_names = ("total_count", "_param")
    static_names = ("_kind",)
    is_discrete = True

    def __init__(
        self,
        total_count: ArrayLike,
        logits: ArrayLike | None = None,
        probs: ArrayLike | None = None,
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        label = label_of("NegativeBinomial", name)
        param, self._kind = logits_and_probs(logits, probs, label)
        self.total_count, self._param = float_parameters(
            label, total_count=total_count, **{self._kind: param}
        )
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        checks = [("total_count", self.total_count > 0, "positive")]
        if self._kind == "probs":
            p = self._param
            checks.append(("probs", (p >= 0) & (p < 1), "in [0, 1)"))
        else:
            checks.append(("logits", ~jnp.isnan(self._param), "numbers (not NaN)"))
        return checks

    @property
    def support(self) -> constraints.Constraint:
        return constraints.nonnegative_integer

    @property
    def dtype(self) -> DTypeLike:
        return jnp.int32

    def _odds(self):
        """``p / (1 - p)``."""
        if self._kind == "logits":
            return jnp.exp(self._param)
        return self._param / (1 - self._param)

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        key_gamma, key_poisson = jax.random.split(key)
        n = jnp.broadcast_to(self.total_count, shape)
        rate = jax.random.gamma(key_gamma, n, shape, self._param.dtype) * self._odds()
        return jax.random.poisson(key_poisson, rate, shape, jnp.int32)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        k = jnp.asarray(value)
        k = k.astype(jnp.result_type(k, self._param.dtype))
        n = self.total_count
        inside = (k >= 0) & (k == jnp.floor(k))
        k = jnp.where(inside, k, 0)
        log_norm = gammaln(n + k) - gammaln(k + 1) - gammaln(n)
        if self._kind == "logits":
            logits = self._param
            out = log_norm - k * jax.nn.softplus(-logits) - n * jax.nn.softplus(logits)
        else:
            p = self._param
            out = log_norm + xlogy(k, p) + xlog1py(n, -p)
        return jnp.where(inside, out, -jnp.inf)

    def mean(self) -> jax.Array:
        return jnp.broadcast_to(self.total_count * self._odds(), self.batch_shape)

    def variance(self) -> jax.Array:
        odds = self._odds()
        return jnp.broadcast_to(self.total_count * odds * (1 + odds), self.batch_shape)

    @property
    def has_enumerate_support(self) -> bool:
        return False
