"""Bernoulli distribution over {0, 1}."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlog1py, xlogy
from jax.typing import DTypeLike

from coromix import constraints
from coromix.distributions.categorical import SuccessProbability, logits_and_probs
from coromix.distributions.distribution import Distribution, label_of
from coromix.utils import ArrayLike, Shape


class Bernoulli(SuccessProbability, Distribution):
    """Bernoulli(probs=p) or Bernoulli(logits=l): ``P(X = 1) = p = sigmoid(l)``, ``P(X = 0) = 1 - p``.

    Samples are int32; values other than 0 and 1 are an error, or have ``log_prob`` ``-inf`` with
    ``validate_args=False``.

    >>> round(float(Bernoulli(probs=0.3).log_prob(1)), 4)   # log(0.3)
    -1.204
    >>> float(Bernoulli(probs=0.3, validate_args=False).log_prob(2))   # outside {0, 1}
    -inf
    """

    parameter_names = ("_param",)
    static_names = ("_kind",)
    is_discrete = True

    def __init__(
        self,
        logits: ArrayLike | None = None,
        probs: ArrayLike | None = None,
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        label = label_of("Bernoulli", name)
        self._param, self._kind = logits_and_probs(logits, probs, label)
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        if self._kind == "logits":
            return [("logits", ~jnp.isnan(self._param), "numbers (not NaN)")]
        p = self._param
        return [("probs", (p >= 0) & (p <= 1), "in [0, 1]")]

    @property
    def support(self) -> constraints.Constraint:
        return constraints.boolean

    @property
    def dtype(self) -> DTypeLike:
        return jnp.int32

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        return jax.random.bernoulli(key, self.probs, shape).astype(jnp.int32)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        k = jnp.asarray(value)
        k = k.astype(jnp.result_type(k, self._param.dtype))
        inside = (k == 0) | (k == 1)
        if self._kind == "logits":
            out = -jax.nn.softplus(jnp.where(k == 1, -self._param, self._param))
        else:
            safe_k = jnp.where(inside, k, 0)
            out = xlogy(safe_k, self._param) + xlog1py(1 - safe_k, -self._param)
        return jnp.where(inside, out, -jnp.inf)

    def mean(self) -> jax.Array:
        return self.probs

    def variance(self) -> jax.Array:
        p = self.probs
        return p * (1 - p)

    @property
    def has_enumerate_support(self) -> bool:
        return True

    def enumerate_support(self) -> np.ndarray:
        return np.arange(2, dtype=np.int32)
