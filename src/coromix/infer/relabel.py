"""Relabelling of mixture draws: one consistent labelling of the components over chains and draws.

The work is done by ``Posterior.relabel`` (with :mod:`coromix.labels`); :func:`relabel` is its
functional form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coromix.labels import MAX_COMPONENTS, RelabelWarning
from coromix.results import Posterior

__all__ = ["MAX_COMPONENTS", "RelabelWarning", "relabel"]


def relabel(
    posterior: Posterior,
    components: Mapping[str, int] | Sequence[str] | None = None,
    *,
    reference: Mapping[str, Any] | None = None,
    max_iterations: int = 20,
) -> Posterior:
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
            draw's shape.  ``None`` (the default): found from the model, which must then be
            symmetric in them (its log density unchanged when their component axes are permuted;
            see :func:`coromix.labels.symmetric_components`).  Otherwise a mapping name -> axis
            (``{"mu": 0, "sigma": 0, "weights": 0}``; negative axes count from the end), or a
            sequence of names (axis 0 for each).  All these axes must have the same length ``K``
            (at most 8: all ``K!`` permutations of every draw are scored).
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

    Example: two chains of a two-component fit, the second in the swapped labelling (made up
    here; from a fit, ``cm.relabel(cm.nuts(model, data))`` or ``post.relabel()``, with the
    components found from the model):

    >>> import numpy as np
    >>> from coromix.results import Posterior
    >>> rng = np.random.default_rng(0)
    >>> chains = [rng.normal([-2.0, 2.0], 0.1, (50, 2)), rng.normal([2.0, -2.0], 0.1, (50, 2))]
    >>> post = Posterior({"mu": np.stack(chains)})   # mu: (chain, draw, component)
    >>> post.samples["mu"].mean(axis=1).round(1)   # per chain: the labels disagree
    array([[-2.,  2.],
           [ 2., -2.]])
    >>> fixed = relabel(post, ["mu"])
    >>> fixed.samples["mu"].mean(axis=1).round(1)   # one labelling, that of the first draw
    array([[-2.,  2.],
           [-2.,  2.]])
    >>> fixed.permutations[:, 0].tolist()   # new[k] = old[p[k]]: chain 1 swapped
    [[0, 1], [1, 0]]
    """
    return posterior.relabel(components, reference=reference, max_iterations=max_iterations)
