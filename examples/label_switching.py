"""Label switching in a mixture, and two ways out: relabel the draws, or order the components.

Run: python examples/label_switching.py

When the components of a mixture have the same prior, nothing in the model says which one is
"component 0".  The posterior has one mode per labelling (K! of them, all alike), and each NUTS
chain settles in whichever it meets first.  Every chain is then a perfectly good sample, but the
chains disagree on what the labels mean: their means of ``mu`` are swapped, pooled summaries
average the components together, and R-hat is far above 1.

coromix's default start (``init="mode"``) starts every chain around the highest of several L-BFGS
climbs, so the chains usually share one labelling from the start.  With random starts
(``init="uniform"``, Stan's and NumPyro's default) they need not; ``cm.nuts`` then says so
("label switching: chain(s) ... sit in another labelling"), and there are two remedies:

1. keep the symmetric model and relabel the draws afterwards with ``post.relabel()``, which finds
   the component variables from the model's symmetry and permutes the labels of every draw to
   match one reference labelling;
2. break the symmetry in the model: ``tfd.Ordered`` restricts the means to increasing order, so
   component 0 is always the lower one and only one labelling is left.
"""

import warnings

import jax.numpy as jnp
import numpy as np

import coromix as cm
from coromix.results import ConvergenceWarning

tfd = cm.distributions

# 150 points: 30% around -2, 70% around 2
N = 150
rng = np.random.default_rng(7)
LOWER = rng.random(N) < 0.3
Y = np.where(LOWER, rng.normal(-2.0, 0.8, N), rng.normal(2.0, 0.8, N))
SETTINGS = {"num_warmup": 300, "num_samples": 300, "num_chains": 4, "progress": False}


def exchangeable_mixture():
    # the same prior for both components: the posterior is symmetric under swapping the labels
    w = yield tfd.Dirichlet(jnp.ones(2))
    mu = yield tfd.Normal(jnp.zeros(2), 5.0)
    sigma = yield tfd.HalfNormal(jnp.ones(2))
    z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (N, 2)))
    y = yield tfd.Normal(mu[z], sigma[z])


def ordered_mixture():
    # the two means as the sorted pair of two draws of Normal(0, 5): mu[0] < mu[1] always
    w = yield tfd.Dirichlet(jnp.ones(2))
    mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 5.0))
    sigma = yield tfd.HalfNormal(jnp.ones(2))
    z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (N, 2)))
    y = yield tfd.Normal(mu[z], sigma[z])


def report(title, posterior):
    print(f"\n{title}")
    for chain, means in enumerate(posterior.samples["mu"].mean(axis=1)):
        print(f"  chain {chain}: mean of mu = {np.round(means, 2)}")
    rhat = posterior.summary(var_names=["mu", "w"])["r_hat"]
    print("  R-hat: " + ", ".join(f"{name} {value:.3f}" for name, value in rhat.items()))


if __name__ == "__main__":
    # (a) the problem, from random starts; with this seed two chains find the components in each
    # order.  nuts warns about the high R-hat and names the label switching; printed here.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        switched = cm.nuts(exchangeable_mixture, {"y": Y}, seed=0, init="uniform", **SETTINGS)
    report("symmetric priors, random starts: the chains disagree on the labels", switched)
    for warning in caught:
        if str(warning.message).startswith("label switching"):
            print(f"  nuts says: {warning.message}")
    print(f"  component variables found from the model: {switched.component_axes()}")

    # (b) relabel: the variables indexed by the component are found from the model (it is
    # symmetric in their axis 0); cm.relabel(post, ["w", "mu", "sigma"]) names them explicitly.
    # The reference labelling is the draw with the highest log density; each draw gets the
    # permutation of the labels closest to the reference, and the reference becomes the mean of
    # the relabelled draws, until no draw changes.
    relabelled = switched.relabel()
    report("symmetric priors, relabelled: one labelling in every chain", relabelled)
    swapped = np.any(relabelled.permutations != np.arange(2), axis=-1).mean(axis=1)
    print("  share of draws whose labels were swapped, per chain:", np.round(swapped, 2))
    # the responsibilities are recomputed from the model in the new labels, so they agree
    # between chains too (here for the point nearest 0, the least clear one)
    resp = relabelled.discrete_posterior()["z"]
    low = int(np.argmin(relabelled.samples["mu"].mean(axis=(0, 1))))
    in_low = resp.mean(axis=(0, 1))[:, low] > 0.5
    print(
        f"  points more likely in the lower component: {int(in_low.sum())} of {N} (simulated "
        f"from it: {int(LOWER.sum())})"
    )
    point = int(np.argmin(np.abs(Y)))
    for chain, probs in enumerate(resp[:, :, point].mean(axis=1)):
        print(
            f"  chain {chain}: p(z[{point}] = k | y), y[{point}] = {Y[point]:.2f}: "
            f"{np.round(probs, 3)}"
        )

    # (c) the default start: every chain around the highest climb, one labelling
    default = cm.nuts(exchangeable_mixture, {"y": Y}, seed=0, **SETTINGS)
    report("symmetric priors, default start: the chains share one labelling", default)

    # (d) order the means in the model instead: no relabelling needed, whatever the start
    ordered = cm.nuts(ordered_mixture, {"y": Y}, seed=0, **SETTINGS)
    report("ordered means in the model: mu[0] < mu[1] in every chain", ordered)
