"""Binomial distribution."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, xlog1py, xlogy
from jax.typing import DTypeLike

from coromix import constraints
from coromix.distributions.categorical import SuccessProbability, logits_and_probs
from coromix.distributions.distribution import Distribution, float_parameters, label_of
from coromix.utils import ArrayLike, Shape, is_concrete


class Binomial(SuccessProbability, Distribution):
    """Binomial(total_count, probs=p) or Binomial(total_count, logits=l): number of successes in
    ``n = total_count`` trials of success probability ``p = sigmoid(l)``;
    ``P(X = k) = C(n, k) p**k (1 - p)**(n - k)`` for integers ``0 <= k <= n``.

    Samples are int32; ``log_prob`` is ``-inf`` for non-integers, negatives and values above ``n``.

    >>> round(float(Binomial(10.0, probs=0.5).log_prob(5)), 4)   # log(252 / 1024)
    -1.402
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
        label = label_of("Binomial", name)
        param, self._kind = logits_and_probs(logits, probs, label)
        self.total_count, self._param = float_parameters(
            label, total_count=total_count, **{self._kind: param}
        )
        if not isinstance(total_count, jax.Array):
            # keep a constant count concrete even inside jit, so the support can be enumerated
            self.total_count = np.asarray(total_count, dtype=self._param.dtype)
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        n = self.total_count
        checks = [("total_count", (n >= 0) & (n == jnp.floor(n)), "a nonnegative integer")]
        if self._kind == "probs":
            p = self._param
            checks.append(("probs", (p >= 0) & (p <= 1), "in [0, 1]"))
        else:
            checks.append(("logits", ~jnp.isnan(self._param), "numbers (not NaN)"))
        return checks

    @property
    def support(self) -> constraints.Constraint:
        return constraints.IntegerInterval(0, self.total_count)

    def _value_constraint(self) -> constraints.Constraint:
        return constraints.nonnegative_integer  # -inf above total_count (may vary by component)

    @property
    def dtype(self) -> DTypeLike:
        return jnp.int32

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        n = jnp.broadcast_to(self.total_count, shape)
        p = jnp.broadcast_to(self.probs, shape)
        return jax.random.binomial(key, n, p, shape, self._param.dtype).astype(jnp.int32)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        k = jnp.asarray(value)
        k = k.astype(jnp.result_type(k, self._param.dtype))
        n = self.total_count
        inside = (k >= 0) & (k <= n) & (k == jnp.floor(k))
        k = jnp.where(inside, k, 0)
        log_choose = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
        if self._kind == "logits":
            logits = self._param
            out = log_choose - k * jax.nn.softplus(-logits) - (n - k) * jax.nn.softplus(logits)
        else:
            p = self._param
            out = log_choose + xlogy(k, p) + xlog1py(n - k, -p)
        return jnp.where(inside, out, -jnp.inf)

    def mean(self) -> jax.Array:
        return jnp.broadcast_to(self.total_count * self.probs, self.batch_shape)

    def variance(self) -> jax.Array:
        p = self.probs
        return jnp.broadcast_to(self.total_count * p * (1 - p), self.batch_shape)

    @property
    def has_enumerate_support(self) -> bool:
        return True

    def enumerate_support(self) -> np.ndarray:
        """``arange(n + 1)``; needs one concrete ``total_count`` shared by the whole batch."""
        n = self.total_count
        if not is_concrete(n):
            raise TypeError(
                f"{self._label()}: enumerate_support() needs a concrete `total_count` to know how "
                f"many values to list (the support size fixes an array shape), but `total_count` "
                f"is traced here (inside jit/vmap/grad); build the distribution with a NumPy or "
                f"Python number for `total_count` outside the traced function"
            )
        values = np.unique(np.asarray(n))
        if values.size != 1:
            raise ValueError(
                f"{self._label()}: enumerate_support() lists one support for the whole batch, so "
                f"every batch member needs the same `total_count`; got {values.size} different "
                f"values (min {values.min()}, max {values.max()})"
            )
        return np.arange(int(values[0]) + 1, dtype=np.int32)
