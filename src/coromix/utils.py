"""Small helpers shared by the whole package: keys, shapes, float dtypes, concreteness.

Nothing here knows about distributions or models; every other module may import it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Shape = tuple[int, ...]

#: What distributions and transforms take as a parameter or a value: a number, a NumPy or JAX
#: array, or a (nested) sequence of numbers; anything ``jnp.asarray`` converts.
ArrayLike = jax.typing.ArrayLike | Sequence[Any]


def default_float() -> np.dtype:
    """The float dtype JAX uses now: float64 when ``jax_enable_x64`` is on, else float32."""
    return jnp.result_type(float)


def as_float(x: Any) -> jax.Array:
    """``x`` as a JAX array of a floating dtype (integers and bools become the default float)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(default_float())
    return x


def promote_floats(*xs: Any) -> tuple[jax.Array, ...]:
    """Convert to floating arrays of one common dtype (not broadcast)."""
    arrays = [as_float(x) for x in xs]
    dtype = jnp.result_type(*arrays)
    return tuple(a.astype(dtype) for a in arrays)


def as_key(seed: Any) -> jax.Array:
    """A JAX PRNG key from an int, an existing key, or ``None`` (a fresh random seed).

    ``None`` draws fresh entropy from the operating system, like NumPy's default generator, so that
    ``d.sample(n)`` works without a seed; pass an int for reproducible draws.
    """
    if seed is None:
        seed = secrets.randbits(31)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return jax.random.key(int(seed))
    if isinstance(seed, (str, bytes, bool, float)):
        raise TypeError(
            f"seed must be an int, a JAX PRNG key or None; got {type(seed).__name__} {seed!r}"
        )
    seed = jnp.asarray(seed) if not isinstance(seed, jax.Array) else seed
    if jnp.issubdtype(seed.dtype, jax.dtypes.prng_key):
        return seed
    if seed.dtype == jnp.uint32 and seed.shape == (2,):
        return jax.random.wrap_key_data(seed)
    if seed.shape == () and jnp.issubdtype(seed.dtype, jnp.integer):
        return jax.random.key(seed)
    raise TypeError(
        f"seed must be an int, a JAX PRNG key or None; got {type(seed).__name__} "
        f"with shape {getattr(seed, 'shape', None)}"
    )


def as_shape(shape: Any, name: str = "sample_shape") -> Shape:
    """A shape tuple from an int or a sequence of ints, each >= 0; a clear error otherwise.

    >>> as_shape(3), as_shape([2, 4]), as_shape(())
    ((3,), (2, 4), ())
    """
    dims = shape
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        dims = (int(shape),)
    try:
        dims = tuple(dims)
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a tuple of ints; got {type(shape).__name__} {shape!r}"
        ) from None
    if not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in dims
    ):
        raise ValueError(f"{name} must be made of integers >= 0; got {shape!r}")
    return tuple(int(d) for d in dims)


def is_concrete(x: Any) -> bool:
    """True when ``x`` has a value this process can read now: not a tracer inside
    jit/vmap/grad, nor an array spread over other processes' devices (multi-host data).

    >>> import jax.numpy as jnp
    >>> seen = []
    >>> _ = jax.jit(lambda x: seen.append(is_concrete(x)) or x)(1.0)
    >>> is_concrete(jnp.ones(3)), seen
    (True, [False])
    """
    if isinstance(x, jax.core.Tracer):
        return False
    return bool(getattr(x, "is_fully_addressable", True))
