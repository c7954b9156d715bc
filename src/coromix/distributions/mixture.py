"""Mixture: a finite mixture of K distributions that may be of different families."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from coromix import constraints
from coromix.distributions.distribution import Distribution
from coromix.distributions.mixture_same_family import check_categorical
from coromix.utils import ArrayLike, Shape


def _same_constraint(a, b) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    va, vb = vars(a), vars(b)
    if va.keys() != vb.keys():
        return False
    try:
        return all(
            _same_constraint(va[n], vb[n])
            if isinstance(va[n], constraints.Constraint)
            else bool(np.array_equal(np.asarray(va[n]), np.asarray(vb[n])))
            for n in va
        )
    except (TypeError, ValueError, jax.errors.JAXTypeError, jax.errors.ConcretizationTypeError):
        # tracers (inside jit) or incomparable values: treat as different
        return False


def _scalar_bounds(c):
    """``(low, high)`` of a continuous scalar-event interval-like support, else None."""
    if isinstance(c, constraints.GreaterThan):
        return c.lower, jnp.inf
    if isinstance(c, constraints.Interval):
        return c.low, c.high
    if c is constraints.positive:
        return 0.0, jnp.inf
    if c is constraints.unit_interval:
        return 0.0, 1.0
    return None


class _Union(constraints.Constraint):
    """Values in the support of at least one component (used when the supports differ)."""

    def __init__(self, parts: Iterable[constraints.Constraint]) -> None:
        self.parts = tuple(parts)
        self.event_ndim = self.parts[0].event_ndim
        self.is_discrete = all(p.is_discrete for p in self.parts)

    def check(self, x: ArrayLike) -> jax.Array:
        ok = self.parts[0].check(x)
        for p in self.parts[1:]:
            ok = ok | p.check(x)
        return ok

    def admits(self, x: ArrayLike) -> jax.Array:
        ok = self.parts[0].admits(x)
        for p in self.parts[1:]:
            ok = ok | p.admits(x)
        return ok

    def __str__(self) -> str:
        return "union of " + ", ".join(str(p) for p in self.parts)


class Mixture(Distribution):
    r"""Mixture of K distributions, TensorFlow Probability's ``Mixture``.

    ``cat`` is a Categorical with ``K`` categories (weights ``w``, batch shape ``B`` or ``()``);
    ``components`` is a sequence of ``K`` distributions, possibly of different families, all with
    the same batch shape ``B`` and event shape ``E``.  The mixture has batch ``B`` and event ``E``:

    .. math::

        \log p(x) = \operatorname{logsumexp}_k \bigl(\log w_k + \log p_k(x)\bigr), \qquad
        \mathbb{E}[X] = \sum_k w_k \mu_k, \qquad
        \operatorname{Var}[X] = \sum_k w_k \sigma^2_k + \sum_k w_k (\mu_k - \mathbb{E}[X])^2

    (for vector events the variance is elementwise).  Sampling draws every component and keeps
    the one the categorical picks, so it costs K component draws per sample.

    >>> from coromix.distributions import Categorical, Laplace, Normal
    >>> d = Mixture(Categorical(probs=[0.5, 0.5]), [Normal(0.0, 1.0), Laplace(3.0, 1.0)])
    >>> round(float(d.log_prob(1.0)), 4)   # log(exp(-1/2) / sqrt(2 pi) / 2 + exp(-2) / 4)
    -1.8655
    >>> float(d.mean())   # (0 + 3) / 2
    1.5
    """

    parameter_names = ("cat", "components")

    def __init__(
        self,
        cat: Distribution,
        components: Sequence[Distribution],
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        label = f"Mixture '{name}'" if name else "Mixture"
        check_categorical(cat, label, "cat")
        if isinstance(components, Distribution) or not hasattr(components, "__len__"):
            raise TypeError(
                f"{label}: `components` must be a list or tuple of distributions; "
                f"got {type(components).__name__}"
            )
        components = tuple(components)
        for i, c in enumerate(components):
            if not isinstance(c, Distribution):
                raise TypeError(
                    f"{label}: components[{i}] must be a Distribution; got {type(c).__name__}"
                )
        k = cat.num_categories
        if len(components) != k:
            raise ValueError(
                f"{label}: `cat` has K = {k} categories (batch_shape "
                f"{tuple(cat.batch_shape)}) but {len(components)} components "
                f"were given"
            )
        if k == 0:
            raise ValueError(f"{label}: needs at least one component")
        b0, e0 = tuple(components[0].batch_shape), tuple(components[0].event_shape)
        for i, c in enumerate(components[1:], start=1):
            b, e = tuple(c.batch_shape), tuple(c.event_shape)
            if (b, e) != (b0, e0):
                raise ValueError(
                    f"{label}: components[{i}] ({c._label()}) has batch_shape {b} and event_shape "
                    f"{e}, but components[0] ({components[0]._label()}) has batch_shape {b0} and "
                    f"event_shape {e0}; all components must have the same shapes"
                )
        try:
            jnp.broadcast_shapes(tuple(cat.batch_shape), b0)
        except ValueError:
            raise ValueError(
                f"{label}: `cat` batch_shape {tuple(cat.batch_shape)} does not match "
                f"the components' batch_shape {b0}"
            ) from None
        self.cat = cat
        self.components = components
        self._init_common(name, validate_args)

    # --- shapes and properties --------------------------------------------------------------
    @property
    def num_components(self) -> int:
        return len(self.components)

    @property
    def batch_shape(self) -> Shape:
        return tuple(
            jnp.broadcast_shapes(tuple(self.cat.batch_shape), tuple(self.components[0].batch_shape))
        )

    @property
    def event_shape(self) -> Shape:
        return tuple(self.components[0].event_shape)

    @property
    def support(self) -> constraints.Constraint:
        """The components' support.  When they differ: the real line if one component's support
        is the real line; for continuous interval-like supports (positive, greater-than, interval)
        the smallest such support holding them all (``GreaterThan(min lower)`` or
        ``Interval(min low, max high)``), which ``biject_to`` understands; otherwise their union
        (checkable, but with no bijection for unconstrained inference)."""
        parts = [c.support for c in self.components]
        if all(_same_constraint(parts[0], p) for p in parts[1:]):
            return parts[0]
        for p in parts:
            if p is constraints.real or p is constraints.real_vector:
                return p
        bounds = [_scalar_bounds(p) for p in parts]
        if all(b is not None for b in bounds):
            low = functools.reduce(jnp.minimum, [b[0] for b in bounds])
            unbounded = any(isinstance(b[1], float) and b[1] == float("inf") for b in bounds)
            if unbounded:
                return constraints.GreaterThan(low)
            return constraints.Interval(low, functools.reduce(jnp.maximum, [b[1] for b in bounds]))
        return _Union(parts)

    @property
    def is_discrete(self) -> bool:  # type: ignore[override]
        return all(c.is_discrete for c in self.components)

    @property
    def dtype(self) -> DTypeLike:
        return jnp.result_type(*(c.dtype for c in self.components))

    def _log_weights(self):
        return jax.nn.log_softmax(self.cat.logits, axis=-1)

    # --- sampling and densities -------------------------------------------------------------
    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        # shape = sample_shape + batch_shape.  Draw every component, then pick one per draw.
        keys = jax.random.split(key, self.num_components + 1)
        n_event = len(self.event_shape)
        full = shape + self.event_shape
        dtype = self.dtype
        xs = jnp.stack(
            [
                jnp.broadcast_to(c._sample(kk, shape), full).astype(dtype)
                for c, kk in zip(self.components, keys[1:])
            ],
            axis=-1 - n_event,
        )
        k = self.cat._sample(keys[0], shape)  # S + B
        idx = k.reshape(k.shape + (1,) * (1 + n_event))
        return jnp.take_along_axis(xs, idx, axis=-1 - n_event).squeeze(-1 - n_event)

    def _value_constraint(self) -> constraints.Constraint:
        parts = [c._value_constraint() for c in self.components]
        if all(_same_constraint(parts[0], p) for p in parts[1:]):
            return parts[0]
        return _Union(parts)

    def log_prob(self, value: ArrayLike) -> jax.Array:
        # the mixture checks the value (in some component's support); each component then
        # scores it, -inf outside its own support
        self._check_value(value)
        lps = [c._unvalidated().log_prob(value) for c in self.components]
        shape = jnp.broadcast_shapes(*(jnp.shape(lp) for lp in lps))
        lp = jnp.stack([jnp.broadcast_to(x, shape) for x in lps], axis=-1)  # S + B + [K]
        return jax.nn.logsumexp(lp + self._log_weights(), axis=-1)

    def _moments(self):
        axis = -1 - len(self.event_shape)
        full = self.batch_shape + self.event_shape
        w = self.cat.probs
        w = w.reshape(w.shape + (1,) * len(self.event_shape))  # B + [K] + 1s
        mu = jnp.stack([jnp.broadcast_to(c.mean(), full) for c in self.components], axis=axis)
        return w, mu, axis, full

    def mean(self) -> jax.Array:
        w, mu, axis, full = self._moments()
        return jnp.broadcast_to(jnp.sum(w * mu, axis=axis), full)

    def variance(self) -> jax.Array:
        w, mu, axis, full = self._moments()
        var = jnp.stack([jnp.broadcast_to(c.variance(), full) for c in self.components], axis=axis)
        m = jnp.sum(w * mu, axis=axis, keepdims=True)
        return jnp.broadcast_to(jnp.sum(w * (var + (mu - m) ** 2), axis=axis), full)

    def __repr__(self) -> str:
        comps = ", ".join(repr(c) for c in self.components)
        return (
            f"{self._label()}(batch_shape={self.batch_shape}, event_shape={self.event_shape}, "
            f"components=[{comps}])"
        )
