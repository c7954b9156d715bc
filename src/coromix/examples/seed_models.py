"""The first model of the question coromix answers (`examples/` has all three, with their use).

It describes ONE draw: a component is chosen, and the observation comes from that component.
The discrete choice is summed out exactly when it is not given.
"""

import jax.numpy as jnp

import coromix.distributions as tfd


def two_gaussian_mixture():
    """Two Gaussian components with weights 0.6/0.4, separate means, one shared scale."""
    component_selection = yield tfd.Categorical(probs=jnp.array([0.6, 0.4]))
    mu1 = yield tfd.Normal(loc=0.0, scale=1.0)
    mu2 = yield tfd.Normal(loc=5.0, scale=1.0)
    sigma = yield tfd.HalfNormal(scale=2.0)
    loc = mu1 if component_selection == 0 else mu2
    observed_data = yield tfd.Normal(loc=loc, scale=sigma)
