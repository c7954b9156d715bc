"""The `Distribution` base class: TFP's shape semantics, JAX pytrees, parameter validation.

Shapes follow TensorFlow Probability: a draw from ``d.sample(sample_shape)`` has shape
``sample_shape + d.batch_shape + d.event_shape`` and ``d.log_prob(x)`` has shape
``sample_shape + d.batch_shape`` (one number per independent event).

Every distribution is a JAX pytree whose leaves are its parameters, so distributions can be passed
through ``jax.jit``, ``jax.vmap`` and ``jax.grad``.  Subclasses list their array parameters in
``parameter_names`` and any static (hashable, non-array) fields in ``static_names``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from coromix import constraints
from coromix.runner import Yieldable
from coromix.utils import (
    ArrayLike,
    Shape,
    as_key,
    as_shape,
    default_float,
    is_concrete,
    promote_floats,
)


def _show(x: Any) -> str:
    x = np.asarray(x)
    return str(x) if x.size <= 6 else f"an array of shape {x.shape} (min {x.min()}, max {x.max()})"


def _show_bad(value: Any, ok: Any) -> str:
    """``value`` where ``ok`` is false: the first few offending entries and their indices.

    ``ok`` has the shape of ``value`` without its event dims (one flag per event).

    >>> _show_bad(np.array([1.0, -2.0, 3.0, np.nan]), np.array([True, False, True, False]))
    '-2.0 at [1], nan at [3] (2 of 4 values)'
    >>> _show_bad(np.float32(-1.0), np.bool_(False))
    '-1.0'
    """
    value, ok = np.asarray(value), np.asarray(ok)
    if ok.ndim == 0 or ok.shape != value.shape[: ok.ndim]:
        return _show(value)
    where = np.argwhere(~ok)
    shown = ", ".join(
        f"{_show(value[tuple(index)])} at {list(map(int, index))}" for index in where[:_BAD_SHOWN]
    )
    more = ", ..." if len(where) > _BAD_SHOWN else ""
    return f"{shown}{more} ({len(where)} of {ok.size} {'values' if ok.ndim == value.ndim else 'events'})"


# Offending entries of a value named in an error before the rest are only counted.
_BAD_SHOWN = 5


def label_of(kind: str, name: str | None) -> str:
    """How errors name a distribution: ``Normal`` or ``Normal 'x'`` (with ``name=``).

    >>> label_of("Normal", "x"), label_of("Normal", None)
    ("Normal 'x'", 'Normal')
    """
    return f"{kind} '{name}'" if name else kind


def as_parameter(label: str, parameter: str, value: Any) -> jax.Array:
    """``value`` as a JAX array of numbers; a ``TypeError`` naming ``parameter`` otherwise.

    >>> as_parameter("Normal", "loc", [1, 2]).tolist()
    [1, 2]
    >>> as_parameter("Normal", "loc", "zero")
    Traceback (most recent call last):
    ...
    TypeError: Normal: parameter `loc` must be a number or an array of numbers; got str 'zero'
    """
    try:
        array = None if _has_text(value) else jnp.asarray(value)
    except (TypeError, ValueError):
        array = None
    numeric = array is not None and (
        jnp.issubdtype(array.dtype, jnp.bool_)
        or jnp.issubdtype(array.dtype, jnp.integer)
        or jnp.issubdtype(array.dtype, jnp.floating)
    )
    if not numeric:
        shown = f"{value!r}" if len(repr(value)) <= 60 else f"{repr(value)[:57]}..."
        raise TypeError(
            f"{label}: parameter `{parameter}` must be a number or an array of numbers; "
            f"got {type(value).__name__} {shown}"
        )
    return array


def _has_text(value: Any) -> bool:
    """Whether ``value`` is a string or a (nested) list or tuple holding one."""
    if isinstance(value, (str, bytes)):
        return True
    return isinstance(value, (list, tuple)) and any(_has_text(v) for v in value)


def float_parameters(label: str, **values: Any) -> tuple[jax.Array, ...]:
    """The parameters as floating arrays of one common dtype (not broadcast), checked by name.

    >>> loc, scale = float_parameters("Normal", loc=0, scale=[1.0, 2.0])
    >>> loc.dtype, scale.shape
    (dtype('float32'), (2,))
    """
    return promote_floats(*(as_parameter(label, k, v) for k, v in values.items()))


class Distribution(Yieldable):
    """Base class of coromix distributions: what a model yields.

    A :class:`~coromix.runner.Yieldable`, the type the coroutine runner accepts.
    Subclasses implement ``_sample(key, shape)`` (``shape = sample_shape + batch_shape``),
    ``log_prob``, the shape properties, ``support`` and, where closed-form, ``mean``/``variance``.
    They may list parameter checks in ``_parameter_checks`` as ``(parameter name, condition array,
    expectation text)``, which run when ``validate_args`` is true and the values are concrete.
    """

    parameter_names: ClassVar[tuple[str, ...]] = ()
    static_names: ClassVar[tuple[str, ...]] = ()
    is_discrete: ClassVar[bool] = False
    # A term added to the log density, not a variable (:class:`coromix.distributions.Factor`).
    is_factor: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node(cls, cls._tree_flatten, cls._tree_unflatten)

    def _tree_flatten(self):
        children = tuple(getattr(self, n) for n in self.parameter_names)
        aux = tuple(getattr(self, n) for n in self.static_names) + (self.name, self.validate_args)
        return children, aux

    @classmethod
    def _tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        for n, v in zip(cls.parameter_names, children):
            setattr(obj, n, v)
        for n, v in zip(cls.static_names, aux[:-2]):
            setattr(obj, n, v)
        obj.name, obj.validate_args = aux[-2], aux[-1]
        return obj

    def _init_common(self, name: str | None, validate_args: bool) -> None:
        if name is not None and not isinstance(name, str):
            raise TypeError(
                f"{type(self).__name__}: name must be a string (the variable's name) or None; "
                f"got {type(name).__name__} {name!r}"
            )
        self.name = name
        self.validate_args = validate_args
        self._check_shapes()
        if validate_args:
            self._validate()

    def _check_shapes(self) -> None:
        """Scalar-event parameters whose shapes do not broadcast: an error naming them (families
        with event or category axes check their own shapes)."""
        if type(self).batch_shape is not Distribution.batch_shape:
            return
        # `_param` holds probs or logits (rate or log_rate), as given: name it so
        shapes = {
            getattr(self, "_kind", n) if n == "_param" else n: tuple(jnp.shape(getattr(self, n)))
            for n in self.parameter_names
        }
        try:
            jnp.broadcast_shapes(*shapes.values())
        except ValueError:
            shapes = ", ".join(f"`{n}` {shape}" for n, shape in shapes.items())
            raise ValueError(
                f"{self._label()}: the parameters' shapes do not broadcast to one batch shape: "
                f"{shapes}; each dimension must be equal or 1 (NumPy broadcasting, from the right)"
            ) from None

    # --- validation -------------------------------------------------------------------------
    def _parameter_checks(self) -> Sequence[tuple[str, Any, str]]:
        return ()

    def _label(self) -> str:
        return label_of(type(self).__name__, self.name)

    def _validate(self) -> None:
        if not all(is_concrete(getattr(self, n)) for n in self.parameter_names):
            return  # traced parameters (inside jit/vmap/grad) have no values to check
        for param, ok, expected in self._parameter_checks():
            value = getattr(self, param, None)
            if not (is_concrete(ok) and is_concrete(value)):
                continue
            if not np.all(ok):
                raise ValueError(
                    f"{self._label()}: parameter `{param}` must be {expected}; got "
                    f"{_show_bad(value, ok)}"
                )

    def _value_constraint(self) -> constraints.Constraint:
        """What values are checked against: the support; families whose support bounds come from
        parameters (``Uniform``, ``Binomial``) check only the part that does not, since a value
        may lie inside one batch member's or component's bounds and outside another's (log
        density ``-inf`` there)."""
        return self.support

    def outside_support(self, value: Any) -> tuple[constraints.Constraint, np.ndarray] | None:
        """``(constraint, flags)``: which events of a concrete ``value`` are not admitted.

        ``None`` when it cannot be known now (a traced value, or a support with traced bounds).
        The flags have the value's shape without its event dims.

        >>> from coromix.distributions import HalfNormal
        >>> constraint, bad = HalfNormal(1.0).outside_support(np.array([1.0, -2.0]))
        >>> str(constraint), bad.tolist()
        ('positive', [False, True])
        """
        if not is_concrete(value):
            return None
        constraint = self._value_constraint()
        try:
            ok = constraint.admits(jnp.asarray(value))
        except jax.errors.UnexpectedTracerError:
            return None  # bounds traced in a trace that has ended (pin's abstract run)
        if not is_concrete(ok):
            return None
        return constraint, ~np.asarray(ok, dtype=bool)

    def _check_value(self, value: Any) -> None:
        """A value that is not numbers (``TypeError``) or whose shape does not broadcast with
        ``batch_shape + event_shape`` (``ValueError``); with ``validate_args``, a concrete value
        outside the support (``ValueError``)."""
        if value is None or _has_text(value):
            raise TypeError(
                f"{self._label()}: the value must be a number or an array of numbers; got "
                f"{type(value).__name__} {value!r:.60}"
            )
        shape = tuple(jnp.shape(value))
        full = tuple(self.batch_shape) + tuple(self.event_shape)
        try:
            jnp.broadcast_shapes(shape, full)
        except ValueError:
            raise ValueError(
                f"{self._label()}: a value of shape {shape} does not broadcast with its shape "
                f"{full} (batch_shape {tuple(self.batch_shape)} + event_shape "
                f"{tuple(self.event_shape)}); leading sample dims may be added on the left"
            ) from None
        if not self.validate_args:
            return
        found = self.outside_support(value)
        if found is None or not found[1].any():
            return
        constraint, bad = found
        raise ValueError(
            f"{self._label()}: value outside the support ({constraint}); got "
            f"{_show_bad(value, ~bad)}. Pass validate_args=False to score values outside the "
            f"support as log density -inf"
        )

    def _unvalidated(self) -> Distribution:
        """A copy with ``validate_args=False`` (for a family that checks values itself)."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.validate_args = False
        return copy

    # --- shapes -----------------------------------------------------------------------------
    @property
    def batch_shape(self) -> Shape:
        """The broadcast shape of the parameters; families whose parameters carry an event or a
        categories axis override it."""
        return batch_of(*(getattr(self, n) for n in self.parameter_names))

    @property
    def event_shape(self) -> Shape:
        return ()

    @property
    def support(self) -> constraints.Constraint:
        raise NotImplementedError

    @property
    def dtype(self) -> DTypeLike:
        return (
            jnp.result_type(*(getattr(self, n) for n in self.parameter_names))
            if self.parameter_names
            else default_float()
        )

    # --- sampling and densities -------------------------------------------------------------
    def sample(self, sample_shape: int | Sequence[int] = (), seed: Any = None) -> jax.Array:
        """Draw ``sample_shape`` independent samples; result shape ``sample_shape + batch + event``."""
        shape = as_shape(sample_shape) + tuple(self.batch_shape)
        return self._sample(as_key(seed), shape)

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        raise NotImplementedError

    def log_prob(self, value: Any) -> jax.Array:
        raise NotImplementedError

    def prob(self, value: Any) -> jax.Array:
        return jnp.exp(self.log_prob(value))

    def mean(self) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form mean")

    def variance(self) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} has no closed-form variance")

    def stddev(self) -> jax.Array:
        return jnp.sqrt(self.variance())

    # --- finite discrete support (used by enumeration) --------------------------------------
    @property
    def has_enumerate_support(self) -> bool:
        return False

    def enumerate_log_prob(self) -> jax.Array:
        """``log_prob`` at every value of the finite support at once, shape ``(K,) + batch_shape``.

        What summing out a batch-shaped choice needs; families override it when they can do it
        without broadcasting each value against the batch.
        """
        support = jnp.asarray(self.enumerate_support())
        return self.log_prob(support.reshape(support.shape[:1] + (1,) * len(self.batch_shape)))

    def enumerate_support(self) -> np.ndarray:
        """All values of a finite discrete support as a NumPy array of shape ``(K,)``.

        The same for every batch member, and concrete (not traced), so that enumeration can give
        the model Python-usable values.
        """
        raise TypeError(f"{self._label()} has no finite support to enumerate")

    def __repr__(self) -> str:
        return f"{self._label()}(batch_shape={self.batch_shape}, event_shape={self.event_shape})"


class LocationScale(Distribution):
    """Base of the families with a real ``loc`` and a positive ``scale`` (TFP's argument order)."""

    parameter_names = ("loc", "scale")

    def __init__(
        self,
        loc: ArrayLike = 0.0,
        scale: ArrayLike = 1.0,
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        label = label_of(type(self).__name__, name)
        self.loc, self.scale = float_parameters(label, loc=loc, scale=scale)
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        return [("loc", jnp.isfinite(self.loc), "finite"), ("scale", self.scale > 0, "positive")]


def is_scalar_choice(dist: Distribution) -> bool:
    """A single finite discrete choice: discrete, with a finite support, batch and event shape ``()``.

    The one predicate for "a regime" / "a scalar choice" across coromix: the scoring core sums
    such a choice out along a tensor dim (or as paths when the model branches on it), and a
    ``RegimeSwitching`` step's first yield must be one.
    """
    return (
        bool(dist.is_discrete)
        and dist.has_enumerate_support
        and tuple(dist.batch_shape) == ()
        and tuple(dist.event_shape) == ()
    )


def batch_of(*params: jax.Array) -> Shape:
    """Broadcast batch shape of scalar-event parameters."""
    return tuple(jnp.broadcast_shapes(*(jnp.shape(p) for p in params)))
