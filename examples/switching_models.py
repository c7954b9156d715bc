"""Regime-switching models written as ONE step of a coroutine, each a single joint model with priors.

1. The seed's second model: the component probabilities depend on the previous observation.
2. Hamilton's Markov-switching AR(1): mean and AR coefficient depend on the regime, and the regime
   follows a Markov chain.
3. Input-driven switching (posteriordb's iohmm_reg): regime probabilities from covariates.

In every case the regimes are summed out by the forward algorithm (K^2 T work, not K^T paths); the
posterior regime probabilities come back with ``discrete_posterior``.

Run: python examples/switching_models.py
"""

import jax.numpy as jnp
import numpy as np

import coromix as cm

tfd = cm.distributions


def seed_dynamic_mixture(num_steps):
    def model():
        mu1 = yield tfd.Normal(loc=0.0, scale=1.0)
        mu2 = yield tfd.Normal(loc=5.0, scale=1.0)
        sigma = yield tfd.HalfNormal(scale=2.0)

        def step(prev, inputs):
            x = 0.0 if prev is None else prev.observed_data
            component_selection = yield tfd.Categorical(logits=jnp.stack([x, -x]))
            if component_selection == 0:
                observed_data = yield tfd.Normal(loc=mu1, scale=sigma)
            else:
                observed_data = yield tfd.Normal(loc=mu2, scale=sigma)

        series = yield tfd.RegimeSwitching(step, num_steps=num_steps)

    return model


def hamilton_ar1(num_steps):
    def model():
        stay = yield tfd.Beta(jnp.array([8.0, 8.0]), jnp.array([2.0, 2.0]))  # p(s_t = s_{t-1})
        mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 3.0))  # ordered: regime 0 is the low one
        phi = yield tfd.Uniform(-jnp.ones(2), jnp.ones(2))
        sigma = yield tfd.HalfNormal(1.0)
        transition = jnp.stack(
            [jnp.stack([stay[0], 1 - stay[0]]), jnp.stack([1 - stay[1], stay[1]])]
        )

        def step(prev, inputs):
            if prev is None:
                s = yield tfd.Categorical(probs=jnp.array([0.5, 0.5]))
                y = yield tfd.Normal(mu[s], sigma)
            else:
                s = yield tfd.Categorical(probs=transition[prev.s])
                y = yield tfd.Normal(mu[s] + phi[s] * (prev.y - mu[prev.s]), sigma)

        y = yield tfd.RegimeSwitching(step, num_steps=num_steps)

    return model


def input_driven_regression(u):
    """Regime k chosen with probabilities softmax_k(u_t . w_k); y_t ~ Normal(u_t . b_k, sigma_k)."""
    T, M = u.shape
    K = 3

    def model():
        w = yield tfd.Normal(jnp.zeros((K, M)), 5.0)
        b = yield tfd.Normal(jnp.zeros((K, M)), 5.0)
        sigma = yield tfd.HalfNormal(3.0 * jnp.ones(K))

        def step(prev, u_t):
            regime = yield tfd.Categorical(logits=w @ u_t)
            y = yield tfd.Normal(b[regime] @ u_t, sigma[regime])

        y = yield tfd.RegimeSwitching(step, num_steps=T, inputs=jnp.asarray(u))

    return model


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    for name, model in [
        ("seed's dynamic mixture", seed_dynamic_mixture(200)),
        ("Hamilton AR(1)", hamilton_ar1(200)),
        ("input-driven regression", input_driven_regression(rng.normal(size=(200, 4)))),
    ]:
        jd = tfd.JointDistributionCoroutine(model)
        draw = jd.sample(seed=1)
        observed = list(draw)[-1]
        given = dict(draw)
        regimes = jd.discrete_posterior(given)
        ((key, probs),) = regimes.items()
        first = np.round(np.asarray(probs[:3], dtype=float), 3).tolist()
        print(
            f"{name}: log p(draw) = {float(jd.log_prob(given)):.2f}; "
            f"{key} posterior, first steps: {first}"
        )
