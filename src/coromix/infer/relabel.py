"""Relabelling of mixture draws: one consistent labelling of the components over chains and draws.

A mixture whose components have exchangeable priors has a posterior invariant under permuting the
component labels, so its chains may settle in different labellings (and a chain may switch between
them).  Every summary per component then mixes components, and R-hat flags the chains as not
mixed.  :func:`relabel` permutes the labels of each draw so that all draws agree with one reference
labelling (a pivot relabelling in the spirit of Stephens 2000 and Celeux 1998).  The alternative is
to break the symmetry in the model itself, e.g. ``mu = yield tfd.Ordered(tfd.Normal(...))``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from coromix.model import Values
from coromix.results import Posterior, _per_draw

#: The most components :func:`relabel` accepts: it scores all ``K!`` permutations of every draw.
MAX_COMPONENTS = 8

# Numbers held at once while scoring permutations (bounds the memory of one chunk of draws).
_CHUNK_ELEMENTS = 2**22


class RelabelWarning(UserWarning):
    """The relabelling did not settle, or its result does not fit the model."""


def relabel(posterior: Posterior, components: Mapping[str, int] | Sequence[str], *,
            reference: Mapping[str, Any] | None = None,
            max_iterations: int = 20) -> Posterior:
    """Permute the component labels of every draw so that all draws share one labelling.

    Use it on a mixture fitted **without** an ordering constraint, whose posterior is the same
    under any permutation of the component labels (exchangeable priors): then the relabelled draws
    are draws of the same posterior, with labels that mean the same thing in every chain.

    For each draw ``n`` the permutation ``p`` of the ``K`` labels is chosen that minimizes

    .. math::

        L_n(p) = \\sum_v \\sum_{k=1}^K \\sum_r
                 \\left( \\frac{x^{(n)}_{v,\\,p(k),\\,r} - m_{v,k,r}}{s_{v,k,r}} \\right)^2

    where ``v`` runs over the variables in ``components``, ``k`` over the labels (the component
    axis of ``v``), ``r`` over the other elements of ``v`` in one draw, ``m`` is the reference and
    ``s`` the per-element posterior standard deviation.  The relabelled draw is
    ``new[k] = old[p(k)]``.  Starting from a reference draw, the method alternates (a) the best
    permutation of every draw given ``m`` and ``s`` and (b) ``m`` and ``s`` set to the mean and
    standard deviation of the relabelled draws (in the first pass ``s`` is the standard deviation
    of the draws as given), until no draw changes its permutation: then every draw's labelling is
    the best one for the posterior summary it produces.  The search is deterministic (ties keep
    the draw's labels as they are).

    Args:
        posterior: a fit, e.g. from :func:`coromix.nuts`.
        components: the variables indexed by the mixture component, and along which axis of one
            draw's shape: a mapping name -> axis (``{"mu": 0, "sigma": 0, "weights": 0}``;
            negative axes count from the end), or a sequence of names (axis 0 for each).  All
            these axes must have the same length ``K`` (at most 8: all ``K!`` permutations of
            every draw are scored).
        reference: name -> one draw's value of each variable in ``components``, the labelling to
            match; by default the draw with the highest log density (``sample_stats["lp"]``), or
            the first draw of the first chain without it.
        max_iterations: passes over all draws at most (each pass chooses every permutation once);
            a :class:`RelabelWarning` is issued when the permutations still changed in the last.

    Returns:
        A new :class:`~coromix.results.Posterior` whose variables in ``components`` are permuted
        draw by draw (the others are the same arrays), with the same sampler statistics, observed
        values, model and attrs (plus ``attrs["relabelled"]``).  Its ``unconstrained`` draws are
        recomputed from the model (empty without a model), and its discrete posterior (the
        responsibilities) is recomputed from the model on demand, so it follows the new labels.
        The attribute ``permutations`` holds the permutation of each draw, an integer array
        ``(chain, draw, K)`` with ``new[..., k, ...] = old[..., permutations[c, d, k], ...]``.

    Example::

        import jax.numpy as jnp
        import numpy as np
        import coromix as cm
        tfd = cm.distributions

        rng = np.random.default_rng(0)
        y = np.concatenate([rng.normal(-2.0, 1.0, 100), rng.normal(2.0, 1.0, 100)])

        def gmm():
            w = yield tfd.Dirichlet(jnp.ones(2))
            mu = yield tfd.Normal(jnp.zeros(2), 5.0)            # exchangeable: labels can switch
            sigma = yield tfd.HalfNormal(jnp.ones(2))
            z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (len(y), 2)))
            obs = yield tfd.Normal(mu[z], sigma[z], name="y")

        post = cm.nuts(gmm, {"y": y}, num_warmup=300, num_samples=300, progress=False)
        fixed = cm.relabel(post, ["w", "mu", "sigma"])
        print(fixed.summary())                # one row per component, R-hat near 1
        fixed.permutations                    # (chain, draw, 2): the labels each draw took
    """
    axes = _component_axes(posterior, components)
    if not isinstance(max_iterations, (int, np.integer)) or isinstance(max_iterations, bool) \
            or max_iterations < 1:
        raise ValueError(f"relabel: max_iterations must be an integer >= 1; "
                         f"got {max_iterations!r}")
    num_labels = next(iter(axes.values()))[1]
    if num_labels > MAX_COMPONENTS:
        raise ValueError(
            f"relabel: K = {num_labels} components; relabelling scores all K! = "
            f"{math.factorial(num_labels)} label permutations of every draw, which is too many; "
            f"at most K = {MAX_COMPONENTS} is supported (or give the model an ordering "
            f"constraint, e.g. tfd.Ordered)")
    leading = (posterior.num_chains, posterior.num_draws)
    num_draws = math.prod(leading)

    # each variable as (draws, K, rest) in float64, the component axis second
    flat = {}
    for name, (axis, _) in axes.items():
        moved = np.moveaxis(np.asarray(posterior.samples[name]), axis + 2, 2)
        flat[name] = moved.reshape(num_draws, num_labels, -1).astype(np.float64)
    centre = _reference(posterior, axes, flat, reference)
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
            RelabelWarning, stacklevel=2)

    permutations = chosen.reshape(leading + (num_labels,))
    samples = Values()
    for name, value in posterior.samples.items():
        if name in axes:
            value = _permute_along(np.asarray(value), permutations, axes[name][0] + 2)
        samples[name] = value
    unconstrained = _unconstrained(posterior, samples)
    attrs = {**posterior.attrs, "relabelled": "pivot",
             "relabel_components": ",".join(f"{k}:{a}" for k, (a, _) in axes.items()),
             "relabel_iterations": iterations}
    result = Posterior(samples, unconstrained=unconstrained,
                       sample_stats=posterior.sample_stats, observed=posterior.observed,
                       model=posterior.model, attrs=attrs)
    result.permutations = permutations
    return result


def _component_axes(posterior: Posterior,
                    components: Mapping[str, int] | Sequence[str]) -> dict[str, tuple[int, int]]:
    """name -> (non-negative axis in one draw's shape, K), checked against the posterior."""
    if isinstance(components, str):
        components = [components]
    if isinstance(components, Mapping):
        items = list(components.items())
    elif isinstance(components, Sequence):
        items = [(name, 0) for name in components]
    else:
        raise TypeError(f"relabel: components must be a mapping name -> axis or a sequence of "
                        f"names; got {type(components).__name__}")
    if not items:
        raise ValueError(f"relabel: components is empty; name the variables indexed by the "
                         f"mixture component (the posterior's variables: "
                         f"{list(posterior.samples)})")
    axes: dict[str, tuple[int, int]] = {}
    for name, axis in items:
        if name not in posterior.samples:
            raise ValueError(f"relabel: unknown variable {name!r} in components; the posterior's "
                             f"variables: {list(posterior.samples)}")
        shape = np.shape(posterior.samples[name])[2:]
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"relabel: the axis of {name!r} must be an integer; got {axis!r}")
        if not -len(shape) <= axis < len(shape):
            what = "is a scalar in each draw (shape ())" if not shape else \
                f"has per-draw shape {shape} (axes {-len(shape)} to {len(shape) - 1})"
            raise ValueError(f"relabel: axis {axis} of {name!r} is out of range: {name!r} {what}")
        axis = int(axis) % len(shape)
        axes[name] = (axis, shape[axis])
    sizes = {k: v[1] for k, v in axes.items()}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{k!r} has {k_} along axis {axes[k][0]} (per-draw shape "
                            f"{np.shape(posterior.samples[k])[2:]})" for k, k_ in sizes.items())
        raise ValueError(f"relabel: the component axes must all have the same length K; "
                         f"{listing}")
    return axes


