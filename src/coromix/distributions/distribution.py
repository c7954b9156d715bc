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
        self.name = name
        self.validate_args = validate_args
        if validate_args:
            self._validate()

    # --- validation -------------------------------------------------------------------------
    def _parameter_checks(self) -> Sequence[tuple[str, Any, str]]:
        return ()

    def _label(self) -> str:
        kind = type(self).__name__
        return f"{kind} '{self.name}'" if self.name else kind

    def _validate(self) -> None:
        if not all(is_concrete(getattr(self, n)) for n in self.parameter_names):
            return  # traced parameters (inside jit/vmap/grad) have no values to check
        for param, ok, expected in self._parameter_checks():
            value = getattr(self, param, None)
            if not (is_concrete(ok) and is_concrete(value)):
                continue
            if not np.all(ok):
                raise ValueError(
                    f"{self._label()}: parameter `{param}` must be {expected}; got {_show(value)}"
                )

    def _check_value(self, value: jax.Array) -> None:
        if not (self.validate_args and is_concrete(value)):
            return
        if not np.all(self.support.check(value)):
            raise ValueError(
                f"{self._label()}: value outside the support ({self.support}); got {_show(value)}"
            )

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
        self.loc, self.scale = promote_floats(loc, scale)
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        return [("scale", self.scale > 0, "positive")]


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
