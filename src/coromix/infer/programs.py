"""Reusing compiled sampler programs across fits: which model a program belongs to, and its key.

A sampler's compiled program takes the observed values as arguments, so a second fit of the same
model on new data of the same shapes runs the program again without tracing or compiling it.  What
the program cannot take as an argument is baked into it when the model is traced: whatever the
model function reads from its closure, its defaults and the module globals it names (a covariate
array, a number of components).  :func:`model_environment` captures those objects *by identity*,
and the programs of a model are keyed by it, so rebinding such a name (``x = new_array``) gives a
new program; an array changed in place is not seen (data that change between fits belong in the
observed values).

>>> import coromix.distributions as tfd
>>> def model():
...     mu = yield tfd.Normal(0.0, 1.0)
...     y = yield tfd.Normal(mu, 1.0)
>>> joint_of(model) is joint_of(model)      # one JointDistributionCoroutine per function
True
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import jax

from coromix.joint import JointDistributionCoroutine

_JOINTS: weakref.WeakKeyDictionary[Callable[..., Any], tuple[Any, JointDistributionCoroutine]] = (
    weakref.WeakKeyDictionary()
)


class _Same:
    """An object compared by identity (and kept alive while the key lives)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __repr__(self) -> str:
        return f"_Same({type(self.obj).__name__} at {id(self.obj):#x})"


def _names(code: types.CodeType) -> set[str]:
    """Global names read by ``code`` and the functions defined inside it."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def model_environment(fn: Callable[..., Any]) -> tuple[Any, ...]:
    """What tracing ``fn`` bakes in besides its arguments, compared by identity.

    ``(code, closure cells, defaults, (name, global) for every global name the code reads)``;
    equal tuples mean a trace of ``fn`` sees the same objects.

    >>> scale = 2.0
    >>> def f():
    ...     return scale
    >>> model_environment(f) == model_environment(f)
    True
    """
    code = getattr(fn, "__code__", None)
    if code is None:  # a callable object: its identity
        return (_Same(fn),)
    cells = tuple(_Same(c.cell_contents if _filled(c) else _EMPTY) for c in (fn.__closure__ or ()))
    defaults = (_Same(fn.__defaults__), _Same(getattr(fn, "__kwdefaults__", None)))
    scope = getattr(fn, "__globals__", {})
    used = tuple((n, _Same(scope[n])) for n in sorted(_names(code)) if n in scope)
    return (_Same(code), cells, defaults, used)


_EMPTY = object()


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def joint_of(model: JointDistributionCoroutine | Callable[..., Any]) -> JointDistributionCoroutine:
    """The model as a ``JointDistributionCoroutine``; a generator function is wrapped once.

    The same function gives the same object (with its cache of compiled programs) for as long as
    the function lives and what it reads (see :func:`model_environment`) stays the same objects.

    >>> import coromix.distributions as tfd
    >>> def model():
    ...     x = yield tfd.Normal(0.0, 1.0)
    >>> joint_of(model).name
    'model'
    """
    if isinstance(model, JointDistributionCoroutine):
        return model
    if not callable(model):
        raise TypeError(
            f"model must be a generator function or a JointDistributionCoroutine; got "
            f"{type(model).__name__}"
        )
    environment = model_environment(model)
    try:
        known = _JOINTS.get(model)
    except TypeError:  # not weakly referenceable: no reuse
        return JointDistributionCoroutine(model)
    if known is not None and known[0] == environment:
        return known[1]
    joint = JointDistributionCoroutine(model)
    _JOINTS[model] = (environment, joint)
    return joint


def signature(tree: Mapping[str, Any]) -> tuple[Any, ...]:
    """Names, tree structure, shapes, dtypes and shardings of the arrays in ``tree``.

    >>> import jax.numpy as jnp
    >>> signature({"y": jnp.zeros(3)})[0][0]
    'y'
    """
    out = []
    for name in sorted(tree):
        leaves, structure = jax.tree_util.tree_flatten(tree[name])
        out.append(
            (
                name,
                structure,
                tuple(
                    (jax.numpy.shape(x), str(jax.numpy.result_type(x)), _sharding(x))
                    for x in leaves
                ),
            )
        )
    return tuple(out)


def _sharding(x: Any) -> Any:
    sharding = getattr(x, "sharding", None)
    if sharding is None or len(getattr(sharding, "device_set", ())) <= 1:
        return None
    return sharding
