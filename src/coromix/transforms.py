"""Bijections from unconstrained real space onto the supports in `coromix.constraints`.

Inference (NUTS) moves on unconstrained reals ``y``; ``biject_to(support)`` gives the transform
whose ``forward(y)`` lands in the support.  A density ``p`` on the support becomes the density
``p(forward(y)) * exp(forward_log_det_jacobian(y))`` on unconstrained space.

Every transform has

* ``forward(y) -> x`` (unconstrained -> constrained) and ``inverse(x) -> y``;
* ``forward_log_det_jacobian(y)``: ``log |det dx/dy|`` summed over the event dimensions, so its
  shape is the batch shape (for the simplex and correlation-Cholesky maps, ``x`` means the free
  constrained coordinates: the first K-1 simplex entries, the strictly-lower Cholesky entries);
* ``unconstrained_shape(constrained_shape)`` and ``constrained_shape(unconstrained_shape)``;
* ``codomain`` (the constraint it maps onto), ``event_ndim`` (event dims of ``x``) and
  ``unconstrained_event_ndim`` (event dims of ``y``).

Batch dimensions are on the left.  The maps are written in log space (``log_sigmoid``, ``softplus``)
and clip their outputs into the open support, so that large ``|y|`` gives no ``log(0)``, ``inf`` or
``nan``; they work under ``jax.jit``, ``jax.vmap`` and ``jax.grad`` in float32 and float64.
Transforms are JAX pytrees (their array parameters are the leaves).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from coromix import constraints
from coromix.utils import ArrayLike, Shape

_LOG2 = math.log(2.0)


# --- helpers ----------------------------------------------------------------------------------
def _as_float(x: Any) -> jax.Array:
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


def _clipped_exp(y: jax.Array) -> jax.Array:
    """``exp(y)`` kept in ``[tiny, max]`` so that it is positive and finite for every ``y``."""
    finfo = jnp.finfo(y.dtype)
    # Capping y just below log(max) keeps exp finite, so the gradient there is 0 rather than nan.
    return jnp.maximum(jnp.exp(jnp.minimum(y, math.log(finfo.max) - 0.5)), finfo.tiny)


def _above(a: jax.Array, b: jax.Array) -> jax.Array:
    """The float just above ``a`` toward ``b`` (never a denormal, which XLA may flush to zero)."""
    tiny = jnp.finfo(a.dtype).tiny
    step = jnp.where(b > a, tiny, -tiny)
    up = jnp.nextafter(a, b)
    return jnp.where(b > a, jnp.maximum(up, a + step), jnp.minimum(up, a + step))


def _sum_right(x: jax.Array, ndim: int) -> jax.Array:
    return jnp.sum(x, axis=tuple(range(-ndim, 0))) if ndim else x


def _reverse_cumsum(x: jax.Array) -> jax.Array:
    """``out[..., k] = sum_{j >= k} x[..., j]`` (no cancellation, unlike ``total - cumsum``)."""
    return jnp.flip(jnp.cumsum(jnp.flip(x, -1), -1), -1)


def _log1m_tanh_sq(y: jax.Array) -> jax.Array:
    """``log(1 - tanh(y)**2) = 2 log sech(y) = 2 (log 2 - |y| - softplus(-2|y|))``, stable."""
    a = jnp.abs(y)
    return 2.0 * (_LOG2 - a - jax.nn.softplus(-2.0 * a))


def _matrix_dim(n: int, diagonal: bool) -> int:
    """``d`` with ``n = d(d-1)/2`` (strict lower triangle) or ``n = d(d+1)/2`` (with diagonal)."""
    root = math.isqrt(1 + 8 * n)
    d = (root - 1) // 2 if diagonal else (root + 1) // 2
    if root * root != 1 + 8 * n or (d * (d + 1) if diagonal else d * (d - 1)) // 2 != n:
        kind = "d(d+1)/2" if diagonal else "d(d-1)/2"
        raise ValueError(f"an unconstrained vector of length {n} is not {kind} for any integer d")
    return d


def _check_event(shape: Shape, ndim: int, what: str) -> None:
    if len(shape) < ndim:
        raise ValueError(
            f"{what} needs at least {ndim} trailing event dimension(s); got shape {shape}"
        )


# --- base class -------------------------------------------------------------------------------
class Transform:
    """A bijection ``forward: unconstrained reals -> codomain`` (see the module docstring)."""

    unconstrained_event_ndim: ClassVar[int] = 0
    leaf_names: ClassVar[tuple[str, ...]] = ()
    static_names: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node(cls, cls._tree_flatten, cls._tree_unflatten)

    def _tree_flatten(self):
        return (
            tuple(getattr(self, n) for n in self.leaf_names),
            tuple(getattr(self, n) for n in self.static_names),
        )

    @classmethod
    def _tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        for n, v in zip(cls.leaf_names, children):
            setattr(obj, n, v)
        for n, v in zip(cls.static_names, aux):
            setattr(obj, n, v)
        return obj

    @property
    def codomain(self) -> constraints.Constraint:
        raise NotImplementedError

    @property
    def event_ndim(self) -> int:
        return self.codomain.event_ndim

    def forward(self, y: ArrayLike) -> jax.Array:
        raise NotImplementedError

    def inverse(self, x: ArrayLike) -> jax.Array:
        raise NotImplementedError

    def forward_log_det_jacobian(self, y: ArrayLike) -> jax.Array:
        raise NotImplementedError

    def inverse_log_det_jacobian(self, x: ArrayLike) -> jax.Array:
        """``log |det dy/dx| = -forward_log_det_jacobian(inverse(x))``."""
        return -self.forward_log_det_jacobian(self.inverse(x))

    def unconstrained_shape(self, constrained_shape: Shape) -> Shape:
        return tuple(constrained_shape)

    def constrained_shape(self, unconstrained_shape: Shape) -> Shape:
        return tuple(unconstrained_shape)

    def __call__(self, y: ArrayLike) -> jax.Array:
        return self.forward(y)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(onto {self.codomain})"


# --- elementwise transforms -------------------------------------------------------------------
class IdentityTransform(Transform):
    """``x = y`` (onto ``real`` when ``event_ndim == 0``, ``real_vector`` when 1)."""

    static_names = ("_event_ndim",)

    def __init__(self, event_ndim: int = 0) -> None:
        if event_ndim not in (0, 1):
            raise ValueError(f"IdentityTransform: event_ndim must be 0 or 1; got {event_ndim}")
        self._event_ndim = event_ndim

    @property
    def unconstrained_event_ndim(self) -> int:  # type: ignore[override]
        return self._event_ndim

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.real_vector if self._event_ndim else constraints.real

    def forward(self, y: ArrayLike) -> jax.Array:
        return _as_float(y)

    def inverse(self, x: ArrayLike) -> jax.Array:
        return _as_float(x)

    def forward_log_det_jacobian(self, y: ArrayLike) -> jax.Array:
        y = _as_float(y)
        _check_event(y.shape, self._event_ndim, "IdentityTransform")
        return jnp.zeros(y.shape[: y.ndim - self._event_ndim], y.dtype)


class ExpTransform(Transform):
    """``x = exp(y)`` onto ``positive``; ``log|dx/dy| = y``."""

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.positive

    def forward(self, y: ArrayLike) -> jax.Array:
        return _clipped_exp(_as_float(y))

    def inverse(self, x: ArrayLike) -> jax.Array:
        return jnp.log(_as_float(x))

    def forward_log_det_jacobian(self, y: ArrayLike) -> jax.Array:
        return _as_float(y)


class LowerBoundTransform(Transform):
    """``x = lower + exp(y)`` onto ``GreaterThan(lower)``; ``log|dx/dy| = y``."""

    leaf_names = ("lower",)

    def __init__(self, lower: ArrayLike) -> None:
        self.lower = lower

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.GreaterThan(self.lower)

    def forward(self, y: ArrayLike) -> jax.Array:
        y = _as_float(y)
        dtype = jnp.result_type(y, self.lower)
        y, lower = y.astype(dtype), jnp.asarray(self.lower, dtype)
        x = lower + _clipped_exp(y)
        return jnp.clip(x, _above(lower, jnp.inf), jnp.finfo(dtype).max)

    def inverse(self, x: ArrayLike) -> jax.Array:
        x = _as_float(x)
        return jnp.log(x - self.lower)

    def forward_log_det_jacobian(self, y: ArrayLike) -> jax.Array:
        y = _as_float(y)
        return jnp.broadcast_to(y, jnp.broadcast_shapes(y.shape, jnp.shape(self.lower)))


class SigmoidTransform(Transform):
    """``x = 1 / (1 + exp(-y))`` onto ``unit_interval``;
    ``log|dx/dy| = log_sigmoid(y) + log_sigmoid(-y)``."""

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.unit_interval

    def forward(self, y: ArrayLike) -> jax.Array:
        y = _as_float(y)
        finfo = jnp.finfo(y.dtype)
        return jnp.clip(jax.nn.sigmoid(y), finfo.tiny, 1.0 - finfo.epsneg)

    def inverse(self, x: ArrayLike) -> jax.Array:
        x = _as_float(x)
        return jnp.log(x) - jnp.log1p(-x)

    def forward_log_det_jacobian(self, y: ArrayLike) -> jax.Array:
        y = _as_float(y)
        return jax.nn.log_sigmoid(y) + jax.nn.log_sigmoid(-y)


class IntervalTransform(Transform):
    """``x = low + (high - low) sigmoid(y)`` onto ``Interval(low, high)``;
    ``log|dx/dy| = log(high - low) + log_sigmoid(y) + log_sigmoid(-y)``."""

    leaf_names = ("low", "high")

    def __init__(self, low: ArrayLike, high: ArrayLike) -> None:
        self.low, self.high = low, high

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.Interval(self.low, self.high)

    def _params(self, v):
        dtype = jnp.result_type(v, self.low, self.high)
        return v.astype(dtype), jnp.asarray(self.low, dtype), jnp.asarray(self.high, dtype)

    def forward(self, y: ArrayLike) -> jax.Array:
        y, low, high = self._params(_as_float(y))
        width = high - low
        # Measure from the nearer end, so values near `high` keep their precision.
        x = jnp.where(y < 0, low + width * jax.nn.sigmoid(y), high - width * jax.nn.sigmoid(-y))
        return jnp.clip(x, _above(low, high), _above(high, low))

    def inverse(self, x: ArrayLike) -> jax.Array:
        x, low, high = self._params(_as_float(x))
        return jnp.log(x - low) - jnp.log(high - x)

    def forward_log_det_jacobian(self, y: ArrayLike) -> jax.Array:
        y, low, high = self._params(_as_float(y))
        return jnp.log(high - low) + jax.nn.log_sigmoid(y) + jax.nn.log_sigmoid(-y)


# --- vector and matrix transforms -------------------------------------------------------------
class StickBreakingTransform(Transform):
    """``z_k = sigmoid(y_k - log(K-1-k))``, ``x_k = z_k (1 - sum_{j<k} x_j)``,
    ``x_{K-1} = 1 - sum_{j<K-1} x_j``: K-1 reals onto the K-simplex (Stan's parametrization;
    ``y = 0`` is the uniform simplex)."""

    unconstrained_event_ndim = 1

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.simplex

    @staticmethod
    def _offset(km1: int, dtype) -> jax.Array:
        return jnp.log(jnp.arange(km1, 0, -1, dtype=dtype))  # log(K-1-k), k = 0..K-2

    def _logs(self, y):
        t = y - self._offset(y.shape[-1], y.dtype)
        log_z, log_1mz = jax.nn.log_sigmoid(t), jax.nn.log_sigmoid(-t)
        log_rest = jnp.cumsum(log_1mz, axis=-1)  # log of the stick left after piece k
        log_left = jnp.concatenate([jnp.zeros_like(log_rest[..., :1]), log_rest[..., :-1]], -1)
        return log_z, log_1mz, log_left, log_rest

    def forward(self, y: ArrayLike) -> jax.Array:
        y = _as_float(y)
        _check_event(y.shape, 1, "StickBreakingTransform")
        if y.shape[-1] == 0:
            return jnp.ones(y.shape[:-1] + (1,), y.dtype)
        log_z, _, log_left, log_rest = self._logs(y)
        return jnp.exp(jnp.concatenate([log_z + log_left, log_rest[..., -1:]], axis=-1))

    def inverse(self, x: ArrayLike) -> jax.Array:
        x = _as_float(x)
        _check_event(x.shape, 1, "StickBreakingTransform")
        # y_k = logit(x_k / sum_{j>=k} x_j) + log(K-1-k) = log x_k - log(sum_{j>k} x_j) + log(K-1-k)
        tail = _reverse_cumsum(x)
        return (
            jnp.log(x[..., :-1]) - jnp.log(tail[..., 1:]) + self._offset(x.shape[-1] - 1, x.dtype)
        )

    def forward_log_det_jacobian(self, y: ArrayLike) -> jax.Array:
        y = _as_float(y)
        _check_event(y.shape, 1, "StickBreakingTransform")
        log_z, log_1mz, log_left, _ = self._logs(y)
        return jnp.sum(log_z + log_1mz + log_left, axis=-1)

    def unconstrained_shape(self, constrained_shape: Shape) -> Shape:
        _check_event(tuple(constrained_shape), 1, "StickBreakingTransform")
        return tuple(constrained_shape[:-1]) + (constrained_shape[-1] - 1,)

    def constrained_shape(self, unconstrained_shape: Shape) -> Shape:
        _check_event(tuple(unconstrained_shape), 1, "StickBreakingTransform")
        return tuple(unconstrained_shape[:-1]) + (unconstrained_shape[-1] + 1,)


class OrderedTransform(Transform):
    """``x_0 = y_0``, ``x_k = x_{k-1} + exp(y_k)`` onto ``ordered_vector``;
    ``log|det| = sum_{k>0} y_k``."""

    unconstrained_event_ndim = 1

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.ordered_vector

    def forward(self, y: ArrayLike) -> jax.Array:
        y = _as_float(y)
        _check_event(y.shape, 1, "OrderedTransform")
        steps = jnp.concatenate([y[..., :1], _clipped_exp(y[..., 1:])], axis=-1)
        return jnp.cumsum(steps, axis=-1)

    def inverse(self, x: ArrayLike) -> jax.Array:
        x = _as_float(x)
        _check_event(x.shape, 1, "OrderedTransform")
        return jnp.concatenate([x[..., :1], jnp.log(jnp.diff(x, axis=-1))], axis=-1)

    def forward_log_det_jacobian(self, y: ArrayLike) -> jax.Array:
        y = _as_float(y)
        _check_event(y.shape, 1, "OrderedTransform")
        return jnp.sum(y[..., 1:], axis=-1)


class PositiveOrderedTransform(Transform):
    """``x_k = sum_{j<=k} exp(y_j)`` onto ``positive_ordered_vector``; ``log|det| = sum_k y_k``."""

    unconstrained_event_ndim = 1

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.positive_ordered_vector

    def forward(self, y: ArrayLike) -> jax.Array:
        y = _as_float(y)
        _check_event(y.shape, 1, "PositiveOrderedTransform")
        return jnp.cumsum(_clipped_exp(y), axis=-1)

    def inverse(self, x: ArrayLike) -> jax.Array:
        x = _as_float(x)
        _check_event(x.shape, 1, "PositiveOrderedTransform")
        return jnp.log(jnp.concatenate([x[..., :1], jnp.diff(x, axis=-1)], axis=-1))

    def forward_log_det_jacobian(self, y: ArrayLike) -> jax.Array:
        y = _as_float(y)
        _check_event(y.shape, 1, "PositiveOrderedTransform")
        return jnp.sum(y, axis=-1)


class CorrCholeskyTransform(Transform):
    """``z = tanh(y)`` filled row-major into the strict lower triangle (canonical partial
    correlations); ``L_ij = z_ij sqrt(1 - sum_{k<j} L_ik^2)``,
    ``L_ii = sqrt(1 - sum_{k<i} L_ik^2)``: d(d-1)/2 reals onto ``corr_cholesky`` (Stan's / LKJ's
    map)."""

    unconstrained_event_ndim = 1

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.corr_cholesky

    def _parts(self, y):
        y = _as_float(y)
        _check_event(y.shape, 1, "CorrCholeskyTransform")
        d = _matrix_dim(y.shape[-1], diagonal=False)
        rows, cols = np.tril_indices(d, -1)
        zeros = jnp.zeros(y.shape[:-1] + (d, d), y.dtype)
        z = zeros.at[..., rows, cols].set(jnp.tanh(y))
        log1mz2 = zeros.at[..., rows, cols].set(_log1m_tanh_sq(y))
        # sum_{k<j} log(1 - z_ik^2) = log(1 - sum_{k<j} L_ik^2): the squared stick left at (i, j).
        log_left = jnp.cumsum(log1mz2, axis=-1) - log1mz2
        return d, rows, cols, z, log1mz2, log_left

    def forward(self, y: ArrayLike) -> jax.Array:
        d, _, _, z, _, log_left = self._parts(y)
        scale = jnp.exp(0.5 * log_left)
        # Keep the diagonal positive even where the stick left underflows (|y| in the tens).
        diag = jnp.maximum(jnp.diagonal(scale, axis1=-2, axis2=-1), jnp.finfo(z.dtype).tiny)
        idx = np.arange(d)
        return (z * scale).at[..., idx, idx].set(diag)

    def inverse(self, x: ArrayLike) -> jax.Array:
        x = _as_float(x)
        _check_event(x.shape, 2, "CorrCholeskyTransform")
        d = x.shape[-1]
        rows, cols = np.tril_indices(d, -1)
        # z_ij = L_ij / sqrt(L_ij^2 + r_ij) with r_ij = sum_{k>j} L_ik^2, so y = arctanh(z)
        # = arcsinh(L_ij / sqrt(r_ij)) (no cancellation, finite while the diagonal is positive).
        sq = x**2
        after = _reverse_cumsum(sq) - sq
        return jnp.arcsinh(x[..., rows, cols] / jnp.sqrt(after[..., rows, cols]))

    def forward_log_det_jacobian(self, y: ArrayLike) -> jax.Array:
        _, rows, cols, _, log1mz2, log_left = self._parts(y)
        # d L_ij / d y_ij = (1 - z_ij^2) sqrt(1 - sum_{k<j} L_ik^2); triangular within each row.
        return jnp.sum(log1mz2[..., rows, cols] + 0.5 * log_left[..., rows, cols], axis=-1)

    def unconstrained_shape(self, constrained_shape: Shape) -> Shape:
        _check_event(tuple(constrained_shape), 2, "CorrCholeskyTransform")
        d = constrained_shape[-1]
        return tuple(constrained_shape[:-2]) + (d * (d - 1) // 2,)

    def constrained_shape(self, unconstrained_shape: Shape) -> Shape:
        _check_event(tuple(unconstrained_shape), 1, "CorrCholeskyTransform")
        d = _matrix_dim(unconstrained_shape[-1], diagonal=False)
        return tuple(unconstrained_shape[:-1]) + (d, d)


class LowerCholeskyTransform(Transform):
    """First d(d-1)/2 reals row-major into the strict lower triangle, last d as ``L_ii = exp(y)``:
    d(d+1)/2 reals onto ``lower_cholesky``; ``log|det| = sum of the diagonal's y``."""

    unconstrained_event_ndim = 1

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.lower_cholesky

    def forward(self, y: ArrayLike) -> jax.Array:
        y = _as_float(y)
        _check_event(y.shape, 1, "LowerCholeskyTransform")
        d = _matrix_dim(y.shape[-1], diagonal=True)
        m = d * (d - 1) // 2
        rows, cols = np.tril_indices(d, -1)
        diag = np.arange(d)
        x = jnp.zeros(y.shape[:-1] + (d, d), y.dtype).at[..., rows, cols].set(y[..., :m])
        return x.at[..., diag, diag].set(_clipped_exp(y[..., m:]))

    def inverse(self, x: ArrayLike) -> jax.Array:
        x = _as_float(x)
        _check_event(x.shape, 2, "LowerCholeskyTransform")
        d = x.shape[-1]
        rows, cols = np.tril_indices(d, -1)
        diag = jnp.diagonal(x, axis1=-2, axis2=-1)
        return jnp.concatenate([x[..., rows, cols], jnp.log(diag)], axis=-1)

    def forward_log_det_jacobian(self, y: ArrayLike) -> jax.Array:
        y = _as_float(y)
        _check_event(y.shape, 1, "LowerCholeskyTransform")
        d = _matrix_dim(y.shape[-1], diagonal=True)
        return jnp.sum(y[..., d * (d - 1) // 2 :], axis=-1)

    def unconstrained_shape(self, constrained_shape: Shape) -> Shape:
        _check_event(tuple(constrained_shape), 2, "LowerCholeskyTransform")
        d = constrained_shape[-1]
        return tuple(constrained_shape[:-2]) + (d * (d + 1) // 2,)

    def constrained_shape(self, unconstrained_shape: Shape) -> Shape:
        _check_event(tuple(unconstrained_shape), 1, "LowerCholeskyTransform")
        d = _matrix_dim(unconstrained_shape[-1], diagonal=True)
        return tuple(unconstrained_shape[:-1]) + (d, d)


class IndependentTransform(Transform):
    """``base`` applied as is, its log-det also summed over the last ``reinterpreted_batch_ndims``
    batch dims (onto ``constraints.Independent(base.codomain, reinterpreted_batch_ndims)``)."""

    leaf_names = ("base",)
    static_names = ("reinterpreted_batch_ndims",)

    def __init__(self, base: Transform, reinterpreted_batch_ndims: int) -> None:
        if reinterpreted_batch_ndims < 0:
            raise ValueError(
                "IndependentTransform: reinterpreted_batch_ndims must be >= 0; got "
                f"{reinterpreted_batch_ndims}"
            )
        self.base = base
        self.reinterpreted_batch_ndims = int(reinterpreted_batch_ndims)

    @property
    def unconstrained_event_ndim(self) -> int:  # type: ignore[override]
        return self.base.unconstrained_event_ndim + self.reinterpreted_batch_ndims

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.Independent(self.base.codomain, self.reinterpreted_batch_ndims)

    def forward(self, y: ArrayLike) -> jax.Array:
        return self.base.forward(y)

    def inverse(self, x: ArrayLike) -> jax.Array:
        return self.base.inverse(x)

    def forward_log_det_jacobian(self, y: ArrayLike) -> jax.Array:
        return _sum_right(self.base.forward_log_det_jacobian(y), self.reinterpreted_batch_ndims)

    def unconstrained_shape(self, constrained_shape: Shape) -> Shape:
        return self.base.unconstrained_shape(constrained_shape)

    def constrained_shape(self, unconstrained_shape: Shape) -> Shape:
        return self.base.constrained_shape(unconstrained_shape)

    def __repr__(self) -> str:
        return f"IndependentTransform({self.base!r}, {self.reinterpreted_batch_ndims})"


# --- dispatch ---------------------------------------------------------------------------------
def biject_to(constraint: constraints.Constraint) -> Transform:
    """The transform from unconstrained reals onto ``constraint`` (TypeError: discrete/unknown).

    >>> t = biject_to(constraints.positive)
    >>> t
    ExpTransform(onto positive)
    >>> float(t.forward(0.0)), float(t.inverse(1.0)), float(t.forward_log_det_jacobian(0.0))
    (1.0, 0.0, 0.0)
    >>> s = biject_to(constraints.simplex)   # K - 1 reals onto the K-simplex; 0 -> uniform
    >>> s.unconstrained_shape((3,)), [round(float(v), 4) for v in s.forward(jnp.zeros(2))]
    ((2,), [0.3333, 0.3333, 0.3333])
    """
    if not isinstance(constraint, constraints.Constraint):
        raise TypeError(
            f"biject_to needs a coromix constraint; got {constraint!r} "
            f"({type(constraint).__name__})"
        )
    if constraint.is_discrete:
        raise TypeError(
            f"no bijection onto the discrete support '{constraint}' "
            f"({type(constraint).__name__}): discrete variables are enumerated "
            "(summed out), not sampled on unconstrained space"
        )
    if isinstance(constraint, constraints.Independent):
        base = biject_to(constraint.base)
        r = constraint.reinterpreted_batch_ndims
        return IndependentTransform(base, r) if r else base
    if isinstance(constraint, constraints.GreaterThan):
        return LowerBoundTransform(constraint.lower)
    if isinstance(constraint, constraints.Interval):
        return IntervalTransform(constraint.low, constraint.high)
    simple = [
        (constraints.Real, lambda: IdentityTransform(0)),
        (constraints.RealVector, lambda: IdentityTransform(1)),
        (constraints.Positive, ExpTransform),
        (constraints.UnitInterval, SigmoidTransform),
        (constraints.Simplex, StickBreakingTransform),
        (constraints.PositiveOrderedVector, PositiveOrderedTransform),
        (constraints.OrderedVector, OrderedTransform),
        (constraints.CorrCholesky, CorrCholeskyTransform),
        (constraints.LowerCholesky, LowerCholeskyTransform),
    ]
    for kind, make in simple:
        if isinstance(constraint, kind):
            return make()
    raise TypeError(
        f"no bijection is known onto the support '{constraint}' ({type(constraint).__name__})"
    )


__all__ = [
    "CorrCholeskyTransform",
    "ExpTransform",
    "IdentityTransform",
    "IndependentTransform",
    "IntervalTransform",
    "LowerBoundTransform",
    "LowerCholeskyTransform",
    "OrderedTransform",
    "PositiveOrderedTransform",
    "SigmoidTransform",
    "StickBreakingTransform",
    "Transform",
    "biject_to",
]
