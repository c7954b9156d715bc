"""The seed's first model: a two-Gaussian mixture that branches on the component in plain Python.

Run: python examples/seed_mixture.py
"""

import jax.numpy as jnp
import numpy as np

import coromix as cm

tfd = cm.distributions


def mixture_model():
    component_selection = yield tfd.Categorical(probs=jnp.array([0.6, 0.4]))
    mu1 = yield tfd.Normal(loc=0.0, scale=1.0)
    mu2 = yield tfd.Normal(loc=5.0, scale=1.0)
    sigma = yield tfd.HalfNormal(scale=2.0)
    # a concrete value on every path, so Python control flow on it is legal
    if component_selection == 0:
        observed_data = yield tfd.Normal(loc=mu1, scale=sigma)
    else:
        observed_data = yield tfd.Normal(loc=mu2, scale=sigma)


model = tfd.JointDistributionCoroutine(mixture_model)

if __name__ == "__main__":
    samples = model.sample(1000, seed=0)
    print("variables:", list(samples))
    print("share of component 0:", float(np.mean(samples.component_selection == 0)))

    # the component left out is summed out exactly: log p(mu1, mu2, sigma, x)
    point = {"mu1": 0.1, "mu2": 5.2, "sigma": 1.0, "observed_data": 3.9}
    print("log p(point), component summed out:", float(model.log_prob(point)))
    # and its posterior given the rest
    print("p(component | point):", np.round(model.discrete_posterior(point).component_selection, 4))
