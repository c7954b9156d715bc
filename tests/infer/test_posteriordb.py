"""Posteriors against posteriordb's reference draws (Stan, 10 chains x 1000 draws).

The model is written the natural coromix way: ordered means, the component of each point left as
a batch-shaped Categorical and summed out (no hand-written mixture density).
"""

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import coromix as cm

tfd = cm.distributions
DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "posteriordb"


def load(name):
    path = DATA / name
    if not path.exists():
        pytest.skip(f"posteriordb file not found at {path} (../shared is absent)")
    return json.loads(path.read_text())


def low_dim_gauss_mix(n):
    def model():
        mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 2.0))
        sigma = yield tfd.HalfNormal(2.0 * jnp.ones(2))
        theta = yield tfd.Beta(5.0, 5.0)
        z = yield tfd.Categorical(probs=jnp.broadcast_to(jnp.stack([theta, 1 - theta]), (n, 2)))
        y = yield tfd.Normal(mu[z], sigma[z])

    return model


def reference_columns(draws):
    chains = [
        np.column_stack([c["mu[1]"], c["mu[2]"], c["sigma[1]"], c["sigma[2]"], c["theta"]])
        for c in draws
    ]
    return np.stack(chains)  # (chain, draw, 5)


def mcse_of_mean(x):
    """Monte Carlo standard error of the mean of (chain, draw) draws, by ArviZ."""
    import arviz as az

    return float(az.mcse(np.asarray(x)[None] if np.ndim(x) == 1 else np.asarray(x), method="mean"))


def test_low_dim_gauss_mix_matches_reference():
    data = load("low_dim_gauss_mix.data.json")
    reference = reference_columns(load("low_dim_gauss_mix.reference_draws.json"))
    y = jnp.asarray(data["y"])
    post = cm.nuts(
        low_dim_gauss_mix(len(data["y"])),
        observed={"y": y},
        num_chains=4,
        num_warmup=1000,
        num_samples=1000,
        seed=0,
        progress=False,
    )
    s = post.samples
    ours = np.concatenate(
        [np.asarray(s["mu"]), np.asarray(s["sigma"]), np.asarray(s["theta"])[..., None]], axis=-1
    )
    names = ["mu[1]", "mu[2]", "sigma[1]", "sigma[2]", "theta"]
    summary = post.summary()
    assert float(summary["r_hat"].max()) < 1.01
    assert int(np.asarray(post.sample_stats["diverging"]).sum()) == 0
    for i, name in enumerate(names):
        combined = np.hypot(mcse_of_mean(ours[..., i]), mcse_of_mean(reference[..., i]))
        diff = abs(ours[..., i].mean() - reference[..., i].mean())
        assert diff < 4 * combined, (name, ours[..., i].mean(), reference[..., i].mean(), combined)
        sd_ratio = ours[..., i].std() / reference[..., i].std()
        print(
            f"{name}: mean {ours[..., i].mean():.4f} vs {reference[..., i].mean():.4f} "
            f"({diff / combined:.2f} combined MCSE), sd ratio {sd_ratio:.3f}"
        )
        assert 0.9 < sd_ratio < 1.1, (name, sd_ratio)
    # the posterior of the choices per draw is the exact conditional at that draw
    resp = post.discrete_posterior()["z"]
    assert resp.shape == (4, 1000, len(data["y"]), 2)
    exact = post.model.discrete_posterior(
        mu=s["mu"][0, :5], sigma=s["sigma"][0, :5], theta=s["theta"][0, :5], y=y
    )["z"]
    np.testing.assert_allclose(resp[0, :5], exact, rtol=1e-5, atol=1e-6)
