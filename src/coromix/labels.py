"""Relabelling of mixture draws: one consistent labelling of the components over chains and draws.

A mixture whose components have exchangeable priors has a posterior invariant under permuting the
component labels, so its chains may settle in different labellings (and a chain may switch between
them).  Every summary per component then mixes components, and R-hat flags the chains as not
mixed.  :func:`relabel` permutes the labels of each draw so that all draws agree with one reference
labelling (a pivot relabelling in the spirit of Stephens 2000 and Celeux 1998).  The alternative is
to break the symmetry in the model itself, e.g. ``mu = yield tfd.Ordered(tfd.Normal(...))``.

This module holds the array work, below :mod:`coromix.results` (which calls it from
``Posterior.relabel`` and its convergence checks):

* :func:`symmetric_components`: which variables carry the component axis, found from the model
  itself (its log density is unchanged when those axes are permuted);
* :func:`chain_labellings`: the labelling each chain sits in, relative to the best chain;
* :func:`pivot_permutations`: the permutation of every draw that gives all draws one labelling.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

#: The most components relabelling accepts: it scores all ``K!`` permutations of every draw.
MAX_COMPONENTS = 8

# Numbers held at once while scoring permutations (bounds the memory of one chunk of draws).
_CHUNK_ELEMENTS = 2**22


class RelabelWarning(UserWarning):
    """The relabelling did not settle, or its result does not fit the model."""


def component_axes(
    samples: Mapping[str, np.ndarray], components: Mapping[str, int] | Sequence[str]
) -> dict[str, tuple[int, int]]:
    """name -> (non-negative axis in one draw's shape, K), checked against the draws
    ``samples`` (name -> ``(chain, draw, ...)``).

    >>> samples = {"mu": np.zeros((2, 10, 3)), "scale_tril": np.zeros((2, 10, 4, 3))}
    >>> component_axes(samples, {"mu": 0, "scale_tril": -1})
    {'mu': (0, 3), 'scale_tril': (1, 3)}
    """
    if isinstance(components, str):
        components = [components]
    if isinstance(components, Mapping):
        items = list(components.items())
    elif isinstance(components, Sequence):
        items = [(name, 0) for name in components]
    else:
        raise TypeError(
            f"relabel: components must be a mapping name -> axis or a sequence of "
            f"names; got {type(components).__name__}"
        )
    if not items:
        raise ValueError(
            f"relabel: components is empty; name the variables indexed by the "
            f"mixture component (the posterior's variables: "
            f"{list(samples)})"
        )
    axes: dict[str, tuple[int, int]] = {}
    for name, axis in items:
        if name not in samples:
            raise ValueError(
                f"relabel: unknown variable {name!r} in components; the posterior's "
                f"variables: {list(samples)}"
            )
        shape = np.shape(samples[name])[2:]
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"relabel: the axis of {name!r} must be an integer; got {axis!r}")
        if not -len(shape) <= axis < len(shape):
            what = (
                "is a scalar in each draw (shape ())"
                if not shape
                else f"has per-draw shape {shape} (axes {-len(shape)} to {len(shape) - 1})"
            )
            raise ValueError(f"relabel: axis {axis} of {name!r} is out of range: {name!r} {what}")
        axis = int(axis) % len(shape)
        axes[name] = (axis, shape[axis])
    sizes = {k: v[1] for k, v in axes.items()}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(
            f"{k!r} has {k_} along axis {axes[k][0]} (per-draw shape {np.shape(samples[k])[2:]})"
            for k, k_ in sizes.items()
        )
        raise ValueError(f"relabel: the component axes must all have the same length K; {listing}")
    return axes


def _reference(
    samples: Mapping[str, np.ndarray],
    lp: np.ndarray | None,
    axes: Mapping[str, tuple[int, int]],
    flat: Mapping[str, np.ndarray],
    reference: Mapping[str, Any] | None,
) -> dict[str, np.ndarray]:
    """The starting reference as name -> array ``(K, rest)``."""
    if reference is None:
        if lp is not None and np.any(np.isfinite(lp)):
            index = int(np.nanargmax(np.where(np.isfinite(lp), lp, np.nan).ravel()))
        else:
            index = 0
        return {name: x[index] for name, x in flat.items()}
    missing = [k for k in axes if k not in reference]
    extra = [k for k in reference if k not in axes]
    if missing or extra:
        raise ValueError(
            f"relabel: reference needs one draw's value of each variable in "
            f"components {list(axes)}; missing {missing}, unexpected {extra}"
        )
    out = {}
    for name, (axis, num_labels) in axes.items():
        value = np.asarray(reference[name], dtype=np.float64)
        shape = np.shape(samples[name])[2:]
        if value.shape != shape:
            raise ValueError(
                f"relabel: reference value of {name!r} has shape {value.shape}; "
                f"expected one draw's shape {shape}"
            )
        out[name] = np.moveaxis(value, axis, 0).reshape(num_labels, -1)
    return out


def _floored_sd(x: np.ndarray) -> np.ndarray:
    """Per-element sd over draws of ``x`` ``(draws, K, rest)``, floored away from 0."""
    sd = x.std(axis=0)
    largest = float(np.max(sd, initial=0.0, where=np.isfinite(sd)))
    floor = 1e-6 * largest if largest > 0 else 1.0
    return np.where(np.isfinite(sd) & (sd > floor), sd, floor)


def _best_permutations(
    flat: Mapping[str, np.ndarray],
    centre: Mapping[str, np.ndarray],
    scale: Mapping[str, np.ndarray],
    perms: np.ndarray,
) -> np.ndarray:
    """For each draw, the row of ``perms`` with the least loss (the first among equals)."""
    num_draws, num_labels = next(iter(flat.values())).shape[:2]
    width = sum(x.shape[2] for x in flat.values())
    per_draw = max(num_labels * num_labels * width, len(perms) * num_labels)
    chunk = max(1, _CHUNK_ELEMENTS // per_draw)
    labels = np.arange(num_labels)
    best = np.empty((num_draws, num_labels), dtype=np.intp)
    for start in range(0, num_draws, chunk):
        stop = min(start + chunk, num_draws)
        # cost[n, j, k]: the loss of giving the draw's label j the new label k
        cost = np.zeros((stop - start, num_labels, num_labels))
        for name, x in flat.items():
            diff = (x[start:stop, :, None, :] - centre[name][None, None]) / scale[name][None, None]
            cost += np.sum(diff * diff, axis=-1)
        loss = cost[:, perms, labels].sum(axis=-1)  # (n, K!): sum_k cost[n, perm[k], k]
        loss = np.where(np.isnan(loss), np.inf, loss)
        best[start:stop] = perms[np.argmin(loss, axis=1)]
    return best


def _permute(x: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """``x`` ``(draws, K, ...)`` with ``new[n, k] = x[n, perm[n, k]]``."""
    index = perm.reshape(perm.shape + (1,) * (x.ndim - 2))
    return np.take_along_axis(x, index, axis=1)


def _permute_along(value: np.ndarray, permutations: np.ndarray, axis: int) -> np.ndarray:
    """``value`` ``(chain, draw, ...)`` permuted per draw along ``axis`` (an axis after 2)."""
    moved = np.moveaxis(value, axis, 2)
    index = permutations.reshape(permutations.shape + (1,) * (moved.ndim - 3))
    return np.moveaxis(np.take_along_axis(moved, index, axis=2), 2, axis)


def check_max_iterations(max_iterations: Any) -> None:
    if (
        not isinstance(max_iterations, (int, np.integer))
        or isinstance(max_iterations, bool)
        or max_iterations < 1
    ):
        raise ValueError(f"relabel: max_iterations must be an integer >= 1; got {max_iterations!r}")


def pivot_permutations(
    samples: Mapping[str, np.ndarray],
    axes: Mapping[str, tuple[int, int]],
    lp: np.ndarray | None,
    reference: Mapping[str, Any] | None,
    max_iterations: int,
) -> tuple[np.ndarray, int]:
    """The permutation of every draw, ``(chain, draw, K)``, and the passes it took.

    Alternates the best permutation of every draw given a centre and scale per element, and the
    centre and scale of the relabelled draws, until no draw changes (see ``cm.relabel``).
    """
    check_max_iterations(max_iterations)
    num_labels = next(iter(axes.values()))[1]
    if num_labels > MAX_COMPONENTS:
        raise ValueError(
            f"relabel: K = {num_labels} components; relabelling scores all K! = "
            f"{math.factorial(num_labels)} label permutations of every draw, which is too many; "
            f"at most K = {MAX_COMPONENTS} is supported (or give the model an ordering "
            f"constraint, e.g. tfd.Ordered)"
        )
    leading = np.shape(next(iter(samples.values())))[:2]
    flat = {
        name: x.reshape((-1,) + x.shape[2:]) for name, x in _components_first(samples, axes).items()
    }  # (draws, K, rest)
    centre = _reference(samples, lp, axes, flat, reference)
    scale = {name: _floored_sd(x) for name, x in flat.items()}

    perms = np.array(list(itertools.permutations(range(num_labels))), dtype=np.intp)
    chosen = None
    converged = False
    iterations = 0
    for iterations in range(1, max_iterations + 1):
        best = _best_permutations(flat, centre, scale, perms)
        if chosen is not None and np.array_equal(best, chosen):
            converged = True
            break
        chosen = best
        relabelled = {name: _permute(x, chosen) for name, x in flat.items()}
        centre = {name: x.mean(axis=0) for name, x in relabelled.items()}
        scale = {name: _floored_sd(x) for name, x in relabelled.items()}
    if not converged:
        warnings.warn(
            f"relabel: the permutations of the draws still changed after max_iterations="
            f"{max_iterations} passes; the labelling may not be settled (raise max_iterations)",
            RelabelWarning,
            stacklevel=3,
        )
    return chosen.reshape(tuple(leading) + (num_labels,)), iterations


def permute_draws(
    samples: Mapping[str, np.ndarray], axes: Mapping[str, tuple[int, int]], permutations: np.ndarray
) -> dict[str, np.ndarray]:
    """``samples`` with each variable in ``axes`` permuted draw by draw along its axis."""
    return {
        name: _permute_along(np.asarray(value), permutations, axes[name][0] + 2)
        if name in axes
        else value
        for name, value in samples.items()
    }


def symmetric_components(
    log_density: Callable[[Mapping[str, Any]], float],
    draw: Mapping[str, np.ndarray],
    sizes: Sequence[int],
) -> dict[str, tuple[int, int]]:
    """The variables whose component axis the model is symmetric in: name -> (axis, K).

    For each number of components ``K`` in ``sizes`` (the support sizes of the model's free
    discrete variables), the candidates are the variables of ``draw`` with exactly one axis of
    length ``K``.  They carry the component axis when permuting that axis in all of them leaves
    ``log_density`` unchanged, for a transposition and for a cycle of the labels (which together
    generate every permutation).  When the whole set is not symmetric, each candidate is left out
    in turn (a vector that has ``K`` elements by coincidence).  Empty when nothing is symmetric
    (ordered components, component-specific priors).
    """
    base = float(log_density(draw))
    if not np.isfinite(base):
        return {}
    tolerance = 1e-3 + 1e-5 * abs(base)

    def symmetric(axes):
        for perm in _generators(next(iter(axes.values()))[1]):
            moved = {
                k: np.take(np.asarray(v), perm, axis=axes[k][0]) if k in axes else v
                for k, v in draw.items()
            }
            if not abs(float(log_density(moved)) - base) <= tolerance:
                return False
        return True

    for k in sorted({int(s) for s in sizes if int(s) >= 2}, reverse=True):
        candidates = {}
        for name, value in draw.items():
            hits = [a for a, n in enumerate(np.shape(value)) if n == k]
            if len(hits) == 1:
                candidates[name] = (hits[0], k)
        if not candidates:
            continue
        if symmetric(candidates):
            return candidates
        for left_out in list(candidates):
            fewer = {n: a for n, a in candidates.items() if n != left_out}
            if fewer and symmetric(fewer):
                return fewer
    return {}


def _generators(k: int) -> list[np.ndarray]:
    swap = np.arange(k)
    swap[[0, 1]] = [1, 0]
    return [swap] if k == 2 else [swap, np.roll(np.arange(k), 1)]


def chain_labellings(
    samples: Mapping[str, np.ndarray], axes: Mapping[str, tuple[int, int]], reference_chain: int
) -> np.ndarray:
    """For each chain, the permutation ``p`` (``new[k] = old[p[k]]``) that best matches its mean
    per component with the reference chain's, ``(chain, K)``; the identity when it already does.

    The distance is the squared difference of chain means over the pooled sd, summed over the
    variables and elements; ties keep the identity.
    """
    num_labels = next(iter(axes.values()))[1]
    num_chains = np.shape(next(iter(samples.values())))[0]
    means, scales = {}, {}
    for name, moved in _components_first(samples, axes).items():
        means[name] = moved.mean(axis=1)  # (chain, K, rest)
        scales[name] = _floored_sd(moved.reshape((-1,) + moved.shape[2:]))
    perms = np.array(list(itertools.permutations(range(num_labels))), dtype=np.intp)
    out = np.empty((num_chains, num_labels), np.intp)
    for c in range(num_chains):
        loss = np.zeros(len(perms))
        for name in axes:
            target = means[name][reference_chain]
            moved = means[name][c][perms]  # (perms, K, rest)
            loss += np.sum(((moved - target) / scales[name]) ** 2, axis=(1, 2))
        out[c] = perms[int(np.argmin(loss))]
    return out


def _components_first(
    samples: Mapping[str, np.ndarray], axes: Mapping[str, tuple[int, int]]
) -> dict[str, np.ndarray]:
    """Each variable in ``axes`` as ``(chain, draw, K, rest)`` in float64."""
    out = {}
    for name, (axis, num_labels) in axes.items():
        moved = np.moveaxis(np.asarray(samples[name], np.float64), axis + 2, 2)
        out[name] = moved.reshape(moved.shape[:2] + (num_labels, -1))
    return out
