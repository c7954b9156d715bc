"""The seed's third model: component means drawn around a shared hyper-mean.

Run: python examples/seed_hierarchical_mixture.py
"""

import jax.numpy as jnp
import numpy as np

import coromix as cm

tfd = cm.distributions


def hierarchical_mixture_model():
    hyper_mu = yield tfd.Normal(loc=0.0, scale=10.0)
    hyper_sigma = yield tfd.HalfNormal(scale=5.0)
    mu1 = yield tfd.Normal(loc=hyper_mu, scale=hyper_sigma)
    mu2 = yield tfd.Normal(loc=hyper_mu, scale=hyper_sigma)
    sigma = yield tfd.HalfNormal(scale=2.0)
    component_selection = yield tfd.Categorical(probs=jnp.array([0.5, 0.5]))
    if component_selection == 0:
        observed_data = yield tfd.Normal(loc=mu1, scale=sigma)
    else:
        observed_data = yield tfd.Normal(loc=mu2, scale=sigma)


model = tfd.JointDistributionCoroutine(hierarchical_mixture_model)

if __name__ == "__main__":
    samples = model.sample(2000, seed=1)
    for name, values in samples.items():
        print(f"{name:>20}: mean {float(np.mean(values)):8.3f}  sd {float(np.std(values)):8.3f}")
    # condition on one observation: the posterior is over the continuous variables only
    posterior = model.pin(observed_data=2.5)
    print("free parameters:", posterior.parameter_shapes)
