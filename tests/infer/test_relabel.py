"""Relabelling of mixture draws: synthetic label switches undone exactly, errors, and a real fit."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import coromix as cm
from coromix._arviz import worst_diagnostics
from coromix.infer.relabel import RelabelWarning
from coromix.results import ConvergenceWarning, Posterior

tfd = cm.distributions

# --- synthetic draws of a 3-component mixture, scrambled per chain and at a few draws -------------
CHAINS, DRAWS, K = 4, 500, 3
TRUE_MU = np.array([-3.0, 0.0, 4.0])
TRUE_SIGMA = np.array([0.5, 1.0, 2.0])
TRUE_WEIGHTS = np.array([0.2, 0.3, 0.5])


def clean_draws(rng):
    """Draws around the true values with small noise, all in one labelling."""
    shape = (CHAINS, DRAWS)
    mu = TRUE_MU + 0.1 * rng.normal(size=shape + (K,))
    sigma = TRUE_SIGMA * np.exp(0.05 * rng.normal(size=shape + (K,)))
    weights = rng.dirichlet(1000 * TRUE_WEIGHTS, size=shape)
    # a 2-D location per component, the component axis last
    centre = np.stack([mu, -2.0 * mu], axis=-2) + 0.1 * rng.normal(size=shape + (2, K))
    tau = rng.normal(size=shape)  # not indexed by the component
    lp = -np.sum((mu - TRUE_MU) ** 2, axis=-1)
    return {"mu": mu, "sigma": sigma, "weights": weights, "centre": centre, "tau": tau}, lp


def scramble(rng):
    """A permutation per draw: one per chain, and another one at a few draws of each chain."""
    chain_perms = np.array([[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]])
    perms = np.repeat(chain_perms[:, None, :], DRAWS, axis=1)
    for c in range(CHAINS):
        for d in rng.choice(DRAWS, size=15, replace=False):
            perms[c, d] = rng.permutation(K)
    return perms


def permute(x, perms, axis):
    """``new[..., k, ...] = x[..., perms[c, d, k], ...]`` along ``axis`` of the per-draw shape."""
    axis = axis % (x.ndim - 2) + 2
    moved = np.moveaxis(x, axis, 2)
    index = perms.reshape(perms.shape + (1,) * (moved.ndim - 3))
    return np.moveaxis(np.take_along_axis(moved, index, axis=2), 2, axis)


AXES = {"mu": 0, "sigma": 0, "weights": 0, "centre": -1}


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(20240611)
    clean, lp = clean_draws(rng)
    perms = scramble(rng)
    scrambled = {k: permute(v, perms, AXES[k]) if k in AXES else v for k, v in clean.items()}
    posterior = Posterior(scrambled, sample_stats={"lp": lp}, attrs={"seed": 3})
    return clean, perms, posterior


def test_synthetic_switches_are_undone_exactly(synthetic):
    clean, scrambled_by, posterior = synthetic
    before = worst_diagnostics(posterior.samples)
    assert before["mu"][0] > 1.5 and before["weights"][0] > 1.5

    fixed = cm.relabel(posterior, AXES)

    # every draw is the clean draw up to one global permutation g: fixed[k] = clean[g[k]]
    composed = np.take_along_axis(scrambled_by, fixed.permutations, axis=-1)
    g = composed[0, 0]
    assert np.all(composed == g)
    for name, axis in AXES.items():
        np.testing.assert_array_equal(
            fixed.samples[name], permute(clean[name], np.broadcast_to(g, scrambled_by.shape), axis)
        )
    # the highest-lp draw is the default reference: its labels are kept
    best = np.unravel_index(np.argmax(posterior.sample_stats["lp"]), (CHAINS, DRAWS))
    np.testing.assert_array_equal(fixed.permutations[best], np.arange(K))
    after = worst_diagnostics(fixed.samples)
    assert max(after[name][0] for name in AXES) < 1.01


def test_relabelled_posterior_keeps_the_rest(synthetic):
    _, _, posterior = synthetic
    fixed = cm.relabel(posterior, AXES)
    assert isinstance(fixed, Posterior) and fixed is not posterior
    assert list(fixed.samples) == list(posterior.samples)
    assert fixed.samples["tau"] is posterior.samples["tau"]
    assert fixed.permutations.shape == (CHAINS, DRAWS, K)
    assert np.issubdtype(fixed.permutations.dtype, np.integer)
    # .permutations is the transformation applied, variable by variable
    for name, axis in AXES.items():
        np.testing.assert_array_equal(
            fixed.samples[name], permute(posterior.samples[name], fixed.permutations, axis)
        )
        assert fixed.samples[name].dtype == posterior.samples[name].dtype
    np.testing.assert_array_equal(fixed.sample_stats["lp"], posterior.sample_stats["lp"])
    assert fixed.attrs["seed"] == 3 and fixed.attrs["relabelled"] == "pivot"
    assert fixed.attrs["relabel_iterations"] >= 2
    assert not fixed.unconstrained and fixed.model is None  # no model: nothing to recompute
    # the input is unchanged
    assert worst_diagnostics(posterior.samples)["mu"][0] > 1.5


def test_reference_and_sequence_of_names(synthetic):
    clean, _, posterior = synthetic
    order = [2, 0, 1]
    reference = {"mu": TRUE_MU[order], "sigma": TRUE_SIGMA[order], "weights": TRUE_WEIGHTS[order]}
    fixed = cm.relabel(posterior, ["mu", "sigma", "weights"], reference=reference)
    np.testing.assert_array_equal(fixed.samples["mu"], clean["mu"][..., order])
    np.testing.assert_array_equal(fixed.samples["weights"], clean["weights"][..., order])
    # a variable left out of components keeps its scrambled labels
    np.testing.assert_array_equal(fixed.samples["centre"], posterior.samples["centre"])


def test_already_consistent_draws_are_left_alone():
    rng = np.random.default_rng(5)
    clean, _ = clean_draws(rng)
    posterior = Posterior({k: clean[k] for k in ("mu", "sigma")})
    fixed = cm.relabel(posterior, {"mu": 0, "sigma": -1})
    assert np.all(fixed.permutations == np.arange(K))
    np.testing.assert_array_equal(fixed.samples["mu"], clean["mu"])


def test_unsettled_relabelling_warns(synthetic):
    _, _, posterior = synthetic
    with pytest.warns(RelabelWarning, match="max_iterations=1"):
        cm.relabel(posterior, AXES, max_iterations=1)


def test_errors(synthetic):
    _, _, posterior = synthetic
    with pytest.raises(
        ValueError,
        match=r"unknown variable 'nope'.*\['mu', 'sigma', 'weights', "
        r"'centre', 'tau'\]",
    ):
        cm.relabel(posterior, ["mu", "nope"])
    with pytest.raises(
        ValueError,
        match=r"same length K; 'mu' has 3 along axis 0.*'centre' has 2 "
        r"along axis 0 \(per-draw shape \(2, 3\)\)",
    ):
        cm.relabel(posterior, ["mu", "centre"])
    with pytest.raises(
        ValueError,
        match=r"axis 1 of 'mu' is out of range: 'mu' has per-draw "
        r"shape \(3,\)",
    ):
        cm.relabel(posterior, {"mu": 1})
    with pytest.raises(ValueError, match=r"'tau' is a scalar in each draw"):
        cm.relabel(posterior, {"tau": 0})
    with pytest.raises(ValueError, match="components is empty"):
        cm.relabel(posterior, [])
    with pytest.raises(
        ValueError,
        match=r"reference value of 'mu' has shape \(2,\); expected "
        r"one draw's shape \(3,\)",
    ):
        cm.relabel(posterior, ["mu"], reference={"mu": np.zeros(2)})
    with pytest.raises(ValueError, match=r"missing \['sigma'\], unexpected \['tau'\]"):
        cm.relabel(posterior, ["mu", "sigma"], reference={"mu": TRUE_MU, "tau": 0.0})
    with pytest.raises(ValueError, match="max_iterations must be an integer >= 1"):
        cm.relabel(posterior, ["mu"], max_iterations=0)
    many = Posterior({"mu": np.zeros((2, 5, 9))})
    with pytest.raises(ValueError, match=r"K = 9 components.*K! = 362880.*at most K = 8"):
        cm.relabel(many, ["mu"])


# --- a model: unconstrained draws recomputed, ordered models flagged ------------------------------
def ordered_model():
    mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 5.0))
    y = yield tfd.Normal(mu, 1.0)


def test_relabelling_an_ordered_model_warns():
    mu = np.sort(np.random.default_rng(0).normal(size=(2, 10, 2)), axis=-1)
    jd = tfd.JointDistributionCoroutine(ordered_model)
    posterior = Posterior({"mu": mu}, observed={"y": np.array([0.0, 1.0])}, model=jd)
    # matching the reversed labelling breaks the model's order
    with pytest.warns(RelabelWarning, match=r"\['mu'\] fall outside the support"):
        fixed = cm.relabel(posterior, ["mu"], reference={"mu": np.array([1.0, -1.0])})
    assert np.all(fixed.samples["mu"][..., 0] > fixed.samples["mu"][..., 1])


# --- a real fit: a 2-component Gaussian mixture with exchangeable priors --------------------------
N = 200
_rng = np.random.default_rng(0)
Y = np.where(_rng.random(N) < 0.4, _rng.normal(-2.0, 0.7, N), _rng.normal(2.0, 0.7, N))
TRUE_MEANS = np.array([-2.0, 2.0])
# with this seed and uniform starts chain 0 finds the components in the other order than chains
# 1 to 3 (the default start puts all chains in one labelling)
SWITCHING_SEED = 1


def exchangeable_gmm():
    mu = yield tfd.Normal(jnp.zeros(2), 5.0)
    sigma = yield tfd.HalfNormal(jnp.ones(2))
    w = yield tfd.Dirichlet(jnp.ones(2))
    z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (N, 2)))
    y = yield tfd.Normal(mu[z], sigma[z])


@pytest.fixture(scope="module")
def switched_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the labels switch: R-hat is large
        return cm.nuts(
            exchangeable_gmm,
            observed={"y": Y},
            num_warmup=300,
            num_samples=300,
            num_chains=4,
            seed=SWITCHING_SEED,
            progress=False,
            init="uniform",
        )


def test_fit_with_switched_labels_is_relabelled(switched_fit):
    post = switched_fit
    chain_means = post.samples["mu"].mean(axis=1)
    # pre-condition: the chains disagree on the labels
    assert worst_diagnostics(post.samples)["mu"][0] > 1.1
    assert len({tuple(np.argsort(m)) for m in chain_means}) == 2

    fixed = cm.relabel(post, ["mu", "sigma", "w"])
    diagnostics = worst_diagnostics(fixed.samples)
    assert max(diagnostics[k][0] for k in ("mu", "sigma", "w")) < 1.01
    assert fixed.convergence_warnings() == []
    assert len({tuple(np.argsort(m)) for m in fixed.samples["mu"].mean(axis=1)}) == 1
    mu = fixed.samples["mu"].reshape(-1, 2)
    order = np.argsort(mu.mean(axis=0))
    assert np.all(np.abs(mu.mean(axis=0)[order] - TRUE_MEANS) < 4 * mu.std(axis=0)[order])

    # unconstrained draws recomputed through the model, in the new labels
    assert list(fixed.unconstrained) == list(post.unconstrained)
    np.testing.assert_allclose(fixed.unconstrained["mu"], fixed.samples["mu"], rtol=1e-6)
    np.testing.assert_allclose(
        np.exp(fixed.unconstrained["sigma"]), fixed.samples["sigma"], rtol=1e-5
    )
    # draws not permuted keep their unconstrained values
    kept = np.all(fixed.permutations == np.arange(2), axis=-1)
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(
        fixed.unconstrained["w"][kept], post.unconstrained["w"][kept], atol=1e-5
    )


def test_responsibilities_follow_the_new_labels(switched_fit):
    post = switched_fit
    fixed = cm.relabel(post, ["mu", "sigma", "w"])
    low_before = np.argmin(post.samples["mu"].mean(axis=1), axis=-1)  # per chain
    low_after = np.argmin(fixed.samples["mu"].mean(axis=1), axis=-1)
    assert len(set(low_before)) == 2 and len(set(low_after)) == 1

    point = int(np.argmin(Y))  # clearly in the lower component
    before = post.discrete_posterior()["z"][:, :, point].mean(axis=1)  # (chain, 2)
    after = fixed.discrete_posterior()["z"][:, :, point].mean(axis=1)
    assert np.ptp(before[:, 0]) > 0.9  # the chains disagree on the label of the point
    assert np.ptp(after[:, 0]) < 0.01
    assert np.all(after[:, low_after[0]] > 0.99)
    assert fixed.discrete_posterior()["z"].shape == (4, 300, N, 2)


def test_label_switching_is_reported_and_relabel_needs_no_argument(switched_fit):
    post = switched_fit
    assert post.component_axes() == {"mu": 0, "sigma": 0, "w": 0}
    messages = post.convergence_warnings()
    switching = [m for m in messages if m.startswith("label switching")]
    assert len(switching) == 1 and "post.relabel()" in switching[0]
    assert "mu, sigma and w" in switching[0]
    assert not any(m.startswith("minor mode") for m in messages)
    fixed = post.relabel()
    assert max(worst_diagnostics(fixed.samples)[k][0] for k in ("mu", "sigma", "w")) < 1.01
    assert fixed.convergence_warnings() == []
    np.testing.assert_array_equal(fixed.permutations, cm.relabel(post).permutations)


def test_no_component_axes_when_the_model_is_not_symmetric():
    def ordered_gmm():
        mu = yield tfd.Normal(jnp.array([-2.0, 2.0]), 1.0)  # priors tell the components apart
        sigma = yield tfd.HalfNormal(jnp.ones(2))
        w = yield tfd.Dirichlet(jnp.ones(2))
        z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (N, 2)))
        y = yield tfd.Normal(mu[z], sigma[z])

    # draws near the data's components (the symmetry is tested at a draw: no fit is needed)
    rng = np.random.default_rng(0)
    post = Posterior(
        {
            "mu": rng.normal([-2.0, 2.0], 0.1, (2, 50, 2)),
            "sigma": rng.uniform(0.8, 1.2, (2, 50, 2)),
            "w": rng.dirichlet([50.0, 50.0], (2, 50)),
        },
        observed={"y": Y},
        model=tfd.JointDistributionCoroutine(ordered_gmm),
    )
    assert post.component_axes() == {}
    with pytest.raises(ValueError, match="name them with components="):
        post.relabel()
