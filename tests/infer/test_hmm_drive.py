"""posteriordb's ``hmm_drive_0`` (posterior ``bball_drive_event_0-hmm_drive_0``) as Stan writes it.

A 2-state HMM of a basketball player's movement (state 2: a drive to the hoop) with two
exponential observations per step, ``u`` (1 / speed) then ``v`` (distance to the hoop), given
the state.  The Stan model::

    simplex[K] theta1; simplex[K] theta2;   // rows of the transition matrix
    positive_ordered[K] phi; positive_ordered[K] lambda;
    theta[k] ~ dirichlet(alpha[k]');
    phi[1] ~ normal(0, 1); phi[2] ~ normal(3, 1);
    lambda[1] ~ normal(0, 1); lambda[2] ~ normal(3, 1);
    u[t] ~ exponential(phi[z_t]); v[t] ~ exponential(lambda[z_t]); z summed out (forward algorithm)

Here ``phi`` and ``lambda`` are ``tfd.Ordered(tfd.Normal([0, 3], 1), positive=True)`` (Stan's
meaning: the per-element normal densities at the ordered vector) and the step of a
``tfd.RegimeSwitching`` yields the state, then ``u``, then ``v``.  Stan's forward algorithm gives
the first state no probability term (a weight of 1 for each state); the model here starts from
``Categorical(logits=[0, 0])``, so its log density is Stan's ``target`` minus ``log 2``.

Data and reference (Stan, 10 chains x 1000 draws) are posteriordb's, stored in ``tests/data``
(``hmm_drive_0.json``, ``hmm_drive_0_reference.json``: the source commit is in each file).  The
posterior has minor modes (log density -1952.8 and -1890.2 against -1885.7 at the dominant one)
where 3 to 6 of ``cm.map``'s 8 random restarts ended in the runs seen; ``cm.nuts``'s default
start found the dominant mode with every seed tried.

An independent check of the reference (self-normalized importance sampling with 4 million draws
from a multivariate t on unconstrained space, the density hand-written in JAX) gave every mean
within 0.6 of the reference's MCSE except ``phi[2]``: 6.7304 (IS standard error 0.0004) against
the reference's 6.7419 (MCSE 0.0060), 1.9 MCSE below it.  ``cm.nuts`` agrees with the IS value
(6.723 and 6.732 in two runs of 4 x 5000 draws), so a small negative gap on ``phi[2]`` here is
expected; the fixed-seed run below is 0.02 combined MCSE from the reference.
"""

import json
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import coromix as cm

tfd = cm.distributions
DATA = Path(__file__).resolve().parents[1] / "data"
# Stan's names; theta1[2] and theta2[2] are 1 - theta1[1] and 1 - theta2[1] (left out of the file)
NAMES = [
    "theta1[1]",
    "theta1[2]",
    "theta2[1]",
    "theta2[2]",
    "phi[1]",
    "phi[2]",
    "lambda[1]",
    "lambda[2]",
]


def load_data():
    data = json.loads((DATA / "hmm_drive_0.json").read_text())
    return np.asarray(data["u"]), np.asarray(data["v"]), np.asarray(data["alpha"], np.float64)


def load_reference():
    """Stan's draws as a (chain, draw, 8) array, columns in the order of ``NAMES``."""
    stored = json.loads((DATA / "hmm_drive_0_reference.json").read_text())["draws"]
    draws = {k: np.asarray(x) for k, x in stored.items()}
    columns = [
        draws["theta1[1]"],
        1 - draws["theta1[1]"],
        draws["theta2[1]"],
        1 - draws["theta2[1]"],
        draws["phi[1]"],
        draws["phi[2]"],
        draws["lambda[1]"],
        draws["lambda[2]"],
    ]
    return np.stack(columns, axis=-1)


def hmm_drive_0(alpha, num_steps):
    def model():
        theta1 = yield tfd.Dirichlet(jnp.asarray(alpha[0]))
        theta2 = yield tfd.Dirichlet(jnp.asarray(alpha[1]))
        phi = yield tfd.Ordered(tfd.Normal(jnp.array([0.0, 3.0]), 1.0), positive=True)
        lam = yield tfd.Ordered(
            tfd.Normal(jnp.array([0.0, 3.0]), 1.0), positive=True, name="lambda"
        )
        theta = jnp.stack([theta1, theta2])  # theta[j, k] = p(z_t = k | z_{t-1} = j)

        def step(prev, inputs):
            if prev is None:
                z = yield tfd.Categorical(logits=jnp.zeros(2))
            else:
                z = yield tfd.Categorical(probs=theta[prev.z])
            u = yield tfd.Exponential(phi[z])
            v = yield tfd.Exponential(lam[z])

        obs = yield tfd.RegimeSwitching(step, num_steps=num_steps)

    return model


