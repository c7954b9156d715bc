"""Bernoulli distribution over {0, 1}."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlog1py, xlogy

from coromix import constraints
from coromix.distributions.categorical import SuccessProbability, logits_and_probs
from coromix.distributions.distribution import Distribution


class Bernoulli(SuccessProbability, Distribution):
    """Bernoulli(probs=p) or Bernoulli(logits=l): ``P(X = 1) = p = sigmoid(l)``, ``P(X = 0) = 1 - p``.

    Samples are int32; ``log_prob`` is ``-inf`` for values other than 0 and 1.

    >>> Bernoulli(probs=0.3).log_prob(1)   # log(0.3)
    """

    parameter_names = ("_param",)
    static_names = ("_kind",)
    is_discrete = True

    def __init__(
        self, logits=None, probs=None, *, validate_args: bool = True, name: str | None = None
    ):
        label = f"Bernoulli '{name}'" if name else "Bernoulli"
        self._param, self._kind = logits_and_probs(logits, probs, label)
        self._init_common(name, validate_args)

    def _parameter_checks(self):
        if self._kind == "logits":
            return []
        p = self._param
        return [("probs", (p >= 0) & (p <= 1), "in [0, 1]")]

    @property
    def support(self):
        return constraints.boolean

    @property
    def dtype(self):
        return jnp.int32

    def _sample(self, key, shape):
        return jax.random.bernoulli(key, self.probs, shape).astype(jnp.int32)

    def log_prob(self, value):
        k = jnp.asarray(value)
        k = k.astype(jnp.result_type(k, self._param.dtype))
        inside = (k == 0) | (k == 1)
        if self._kind == "logits":
            out = -jax.nn.softplus(jnp.where(k == 1, -self._param, self._param))
        else:
            safe_k = jnp.where(inside, k, 0)
            out = xlogy(safe_k, self._param) + xlog1py(1 - safe_k, -self._param)
        return jnp.where(inside, out, -jnp.inf)

    def mean(self):
        return self.probs

    def variance(self):
        p = self.probs
        return p * (1 - p)

    @property
    def has_enumerate_support(self):
        return True

    def enumerate_support(self):
        return np.arange(2, dtype=np.int32)
