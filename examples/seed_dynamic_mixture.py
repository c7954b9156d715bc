"""The seed's second model, step by step: component probabilities from the previous observation.

Here the series is simulated one step at a time, as the seed does; the same model as ONE joint
model over the whole series (with the regimes summed out by the forward algorithm) belongs to the
regime-switching part of coromix.

Run: python examples/seed_dynamic_mixture.py
"""

import jax.numpy as jnp
import numpy as np

import coromix as cm

tfd = cm.distributions


def dynamic_mixture_step(previous_observation):
    def step():
        probs = jnp.exp(jnp.array([previous_observation, -previous_observation]))
        component_selection = yield tfd.Categorical(probs=probs / probs.sum())
        mu1 = yield tfd.Normal(loc=0.0, scale=1.0)
        mu2 = yield tfd.Normal(loc=5.0, scale=1.0)
        sigma = yield tfd.HalfNormal(scale=2.0)
        if component_selection == 0:
            observed_data = yield tfd.Normal(loc=mu1, scale=sigma)
        else:
            observed_data = yield tfd.Normal(loc=mu2, scale=sigma)

    return step


if __name__ == "__main__":
    observation, series, components = 0.0, [], []
    for t in range(100):
        draw = tfd.JointDistributionCoroutine(dynamic_mixture_step(observation)).sample(seed=t)
        observation = float(draw.observed_data)
        series.append(observation)
        components.append(int(draw.component_selection))
    print("first observations:", np.round(series[:8], 2))
    print("share of component 0:", np.mean(np.array(components) == 0))