def stan_target(theta1, theta2, phi, lam, u, v, alpha):
    """Stan's ``target`` for hmm_drive_0: its model block, line by line, in numpy/scipy."""
    lp = stats.dirichlet(alpha[0]).logpdf(theta1) + stats.dirichlet(alpha[1]).logpdf(theta2)
    lp += stats.norm([0.0, 3.0], 1.0).logpdf(phi).sum()
    lp += stats.norm([0.0, 3.0], 1.0).logpdf(lam).sum()
    log_theta = np.log(np.stack([theta1, theta2]))
    emission = stats.expon(scale=1 / phi).logpdf(u[:, None])
    emission += stats.expon(scale=1 / lam).logpdf(v[:, None])
    gamma = emission[0]
    for t in range(1, len(u)):
        gamma = logsumexp(gamma[:, None] + log_theta, axis=0) + emission[t]
    return lp + logsumexp(gamma)


def point(row):
    """One row in the order of ``NAMES`` -> the model's variables."""
    return {
        "theta1": row[0:2],
        "theta2": row[2:4],
        "phi": row[4:6],
        "lambda": row[6:8],
    }


def test_log_density_equals_stans_forward_algorithm():
    u, v, alpha = load_data()
    reference = load_reference()
    rows = [reference[0, 0], reference[3, 500], reference[9, 999]]  # posterior draws
    rows.append(np.array([0.5, 0.5, 0.3, 0.7, 0.5, 2.0, 0.01, 1.0]))  # far in the tails
    rows.append(np.array([0.1, 0.9, 0.8, 0.2, 3.0, 3.5, 0.2, 0.3]))  # states far from the data's
    with jax.enable_x64(True):
        jd = tfd.JointDistributionCoroutine(hmm_drive_0(alpha, len(u)))
        obs = {"u": jnp.asarray(u), "v": jnp.asarray(v)}
        for row in rows:
            row = np.asarray(row, np.float64)
            row[1], row[3] = 1 - row[0], 1 - row[2]  # exact simplexes
            values = point(row)
            ours = jd.log_prob(**{k: jnp.asarray(x) for k, x in values.items()}, obs=obs)
            stan = stan_target(*values.values(), u, v, alpha)
            np.testing.assert_allclose(float(ours), stan - np.log(2.0), rtol=0, atol=1e-8)


@pytest.fixture(scope="module")
def fit():
    u, v, alpha = load_data()
    post = cm.nuts(
        hmm_drive_0(alpha, len(u)),
        observed={"obs": {"u": jnp.asarray(u), "v": jnp.asarray(v)}},
        num_chains=4,
        num_warmup=1000,
        num_samples=1000,
        seed=0,
        progress=False,
    )
    s = post.samples
    ours = np.concatenate([np.asarray(s[k]) for k in ("theta1", "theta2", "phi", "lambda")], -1)
    return post, ours  # ours: (chain, draw, 8), columns in the order of NAMES


@pytest.mark.slow  # ~20 s of NUTS (4 chains x 2000 steps, compilation included) on 2 CPU cores
def test_nuts_matches_posteriordb_reference(fit):
    post, ours = fit
    reference = load_reference()
    assert int(np.asarray(post.sample_stats["diverging"]).sum()) == 0
    for i, name in enumerate(NAMES):
        mine, theirs = ours[..., i], reference[..., i]
        r_hat = float(az.rhat(mine))
        combined = np.hypot(
            float(az.mcse(mine, method="mean")), float(az.mcse(theirs, method="mean"))
        )
        diff = abs(mine.mean() - theirs.mean())
        sd_ratio = mine.std() / theirs.std()
        print(
            f"{name}: mean {mine.mean():.5f} vs {theirs.mean():.5f} ({diff / combined:.2f} combined"
            f" MCSE {combined:.2e}), sd {mine.std():.5f} vs {theirs.std():.5f}, r_hat {r_hat:.4f}"
        )
        assert r_hat < 1.01, (name, r_hat)
        assert diff < 4 * combined, (name, mine.mean(), theirs.mean(), combined)
        assert 0.9 < sd_ratio < 1.1, (name, sd_ratio)


@pytest.mark.slow  # shares the NUTS run above; cm.map's 8 restarts take ~15 s more
def test_map_is_at_least_as_high_as_the_posterior_mean(fit):
    _, ours = fit
    u, v, alpha = load_data()
    model = hmm_drive_0(alpha, len(u))
    obs = {"obs": {"u": jnp.asarray(u), "v": jnp.asarray(v)}}
    est = cm.map(model, obs)
    jd = tfd.JointDistributionCoroutine(model)
    mean = point(ours.mean(axis=(0, 1)))
    at_mean = float(jd.log_prob(**{k: jnp.asarray(x) for k, x in mean.items()}, **obs))
    at_mode = float(jd.log_prob(**{k: jnp.asarray(x) for k, x in est.items()}, **obs))
    print(f"log density: mode {est.log_density:.4f} ({est.converged=}), NUTS mean {at_mean:.4f}")
    assert np.isfinite(est.log_density) and np.isfinite(at_mean)
    np.testing.assert_allclose(at_mode, est.log_density, rtol=1e-6)
    assert est.log_density >= at_mean
