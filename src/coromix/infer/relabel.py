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
            see :func:`coromix.labels.symmetric_components`).  Otherwise a mapping name -> axis (``{"mu": 0, "sigma": 0, "weights": 0}``;
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
        fixed = cm.relabel(post)            # or post.relabel(); components found from the model
        print(fixed.summary())                # one row per component, R-hat near 1
        fixed.permutations                    # (chain, draw, 2): the labels each draw took
    """
    return posterior.relabel(components, reference=reference, max_iterations=max_iterations)
