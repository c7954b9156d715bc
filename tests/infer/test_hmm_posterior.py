"""A 3-state Gaussian HMM fitted with cm.nuts against a long NumPyro reference run.

Data: posteriordb's ``hmm_gaussian_simulated`` (T = 500).  Model (the same as in
``benchmarks/nuts_whole_process.py``, which made the reference with
``benchmarks/make_hmm_reference.py``: NumPyro NUTS, z enumerated in ``scan``, float64, 4 chains x
10000 draws): pi1 ~ Dirichlet(1), rows of A ~ Dirichlet(1), mu ordered with Normal(0, 20) priors,
sigma ~ HalfNormal(5); y is a ``tfd.HiddenMarkovModel`` observed node (states summed out by the
forward algorithm).

The reference checks start every chain at the same data-derived point (as the reference did): from
uniform random starts most chains of either library stay in local modes of this posterior (see the
benchmark's docstring).  ``test_hmm_posterior_from_the_default_start`` gives no ``init=``: the
default start (L-BFGS climbs from 8 points, chains around the highest) finds the dominant mode.

Checks: each posterior mean within a multiple of the combined Monte Carlo standard error (ours by
ArviZ, the reference's stored), sds, R-hat, no divergences, and the per-draw posterior of the hidden
states (``post.discrete_posterior()["y_states"]``) equal to the model's exact conditional.
"""

import json
from pathlib import Path

import arviz as az
import jax.numpy as jnp
import numpy as np
import pytest

import coromix as cm

tfd = cm.distributions
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "data" / "posteriordb" / "hmm_gaussian_simulated.data.json"
REFERENCE = ROOT / "tests" / "data" / "hmm_gaussian_reference.json"
K = 3


def hmm_gaussian(T):
    def model():
        pi1 = yield tfd.Dirichlet(jnp.ones(K))
        A = yield tfd.Dirichlet(jnp.ones((K, K)))
        mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(K), 20.0))
        sigma = yield tfd.HalfNormal(5.0 * jnp.ones(K))
        y = yield tfd.HiddenMarkovModel(
            tfd.Categorical(probs=pi1), tfd.Categorical(probs=A), tfd.Normal(mu, sigma), num_steps=T
        )

    return model


def load():
    if not DATA.exists():
        pytest.skip(f"posteriordb file not found at {DATA} (../shared is absent)")
    y = np.asarray(json.loads(DATA.read_text())["y"], np.float32)
    reference = json.loads(REFERENCE.read_text())
    # the reference was made from this model: catch a drift of the priors
    assert "Normal(0, 20)" in reference["model"]["mu"]
    assert "HalfNormal(5)" in reference["model"]["sigma"]
    return y, reference


def initial_point(y):
    """The data-derived start used by the reference run (stored in it)."""
    y = np.asarray(y, np.float64)
    return {
        "pi1": np.full(K, 1.0 / K),
        "A": np.full((K, K), 1.0 / K),
        "mu": np.quantile(y, (np.arange(K) + 0.5) / K),
        "sigma": np.full(K, y.std() / K),
    }


def fit(y, reference, num_warmup, num_samples, seed):
    init = initial_point(y)
    for name, value in init.items():  # the same start as the reference's
        np.testing.assert_allclose(value, reference["sampler"]["init"][name], rtol=1e-5)
    return cm.nuts(
        hmm_gaussian(len(y)),
        observed={"y": jnp.asarray(y)},
        num_chains=4,
        num_warmup=num_warmup,
        num_samples=num_samples,
        seed=seed,
        progress=False,
        init={k: jnp.asarray(v, jnp.float32) for k, v in init.items()},
    )


def compare(post, reference, *, mean_ses, sd_check, max_rhat):
    """Posterior means, sds and R-hat of every element against the reference; a table on failure."""
    rows, failures = [], []
    for key, ref in reference["parameters"].items():
        x = np.asarray(post.samples[ref["name"]], np.float64)[
            (slice(None), slice(None)) + tuple(ref["index"])
        ]
        mean, sd = x.mean(), x.std()
        mcse_mean, mcse_sd = float(az.mcse(x, method="mean")), float(az.mcse(x, method="sd"))
        rhat = float(az.rhat(x))
        combined = np.hypot(mcse_mean, ref["mcse_mean"])
        z_mean = (mean - ref["mean"]) / combined
        sd_ok, sd_text = sd_check(sd, mcse_sd, ref)
        rows.append(
            f"{key:<8} mean {mean:9.4f} ref {ref['mean']:9.4f} ({z_mean:+5.2f} SE)  "
            f"sd {sd:8.4f} ref {ref['sd']:8.4f} ({sd_text})  r_hat {rhat:.4f}"
        )
        if abs(z_mean) > mean_ses or not sd_ok or not rhat < max_rhat:
            failures.append(rows[-1])
    print("\n".join(rows))
    assert not failures, "\n".join(failures)