def _reference(posterior: Posterior, axes: Mapping[str, tuple[int, int]],
               flat: Mapping[str, np.ndarray],
               reference: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """The starting reference as name -> array ``(K, rest)``."""
    if reference is None:
        lp = posterior.sample_stats.get("lp")
        if lp is not None and np.any(np.isfinite(lp)):
            index = int(np.nanargmax(np.where(np.isfinite(lp), lp, np.nan).ravel()))
        else:
            index = 0
        return {name: x[index] for name, x in flat.items()}
    missing = [k for k in axes if k not in reference]
    extra = [k for k in reference if k not in axes]
    if missing or extra:
        raise ValueError(f"relabel: reference needs one draw's value of each variable in "
                         f"components {list(axes)}; missing {missing}, unexpected {extra}")
    out = {}
    for name, (axis, num_labels) in axes.items():
        value = np.asarray(reference[name], dtype=np.float64)
        shape = np.shape(posterior.samples[name])[2:]
        if value.shape != shape:
            raise ValueError(f"relabel: reference value of {name!r} has shape {value.shape}; "
                             f"expected one draw's shape {shape}")
        out[name] = np.moveaxis(value, axis, 0).reshape(num_labels, -1)
    return out


def _floored_sd(x: np.ndarray) -> np.ndarray:
    """Per-element sd over draws of ``x`` ``(draws, K, rest)``, floored away from 0."""
    sd = x.std(axis=0)
    largest = float(np.max(sd, initial=0.0, where=np.isfinite(sd)))
    floor = 1e-6 * largest if largest > 0 else 1.0
    return np.where(np.isfinite(sd) & (sd > floor), sd, floor)


def _best_permutations(flat: Mapping[str, np.ndarray], centre: Mapping[str, np.ndarray],
                       scale: Mapping[str, np.ndarray], perms: np.ndarray) -> np.ndarray:
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


def _unconstrained(posterior: Posterior, samples: Mapping[str, np.ndarray]) -> Values:
    """The relabelled draws on unconstrained space through the model (empty without one)."""
    if posterior.model is None:
        return Values()
    pinned = posterior.model.pin(dict(posterior.observed))
    names = list(pinned.parameter_shapes)
    missing = [k for k in names if k not in samples]
    if missing:
        raise ValueError(f"relabel: the posterior lacks draws of the model's parameters "
                         f"{missing} (model {posterior.model.name!r}); cannot map the relabelled "
                         f"draws to unconstrained space")
    mapped = _per_draw(lambda draw, _: pinned.to_unconstrained(draw),
                       {k: samples[k] for k in names})
    order = list(posterior.unconstrained) or list(samples)
    order += [k for k in names if k not in order]
    out = Values((k, mapped[k]) for k in order if k in mapped)
    # values the model cannot map (an ordered vector no longer increasing), unless they were so
    # before relabelling already
    bad = [k for k, v in out.items() if not np.all(np.isfinite(v))
           and (k not in posterior.unconstrained or np.all(np.isfinite(posterior.unconstrained[k])))]
    if bad:
        warnings.warn(
            f"relabel: after relabelling, {bad} fall outside the support the model gives them "
            f"(no finite unconstrained value): the model is not symmetric in these labels (an "
            f"ordering constraint, or priors that differ by component), so the relabelled draws "
            f"are not draws of its posterior", RelabelWarning, stacklevel=3)
    return out
