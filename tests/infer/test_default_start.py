"""The default start (``init="mode"``) puts every chain in the dominant mode of multimodal posteriors.

posteriordb's ``hmm_example`` (Stan's 2-state HMM; data and a summary of the reference posterior
in ``tests/data/hmm_example.json``), written the natural way in coromix: ``mu ~ Normal([3, 10], 1)``
without an ordering.  Its label-swapped mode lies about 40 nats below the main one; from uniform
starts some chains settle there (seed 1: R-hat 1.7, bulk ESS 6).  From the default start every
seed must agree with Stan's reference: means within 4 combined Monte Carlo standard errors, sds
within 10%, R-hat below 1.01.  The same holds for the benchmark's 3-state HMM
(``tests/infer/test_hmm_posterior.py``) without ``init=``.
"""

import json
import warnings
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import coromix as cm
from coromix.infer import lbfgs
from coromix.results import ConvergenceWarning

tfd = cm.distributions
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "tests" / "data" / "hmm_example.json").read_text())
Y = jnp.asarray(EXAMPLE["data"]["y"], jnp.float32)


def hmm_example():
    theta1 = yield tfd.Dirichlet(jnp.ones(2))
    theta2 = yield tfd.Dirichlet(jnp.ones(2))
    mu = yield tfd.Normal(jnp.array([3.0, 10.0]), 1.0)
    y = yield tfd.HiddenMarkovModel(
        tfd.Categorical(probs=jnp.array([0.5, 0.5])),
        tfd.Categorical(probs=jnp.stack([theta1, theta2])),
        tfd.Normal(mu, 1.0),
        num_steps=len(Y),
    )


def compare(post, parameters, *, mean_ses=4.0, sd_ratio=0.1, max_rhat=1.01):
    rows, failures = [], []
    for key, ref in parameters.items():
        x = np.asarray(post.samples[ref["name"]], np.float64)[
            (slice(None), slice(None)) + tuple(ref["index"])
        ]
        combined = np.hypot(float(az.mcse(x, method="mean")), ref["mcse_mean"])
        z = (x.mean() - ref["mean"]) / combined
        ratio = x.std() / ref["sd"]
        rhat = float(az.rhat(x))
        rows.append(
            f"{key:<10} mean {x.mean():8.4f} ref {ref['mean']:8.4f} ({z:+5.2f} SE)  "
            f"sd ratio {ratio:.3f}  r_hat {rhat:.4f}"
        )
        if abs(z) > mean_ses or abs(ratio - 1) > sd_ratio or not rhat < max_rhat:
            failures.append(rows[-1])
    print("\n".join(rows))
    assert not failures, "\n".join(failures)


def test_a_chain_far_below_the_best_in_mean_log_density_is_reported_as_a_minor_mode():
    """The report without sampling: four chains, chain 2 offset in ``mu`` (R-hat far above 1) and
    40 nats below the others in mean ``lp``; the same chains with a gap of 1 nat (within the
    spread of ``lp``) are not reported."""
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(4, 200))
    mu[2] += 5.0
    for gap, reported in [(40.0, True), (1.0, False)]:
        lp = rng.normal(-100.0, 2.0, size=(4, 200))
        lp[2] -= gap
        post = cm.Posterior({"mu": mu}, sample_stats={"lp": lp})
        messages = post.convergence_warnings()
        assert any(m.startswith("R-hat above 1.01 for mu") for m in messages), messages
        minor = [m for m in messages if m.startswith("minor mode")]
        if reported:
            assert len(minor) == 1 and minor[0].startswith("minor mode: chain 2 ("), messages
            assert "chain 0" not in minor[0] and "chain 1" not in minor[0], minor
        else:
            assert not minor, messages


@pytest.mark.slow  # two fits of 4 chains x 600 iterations (about a minute)
def test_uniform_starts_fall_into_the_swapped_mode_and_the_default_does_not():
    """Seed 1 from uniform starts: chains in the swapped mode, reported as a minor mode."""
    settings = {"num_warmup": 300, "num_samples": 300, "seed": 1, "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        stuck = cm.nuts(hmm_example, observed={"y": Y}, init="uniform", **settings)
    messages = stuck.convergence_warnings()
    assert any(m.startswith("minor mode: chain") for m in messages), messages
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short chains: R-hat near 1.01
        post = cm.nuts(hmm_example, observed={"y": Y}, **settings)
    assert not any(
        m.startswith(("minor mode", "label switching")) for m in post.convergence_warnings()
    )
    assert post.attrs["init"] == "mode" and post.attrs["search_climbs_finite"] == 8
    compare(post, EXAMPLE["parameters"], mean_ses=5.0, sd_ratio=0.15, max_rhat=1.02)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_hmm_example_matches_stan_from_the_default_start(seed):
    post = cm.nuts(hmm_example, observed={"y": Y}, seed=seed, progress=False)
    compare(post, EXAMPLE["parameters"])


def test_lbfgs_finds_the_maximum_of_a_quadratic_and_its_curvature():
    """On a Gaussian log density the climb ends at the mean, and the diagonal of its inverse
    Hessian approximation is close to the variances (exact once the memory spans the space)."""
    precision = jnp.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]])
    mean = jnp.array([1.0, -2.0, 0.5])

    def log_density(x):
        return -0.5 * (x - mean) @ precision @ (x - mean)

    result = lbfgs.maximize(jax.value_and_grad(log_density), jnp.zeros(3), gtol=1e-5)
    assert bool(result.converged) and int(result.iterations) < 30
    np.testing.assert_allclose(result.position, mean, atol=1e-4)
    np.testing.assert_allclose(
        result.inverse_hessian_diagonal, np.diag(np.linalg.inv(np.asarray(precision))), rtol=0.1
    )


def test_lbfgs_stops_where_the_density_is_not_finite():
    def log_density(x):
        return jnp.where(x[0] > 0, -jnp.sum(x**2), -jnp.inf)

    result = lbfgs.maximize(jax.value_and_grad(log_density), jnp.array([-1.0, 1.0]))
    assert not bool(result.converged) and int(result.iterations) == 0
    assert result.value == -jnp.inf


def test_a_climb_restarts_where_its_start_has_no_finite_density():
    def log_density(x):
        return jnp.where(x[0] > 0, -jnp.sum((x - 1.0) ** 2), -jnp.inf)

    def restart(key):
        return jax.random.uniform(key, (2,), minval=-2.0, maxval=2.0)

    result = lbfgs.maximize(
        jax.value_and_grad(log_density),
        jnp.array([-1.0, 1.0]),
        restart=restart,
        key=jax.random.key(3),
        gtol=1e-5,
    )
    assert bool(result.converged)
    np.testing.assert_allclose(result.position, [1.0, 1.0], atol=1e-4)