def check_states(post, y):
    """The per-draw state posterior equals the model's exact conditional at those draws."""
    states = post.discrete_posterior()["y_states"]
    assert states.shape == (post.num_chains, post.num_draws, len(y), K)
    np.testing.assert_allclose(states.sum(-1), 1.0, atol=1e-5)
    s = post.samples
    picks = (np.array([0, 1, 2, 3]), np.array([0, 7, post.num_draws // 2, post.num_draws - 1]))
    at = {k: jnp.asarray(v[picks]) for k, v in s.items()}
    exact = post.model.discrete_posterior(at, y=jnp.asarray(y))["y_states"]
    np.testing.assert_allclose(states[picks], exact, rtol=1e-4, atol=1e-6)
    # and TFP's meaning: the HMM's own posterior_marginals at one draw
    i = (picks[0][2], picks[1][2])
    hmm = tfd.HiddenMarkovModel(
        tfd.Categorical(probs=s["pi1"][i]),
        tfd.Categorical(probs=s["A"][i]),
        tfd.Normal(s["mu"][i], s["sigma"][i]),
        num_steps=len(y),
    )
    np.testing.assert_allclose(
        states[i], hmm.posterior_marginals(jnp.asarray(y)).probs, rtol=1e-4, atol=1e-6
    )
    # the tight cluster at y ~ 8.9 is the lowest state
    low = np.abs(y - 8.93) < 0.3
    assert low.sum() > 100 and states[i][low, 0].mean() > 0.99


@pytest.mark.slow
def test_hmm_posterior_matches_numpyro_reference():
    """4 chains x (1000 + 1000): means within 4 combined MCSEs, sds within 10%, R-hat < 1.01."""
    y, reference = load()
    post = fit(y, reference, 1000, 1000, seed=0)
    assert post.num_divergences == 0

    def within_ten_percent(sd, mcse_sd, ref):
        ratio = sd / ref["sd"]
        return 0.9 < ratio < 1.1, f"ratio {ratio:.3f}"

    compare(post, reference, mean_ses=4.0, sd_check=within_ten_percent, max_rhat=1.01)
    check_states(post, y)


@pytest.mark.slow  # ~30 s of NUTS compilation and sampling; the default suite keeps posteriordb's mixture
def test_hmm_posterior_fast():
    """4 chains x (300 + 300): means within 5 combined MCSEs, sds within 5 combined SEs of the
    sd, R-hat < 1.02 (looser, for the default suite)."""
    y, reference = load()
    post = fit(y, reference, 300, 300, seed=1)
    assert post.num_divergences == 0

    def within_ses(sd, mcse_sd, ref):
        z = (sd - ref["sd"]) / np.hypot(mcse_sd, ref["mcse_sd"])
        return abs(z) < 5.0, f"{z:+5.2f} SE"

    compare(post, reference, mean_ses=5.0, sd_check=within_ses, max_rhat=1.02)
    check_states(post, y)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_hmm_posterior_from_the_default_start(seed):
    """No ``init=``: the default start (L-BFGS climbs, chains around the highest) avoids the local
    modes that hold uniform starts; 4 chains x (1000 + 1000) against the reference as above."""
    y, reference = load()
    post = cm.nuts(
        hmm_gaussian(len(y)),
        observed={"y": jnp.asarray(y)},
        num_chains=4,
        seed=seed,
        progress=False,
    )

    def within_ten_percent(sd, mcse_sd, ref):
        ratio = sd / ref["sd"]
        return 0.9 < ratio < 1.1, f"ratio {ratio:.3f}"

    compare(post, reference, mean_ses=4.0, sd_check=within_ten_percent, max_rhat=1.01)
