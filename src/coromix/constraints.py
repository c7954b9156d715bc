"""Supports of distributions: what values are valid, checked elementwise (or per event).

Each constraint has ``check(x)`` (a boolean array of shape ``x.shape[:x.ndim - event_ndim]``),
``admits(x)`` (what ``validate_args`` accepts: the support with its boundary points, where
densities take their limit as SciPy and TFP do; never NaN), ``event_ndim`` and ``is_discrete``.  ``coromix.transforms.biject_to(constraint)`` gives the bijection
from unconstrained space that inference uses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from coromix.utils import ArrayLike


class Constraint:
    """A support: ``check(x)`` says which values (or events) lie in it.

    >>> positive.check(jnp.array([1.0, 0.0, -1.0])).tolist()
    [True, False, False]
    >>> bool(simplex.check(jnp.array([0.2, 0.8]))), simplex.event_ndim
    (True, 1)
    """

    event_ndim: int = 0
    is_discrete: bool = False

    def check(self, x: ArrayLike) -> jax.Array:
        raise NotImplementedError

    def admits(self, x: ArrayLike) -> jax.Array:
        """Which values (or events) a distribution with ``validate_args=True`` accepts.

        The support and its boundary points (``Gamma(1.0).log_prob(0.0)`` is the density's
        limit, ``log(rate)``); NaN is never admitted.

        >>> positive.admits(jnp.array([1.0, 0.0, -1.0, jnp.nan])).tolist()
        [True, True, False, False]
        """
        return self.check(x)

    def __str__(self) -> str:
        return type(self).__name__.lstrip("_").lower()

    __repr__ = __str__


class Real(Constraint):
    """The finite reals (the instance :data:`real`)."""

    def check(self, x: ArrayLike) -> jax.Array:
        return jnp.isfinite(x)

    def __str__(self) -> str:
        return "real"


class RealVector(Constraint):
    """Vectors of finite reals (the instance :data:`real_vector`)."""

    event_ndim = 1

    def check(self, x: ArrayLike) -> jax.Array:
        return jnp.all(jnp.isfinite(x), axis=-1)

    def __str__(self) -> str:
        return "real vector"


class Positive(Constraint):
    """The finite positive reals (the instance :data:`positive`)."""

    def check(self, x: ArrayLike) -> jax.Array:
        return (x > 0) & jnp.isfinite(x)

    def admits(self, x: ArrayLike) -> jax.Array:
        return (x >= 0) & jnp.isfinite(x)

    def __str__(self) -> str:
        return "positive"


class GreaterThan(Constraint):
    def __init__(self, lower: ArrayLike) -> None:
        self.lower = lower

    def check(self, x: ArrayLike) -> jax.Array:
        return (x > self.lower) & jnp.isfinite(x)

    def admits(self, x: ArrayLike) -> jax.Array:
        return (x >= self.lower) & jnp.isfinite(x)

    def __str__(self) -> str:
        return f"greater than {_number(self.lower, 'a lower bound')}"


class UnitInterval(Constraint):
    """The open interval ``(0, 1)`` (the instance :data:`unit_interval`)."""

    def check(self, x: ArrayLike) -> jax.Array:
        return (x > 0) & (x < 1)

    def admits(self, x: ArrayLike) -> jax.Array:
        return (x >= 0) & (x <= 1)

    def __str__(self) -> str:
        return "unit interval (0, 1)"


class Interval(Constraint):
    def __init__(self, low: ArrayLike, high: ArrayLike) -> None:
        self.low, self.high = low, high

    def check(self, x: ArrayLike) -> jax.Array:
        return (x > self.low) & (x < self.high)

    def admits(self, x: ArrayLike) -> jax.Array:
        return (x >= self.low) & (x <= self.high)

    def __str__(self) -> str:
        return f"interval ({_number(self.low, 'low')}, {_number(self.high, 'high')})"


class Simplex(Constraint):
    """Nonnegative vectors summing to 1 (the instance :data:`simplex`)."""

    event_ndim = 1

    def check(self, x: ArrayLike) -> jax.Array:
        tol = 1e-4 if jnp.result_type(x) == jnp.float32 else 1e-10
        return jnp.all(x >= 0, axis=-1) & (jnp.abs(jnp.sum(x, axis=-1) - 1) < tol)

    def __str__(self) -> str:
        return "simplex (nonnegative, sums to 1)"


class OrderedVector(Constraint):
    """Strictly increasing finite vectors (the instance :data:`ordered_vector`)."""

    event_ndim = 1

    def check(self, x: ArrayLike) -> jax.Array:
        return jnp.all(jnp.diff(x, axis=-1) > 0, axis=-1) & jnp.all(jnp.isfinite(x), axis=-1)

    def __str__(self) -> str:
        return "ordered vector (strictly increasing)"


class PositiveOrderedVector(Constraint):
    """Strictly increasing positive vectors (the instance :data:`positive_ordered_vector`)."""

    event_ndim = 1

    def check(self, x: ArrayLike) -> jax.Array:
        return OrderedVector().check(x) & jnp.all(x > 0, axis=-1)

    def __str__(self) -> str:
        return "positive ordered vector"


class CorrCholesky(Constraint):
    """Cholesky factors of correlation matrices (the instance :data:`corr_cholesky`)."""

    event_ndim = 2

    def check(self, x: ArrayLike) -> jax.Array:
        tol = 1e-4 if jnp.result_type(x) == jnp.float32 else 1e-8
        lower = jnp.all(jnp.triu(x, k=1) == 0, axis=(-2, -1))
        positive_diag = jnp.all(jnp.diagonal(x, axis1=-2, axis2=-1) > 0, axis=-1)
        unit_rows = jnp.all(jnp.abs(jnp.sum(x**2, axis=-1) - 1) < tol, axis=-1)
        return lower & positive_diag & unit_rows

    def __str__(self) -> str:
        return "Cholesky factor of a correlation matrix"


class LowerCholesky(Constraint):
    """Lower-triangular matrices with a positive diagonal (the instance :data:`lower_cholesky`)."""

    event_ndim = 2

    def check(self, x: ArrayLike) -> jax.Array:
        lower = jnp.all(jnp.triu(x, k=1) == 0, axis=(-2, -1))
        return lower & jnp.all(jnp.diagonal(x, axis1=-2, axis2=-1) > 0, axis=-1)

    def __str__(self) -> str:
        return "lower-triangular with positive diagonal"


class IntegerInterval(Constraint):
    is_discrete = True

    def __init__(self, low: ArrayLike, high: ArrayLike) -> None:
        self.low, self.high = low, high

    def check(self, x: ArrayLike) -> jax.Array:
        return (x >= self.low) & (x <= self.high) & (x == jnp.floor(x))

    def __str__(self) -> str:
        return f"integers in [{_number(self.low, 'low')}, {_number(self.high, 'high')}]"


class NonNegativeInteger(Constraint):
    """The integers ``0, 1, 2, ...`` (the instance :data:`nonnegative_integer`)."""

    is_discrete = True

    def check(self, x: ArrayLike) -> jax.Array:
        return (x >= 0) & (x == jnp.floor(x))

    def __str__(self) -> str:
        return "nonnegative integers"


class Independent(Constraint):
    """A constraint whose last ``reinterpreted_batch_ndims`` batch dimensions become event dims."""

    def __init__(self, base: Constraint, reinterpreted_batch_ndims: int) -> None:
        self.base = base
        self.reinterpreted_batch_ndims = reinterpreted_batch_ndims
        self.event_ndim = base.event_ndim + reinterpreted_batch_ndims
        self.is_discrete = base.is_discrete

    def check(self, x: ArrayLike) -> jax.Array:
        return self._reduce(self.base.check(x))

    def admits(self, x: ArrayLike) -> jax.Array:
        return self._reduce(self.base.admits(x))

    def _reduce(self, ok: jax.Array) -> jax.Array:
        if self.reinterpreted_batch_ndims:
            ok = jnp.all(ok, axis=tuple(range(-self.reinterpreted_batch_ndims, 0)))
        return ok

    def __str__(self) -> str:
        return str(self.base)


def _number(bound: ArrayLike, word: str) -> str:
    """A bound as a number when it is one concrete value, else ``word``."""
    if isinstance(bound, jax.core.Tracer) or np.size(bound) != 1:
        return word
    value = np.asarray(bound).item()
    return str(int(value)) if float(value).is_integer() else str(value)


real = Real()
real_vector = RealVector()
positive = Positive()
unit_interval = UnitInterval()
simplex = Simplex()
ordered_vector = OrderedVector()
positive_ordered_vector = PositiveOrderedVector()
corr_cholesky = CorrCholesky()
lower_cholesky = LowerCholesky()
nonnegative_integer = NonNegativeInteger()
boolean = IntegerInterval(0, 1)
