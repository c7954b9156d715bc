"""Exact summing-out of finite discrete choices: paths and plates.

Two mechanisms, chosen by the shape of the discrete variable:

* **Paths.** A scalar finite discrete variable (batch and event shape ``()``) may be branched on with a
  Python ``if``.  The model is run once per combination of such choices (a *path*), each time with a
  concrete value, and the paths' log densities are combined with log-sum-exp.  The paths are found by
  a depth-first replay of the model; their number is bounded by ``max_paths``.

* **Plates.** A finite discrete variable with a batch shape ``S`` stands for ``S`` independent choices.
  It is given all its values at once along a new axis on the left (an *enumeration dim*): the ``j``-th
  enumerated variable of a run receives the value ``support`` of shape ``(K_j,) + (1,) * (j + len(S))``,
  which broadcasts against anything of shape ``S`` (as in NumPyro and Pyro).  Later
  terms that depend on it (by indexing ``mu[z]`` or ``jnp.where``) carry that axis; at the end, per plate
  element, the terms that carry enumeration dims are summed and log-sum-exp'ed over those dims:

      log p = sum(terms without enumeration dims)
              + sum_{s in S} logsumexp_{k_0..k_E} sum(terms with enumeration dims)[k_E, .., k_0, s]

  This costs ``O(prod_j K_j * |S|)`` work, not ``K^|S|``.

Contract for plates: terms yielded before the first plate variable are free of it (declare global
parameters first).  After a plate variable of shape ``S`` is enumerated, every term's batch shape
(the shape of its ``log_prob``) is ``S``, a shape of rank at most ``len(S)`` without the plate
dims, or has the enumeration dims on its left followed by exactly ``S``.  Extra per-element dimensions belong in the event
(``Independent``/``Sample``).  Shapes that break this raise an error rather than give a wrong number.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from coromix.distributions.distribution import Distribution

DEFAULT_MAX_PATHS = 1024


class EnumerationError(ValueError):
    """A discrete variable cannot be summed out (infinite support, too many paths, bad shapes)."""


def _base_for_plate(dist: Distribution) -> Distribution | None:
    """For Independent/Sample of a discrete distribution, the distribution scored elementwise."""
    inner = getattr(dist, "distribution", None)
    if inner is None or type(dist).__name__ not in ("Independent", "Sample"):
        return None
    if type(dist).__name__ == "Sample" and tuple(inner.batch_shape) != ():
        raise EnumerationError(
            f"{dist._label()}: a Sample of a batched discrete distribution cannot be enumerated; "
            f"give the Categorical the full batch shape instead"
        )
    return _base_for_plate(inner) or inner


def elementwise(dist: Distribution) -> Distribution:
    """The distribution whose ``log_prob`` scores each discrete choice of ``dist`` separately."""
    return _base_for_plate(dist) or dist


def is_path_site(dist: Distribution) -> bool:
    """A single finite discrete choice (shape ``()``): enumerated as paths, so ``if`` on it works."""
    return (
        bool(dist.is_discrete)
        and dist.has_enumerate_support
        and tuple(dist.batch_shape) == ()
        and tuple(dist.event_shape) == ()
    )


def support_values(dist: Distribution, name: str) -> np.ndarray:
    """The finite support of a discrete variable as a concrete NumPy array, or a clear error."""
    base = elementwise(dist)
    if not base.has_enumerate_support:
        raise EnumerationError(
            f"variable {name!r} ({type(base).__name__}) has an infinite support, so it cannot be "
            f"summed out; give it a value (observe it) or use a finite distribution"
        )
    try:
        values = np.asarray(base.enumerate_support())
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError) as err:
        raise EnumerationError(
            f"variable {name!r}: its support depends on a value that is not known until run time "
            f"({type(base).__name__} with a traced parameter); make it a constant"
        ) from err
    return values


class PathChooser:
    """Gives the value of each scalar discrete choice on one path, recording what it saw."""

    def __init__(self, prefix: tuple[int, ...]):
        self.prefix = prefix
        self.taken: list[int] = []
        self.sizes: list[int] = []
        self.names: list[str] = []

    def fresh(self) -> PathChooser:
        """A new chooser for the same path (a second run of the model along it)."""
        return PathChooser(self.prefix)

    def adopt(self, other: PathChooser) -> None:
        """Take over what ``other`` (a run along the same path) recorded."""
        self.taken, self.sizes, self.names = other.taken, other.sizes, other.names

    def choose(self, name: str, dist: Distribution) -> np.ndarray:
        support = support_values(dist, name)
        depth = len(self.taken)
        index = self.prefix[depth] if depth < len(self.prefix) else 0
        self.taken.append(index)
        self.sizes.append(len(support))
        self.names.append(name)
        return support[index]


def enumerate_paths(run_path: Callable[[PathChooser], Any], max_paths: int) -> list[Any]:
    """Call ``run_path(chooser)`` once per path of the model's scalar discrete choices.

    Depth-first: the first run takes the first support value at every choice; each run then queues
    the siblings of the choices it made beyond its prefix.  Returns the results in path order.
    """
    results: list[Any] = []
    pending: list[tuple[int, ...]] = [()]
    seen_sizes: dict[str, int] = {}
    while pending:
        prefix = pending.pop()
        chooser = PathChooser(prefix)
        results.append(run_path(chooser))
        siblings = []
        for depth in range(len(prefix), len(chooser.taken)):
            base = tuple(chooser.taken[:depth])
            siblings += [base + (v,) for v in range(1, chooser.sizes[depth])]
        pending += reversed(siblings)
        seen_sizes.update(zip(chooser.names, chooser.sizes))
        if len(results) + len(pending) > max_paths:
            choices = ", ".join(f"{n!r} ({k} values)" for n, k in seen_sizes.items())
            raise EnumerationError(
                f"summing out the discrete choices {choices} takes more than max_paths={max_paths} "
                f"runs of the model (one per combination). Use the vectorized form: one variable "
                f"with a batch shape (e.g. Categorical(probs=jnp.broadcast_to(w, (N, K)))) used by "
                f"indexing or jnp.where instead of Python `if`, a HiddenMarkovModel for chains, or "
                f"raise max_paths"
            )
    return results


class PlateEnumerator:
    """Collects log-density terms of one run, enumerating batch-shaped discrete variables."""

    def __init__(self):
        self.plate_shape: tuple[int, ...] | None = None
        self.sizes: list[int] = []  # K_j of the j-th enumerated variable
        self.names: list[str] = []
        self.supports: list[np.ndarray] = []
        self.terms: list[tuple[str, jax.Array, int]] = []  # (name, term, enum dims when added)

    @property
    def num_enum_dims(self) -> int:
        return len(self.sizes)

    def enumerate(self, name: str, dist: Distribution) -> jax.Array:
        """All values of plate variable ``name`` along a new enumeration dim; records its term.

        The value has shape ``(K_j,) + (1,) * (j + len(S))``: it broadcasts against the plate, so
        ``mu[z]`` gathers ``K_j`` values instead of ``K_j * |S|`` (and its gradient scatters as few).
        """
        support = support_values(dist, name)
        full = tuple(dist.batch_shape) + tuple(dist.event_shape)
        j = self.num_enum_dims
        if self.plate_shape is None:
            self.plate_shape = full
        own = (
            full[len(full) - len(self.plate_shape) :]
            if len(full) >= len(self.plate_shape)
            else full
        )
        try:
            fits = np.broadcast_shapes(own, self.plate_shape) == self.plate_shape
        except ValueError:
            fits = False
        if not fits or len(full) > j + len(self.plate_shape):
            raise EnumerationError(
                f"plate variable {name!r} has shape {full} but an earlier one "
                f"({self.names[0]!r}) has {self.plate_shape}; all enumerated batch-shaped discrete "
                f"variables of a model must share one plate shape"
            )
        k = len(support)
        value = jnp.asarray(support).reshape((k,) + (1,) * (j + len(self.plate_shape)))
        self.sizes.append(k)
        self.names.append(name)
        self.supports.append(support)
        term = elementwise(dist).enumerate_log_prob()
        term = term.reshape(
            term.shape[:1] + (1,) * (j + len(self.plate_shape) + 1 - term.ndim) + term.shape[1:]
        )
        self.add(
            name,
            jnp.broadcast_to(
                term, jnp.broadcast_shapes(term.shape, (k,) + (1,) * j + self.plate_shape)
            ),
        )
        return value

    def add(self, name: str, term: jax.Array) -> None:
        self.terms.append((name, jnp.asarray(term), self.num_enum_dims))

    def _split(self, leave_out: Collection[str] = ()):
        """Named terms without enumeration dims (summed whole) and with them (aligned to full shape)."""
        e, plate = self.num_enum_dims, self.plate_shape
        enum_shape = tuple(reversed(self.sizes))
        free, bound = [], []
        for name, term, dims_then in self.terms:
            if name in leave_out:
                continue
            # a term added before any enumeration cannot depend on an enumerated variable
            if dims_then == 0 or term.ndim <= len(plate):
                free.append((name, term))
                continue
            extra = term.shape[: term.ndim - len(plate)]
            if term.ndim > e + len(plate) or term.shape[term.ndim - len(plate) :] != plate:
                raise EnumerationError(
                    f"the log density of {name!r} has shape {term.shape}, which cannot be matched "
                    f"element by element with the enumerated plate variable(s) "
                    f"{self.names} (enumeration dims {enum_shape} on the left of the plate shape "
                    f"{plate}). Move extra per-element dimensions into the event with Independent "
                    f"or Sample, or index with the plate variable so its shape is kept"
                )
            aligned = (1,) * (e - len(extra)) + extra
            if any(a not in (1, k) for a, k in zip(aligned, enum_shape)):
                raise EnumerationError(
                    f"the log density of {name!r} has shape {term.shape}: its leading dims "
                    f"{extra} do not match the enumeration dims {enum_shape} of {self.names}; "
                    f"use Independent or Sample for extra dimensions"
                )
            bound.append((name, term.reshape(aligned + plate)))
        return free, bound, enum_shape

    def log_density(self, leave_out: Collection[str] = ()) -> jax.Array:
        """Sum of all terms with the enumerated plate variables summed out element by element.

        Terms of the variables in ``leave_out`` are not included.
        """
        free, bound, enum_shape = self._split(leave_out)
        total = sum((jnp.sum(t) for _, t in free), jnp.zeros(()))
        if bound:
            joint = self._sum(bound, enum_shape)
            total = total + jnp.sum(jax.nn.logsumexp(joint, axis=tuple(range(len(enum_shape)))))
        return total

    def pointwise(self, observed: Collection[str]) -> dict[str, jax.Array]:
        """Log-likelihood of each observed variable per element, the plate variables summed out.

        A term free of the plate variables is its own pointwise log-likelihood (its batch shape).
        Observed terms that carry enumeration dims are not independent of each other given the
        parameters, so they are reported together (names joined by ``+``), per plate element::

            log p(y_s | params) = logsumexp_k sum(all terms)[k, s]
                                  - logsumexp_k sum(terms of unobserved variables)[k, s]

        (the second term is 0 for a plain mixture, where it is the log of the mixture weights' sum).
        """
        free, bound, enum_shape = self._split()
        out = {name: term for name, term in free if name in observed}
        names = list(dict.fromkeys(name for name, _ in bound if name in observed))
        if names:
            axes = tuple(range(len(enum_shape)))
            rest = [(n, t) for n, t in bound if n not in observed]
            out["+".join(names)] = jax.nn.logsumexp(
                self._sum(bound, enum_shape), axis=axes
            ) - jax.nn.logsumexp(self._sum(rest, enum_shape), axis=axes)
        return out

    def _sum(self, bound, enum_shape) -> jax.Array:
        """The sum of aligned terms, shape ``enum_shape + S``."""
        return sum(jnp.broadcast_to(t, enum_shape + self.plate_shape) for _, t in bound)

    def _joint(self):
        """Summed terms over enumeration dims and plate, shape ``(K_{E-1}, .., K_0) + S``."""
        _, bound, enum_shape = self._split()
        return self._sum(bound, enum_shape) if bound else None

    def responsibilities(self) -> dict[str, jax.Array]:
        """``p(z_j[s] = k | everything else on this path)`` for each plate variable, shape S + (K_j,)."""
        joint = self._joint()
        if joint is None:
            return {}
        e = self.num_enum_dims
        log_norm = jax.nn.logsumexp(joint, axis=tuple(range(e)))
        out = {}
        for j, name in enumerate(self.names):
            axis = e - 1 - j
            others = tuple(a for a in range(e) if a != axis)
            marginal = jax.nn.logsumexp(joint, axis=others) if others else joint
            out[name] = jnp.moveaxis(jnp.exp(marginal - log_norm), 0, -1)
        return out

    def sample(self, key: jax.Array | None) -> dict[str, jax.Array]:
        """One joint draw of all plate variables from their exact conditional, element by element.

        With ``key=None``, the most probable joint value per element instead of a draw.
        """
        joint = self._joint()
        if joint is None:
            return {}
        e = self.num_enum_dims
        per_element = jnp.moveaxis(joint, tuple(range(e)), tuple(range(-e, 0)))
        flat = per_element.reshape(self.plate_shape + (-1,))
        if key is None:
            index = jnp.argmax(flat, axis=-1)
        else:
            index = jax.random.categorical(key, flat, axis=-1)
        indices = jnp.unravel_index(index, tuple(reversed(self.sizes)))
        return {
            name: jnp.asarray(support)[indices[e - 1 - j]]
            for j, (name, support) in enumerate(zip(self.names, self.supports))
        }
