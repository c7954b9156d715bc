"""NUTS through BlackJAX: posteriors with known answers, results, ArviZ output, errors."""

import importlib
import json
import os
import subprocess
import sys
import textwrap
import warnings

import arviz as az
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

import coromix as cm
from coromix.results import SAMPLE_STATS, ConvergenceWarning, Posterior

matplotlib.use("Agg")
tfd = cm.distributions
nuts_module = importlib.import_module("coromix.infer.nuts")

# --- a conjugate model: normal means with known scale, and a Poisson rate with a Gamma prior -----
GROUPS = np.array([0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1])
Y = np.array([1.2, 0.4, 2.1, -3.0, -2.2, -2.9, -3.5, -1.8, 1.9, -2.6, 0.8, -3.1])
COUNTS = np.array([3.0, 5.0, 2.0, 4.0, 6.0, 3.0, 4.0])
PRIOR_SCALE, NOISE, RATE_A, RATE_B = 10.0, 1.5, 2.0, 1.0


def conjugate_model():
    mu = yield tfd.Normal(jnp.zeros(2), PRIOR_SCALE)
    y = yield tfd.Normal(mu[GROUPS], NOISE)
    rate = yield tfd.Gamma(RATE_A, RATE_B)
    counts = yield tfd.Poisson(jnp.broadcast_to(rate, COUNTS.shape))


def exact_posterior():
    precision = 1 / PRIOR_SCALE**2 + np.bincount(GROUPS) / NOISE**2
    mu_mean = np.bincount(GROUPS, weights=Y) / NOISE**2 / precision
    a, b = RATE_A + COUNTS.sum(), RATE_B + len(COUNTS)
    return {"mu": (mu_mean, 1 / np.sqrt(precision)), "rate": (a / b, np.sqrt(a) / b)}


@pytest.fixture(scope="module")
def conjugate_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 600 draws: ESS may be below 400
        return cm.nuts(
            conjugate_model,
            {"y": Y, "counts": COUNTS},
            num_chains=2,
            num_warmup=300,
            num_samples=300,
            seed=1,
            progress=False,
        )


def test_conjugate_posterior_is_recovered(conjugate_fit):
    idata = conjugate_fit.to_arviz()
    mcse = az.mcse(idata, method="mean")
    for name, (mean, sd) in exact_posterior().items():
        draws = conjugate_fit.samples[name]
        assert np.all(np.abs(draws.mean(axis=(0, 1)) - mean) < 4 * np.asarray(mcse[name]))
        np.testing.assert_allclose(draws.std(axis=(0, 1)), sd, rtol=0.1)


def test_draws_have_chain_and_draw_dims(conjugate_fit):
    post = conjugate_fit
    assert (post.num_chains, post.num_draws) == (2, 300)
    assert list(post.samples) == ["mu", "rate"] == list(post.unconstrained)
    assert post.samples.mu.shape == (2, 300, 2) and post.samples.rate.shape == (2, 300)
    assert np.all(post.samples.rate > 0)
    np.testing.assert_allclose(np.exp(post.unconstrained.rate), post.samples.rate, rtol=1e-5)
    assert list(post.sample_stats) == list(SAMPLE_STATS)
    for stat in post.sample_stats.values():
        assert stat.shape == (2, 300)
    assert post.sample_stats["diverging"].dtype == bool
    assert np.all((post.sample_stats["tree_depth"] >= 1) & (post.sample_stats["tree_depth"] <= 10))
    assert np.all(post.sample_stats["n_steps"] >= 1)
    assert 0.6 < post.sample_stats["acceptance_rate"].mean() <= 1.0
    # one adapted step size per chain
    assert np.all(post.sample_stats["step_size"] == post.sample_stats["step_size"][:, :1])
    # lp is the unconstrained log density at the draw
    pinned = post.model.pin(y=Y, counts=COUNTS)
    lp = pinned.unconstrained_log_prob({k: v[1, 7] for k, v in post.unconstrained.items()})
    np.testing.assert_allclose(post.sample_stats["lp"][1, 7], lp, rtol=1e-4)
    np.testing.assert_allclose(post.observed["y"], Y, rtol=1e-6)
    # the default start: every climb of the mode search ended at a finite log density
    assert post.attrs["init"] == "mode"
    assert post.attrs["search_climbs_finite"] == post.attrs["search_climbs"] >= 1


def test_to_arviz_summary_and_plots(conjugate_fit):
    idata = conjugate_fit.to_arviz()
    assert set(idata.groups()) == {
        "posterior",
        "unconstrained_posterior",
        "sample_stats",
        "observed_data",
        "log_likelihood",
    }
    assert list(idata.posterior.data_vars) == ["mu", "rate"]
    assert dict(idata.posterior.sizes) == {"chain": 2, "draw": 300, "mu_dim_0": 2}
    assert set(idata.sample_stats.data_vars) == set(SAMPLE_STATS)
    assert idata.observed_data["counts"].shape == COUNTS.shape

    summary = conjugate_fit.summary()
    assert list(summary.index) == ["mu[0]", "mu[1]", "rate"]
    for column in ["mean", "sd", "hdi_3%", "hdi_97%", "ess_bulk", "ess_tail", "r_hat"]:
        assert column in summary.columns
    assert (summary["r_hat"] < 1.05).all()
    az.plot_trace(idata)
    az.plot_energy(idata)
    matplotlib.pyplot.close("all")


def test_netcdf_round_trip(conjugate_fit, tmp_path):
    path = tmp_path / "fit.nc"
    conjugate_fit.save(path)
    loaded = Posterior.load(path)
    assert list(loaded.samples) == list(conjugate_fit.samples)
    for group in ("samples", "unconstrained", "sample_stats", "observed"):
        original, back = getattr(conjugate_fit, group), getattr(loaded, group)
        assert list(back) == list(original)
        for name in original:
            np.testing.assert_array_equal(back[name], original[name])
    assert loaded.model is None and loaded.attrs["num_warmup"] == 300
    assert loaded.attrs["model"] == "conjugate_model"
    assert "2 chains x 300 draws" in repr(loaded)
    with pytest.raises(ValueError, match="needs the model"):
        loaded.discrete_posterior()
    assert set(az.from_netcdf(path).groups()) == set(conjugate_fit.to_arviz().groups())


def test_repr_is_a_table_of_variables(conjugate_fit):
    lines = repr(conjugate_fit).splitlines()
    assert lines[0].startswith("Posterior(conjugate_model: 2 chains x 300 draws")
    assert lines[1].split()[0] == "mu" and lines[2].split()[0] == "rate"


# --- a mixture: per-point component summed out, ordered means -----------------------------------
TRUE_MEANS = np.array([-2.0, 3.0])


def mixture_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    z = (rng.random(n) < 0.6).astype(int)
    return TRUE_MEANS[z] + rng.normal(size=n), z


def mixture_model(n):
    def two_component_mixture():
        w = yield tfd.Dirichlet(jnp.ones(2))
        mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 5.0))
        sigma = yield tfd.HalfNormal(2.0)
        z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (n, 2)))
        x = yield tfd.Normal(mu[z], sigma)

    return two_component_mixture


@pytest.fixture(scope="module")
def mixture_fit():
    x, z = mixture_data()
    jd = tfd.JointDistributionCoroutine(mixture_model(len(x)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = cm.nuts(
            jd, {"x": x}, num_chains=2, num_warmup=300, num_samples=300, seed=0, progress=False
        )
    return fit, z


def test_mixture_recovers_means_and_assignments(mixture_fit):
    fit, z = mixture_fit
    assert list(fit.samples) == ["w", "mu", "sigma"]
    np.testing.assert_allclose(fit.samples.mu.mean(axis=(0, 1)), TRUE_MEANS, atol=0.3)
    assert np.all(np.diff(fit.samples.mu, axis=-1) > 0)
    np.testing.assert_allclose(fit.samples.sigma.mean(), 1.0, atol=0.2)
    np.testing.assert_allclose(fit.samples.w.mean(axis=(0, 1)), [0.4, 0.6], atol=0.1)

    probs = fit.discrete_posterior()
    assert list(probs) == ["z"] and probs.z.shape == (2, 300, len(z), 2)
    np.testing.assert_allclose(probs.z.sum(-1), 1.0, rtol=1e-5)
    assert np.mean(probs.z.mean(axis=(0, 1)).argmax(-1) == z) > 0.95
    # the same as the model's own discrete posterior at one draw
    draw = {k: v[1, 5] for k, v in fit.samples.items()}
    exact = fit.model.discrete_posterior(**draw, **fit.observed).z
    np.testing.assert_allclose(probs.z[1, 5], exact, rtol=1e-4, atol=1e-6)


def test_mixture_arviz_has_discrete_posterior_group(mixture_fit, tmp_path):
    fit, z = mixture_fit
    idata = fit.to_arviz()
    group = idata["discrete_posterior"]
    assert group["z"].dims == ("chain", "draw", "z_dim_0", "z_support")
    assert group["z"].shape == (2, 300, len(z), 2)
    assert "discrete_posterior" not in fit.to_arviz(discrete_posterior=False).groups()
    assert idata.log_likelihood["x"].shape == (2, 300, len(z))
    loo = az.loo(idata)  # the summed-out mixture density of each point
    assert np.isfinite(loo.elpd_loo) and 0 < loo.p_loo < 10  # 4 parameters
    fit.save(tmp_path / "mixture.nc")
    loaded = Posterior.load(tmp_path / "mixture.nc")
    assert list(loaded.samples) == ["w", "mu", "sigma"]
    np.testing.assert_array_equal(loaded.discrete_posterior().z, fit.discrete_posterior().z)


# --- warnings, progress, errors -------------------------------------------------------------------
def normal_model():
    mu = yield tfd.Normal(0.0, 10.0)
    sigma = yield tfd.HalfNormal(5.0)
    y = yield tfd.Normal(jnp.broadcast_to(mu, Y.shape), sigma)


def test_short_run_warns_and_shows_progress(capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = cm.nuts(
            normal_model,
            {"y": Y},
            num_chains=2,
            num_warmup=5,
            num_samples=40,
            seed=0,
            init={"mu": 0.5, "sigma": 2.0},
        )
    assert fit.samples.sigma.shape == (2, 40)
    messages = [str(w.message) for w in caught if w.category is ConvergenceWarning]
    assert any(
        m.startswith("bulk effective sample size below 400 for mu (") and "sigma (" in m
        for m in messages
    ), messages
    err = capsys.readouterr().err
    assert "compiling NUTS for normal_model" in err
    assert "warmup   [" in err and "5/5" in err
    assert "sampling [" in err and "40/40" in err


def test_convergence_warnings_name_variables():
    rng = np.random.default_rng(0)
    stuck = np.stack([rng.normal(0, 1, 500), rng.normal(3, 1, 500)])
    fine = rng.normal(size=(2, 500))
    diverging = np.zeros((2, 500), bool)
    diverging[0, :7] = True
    post = Posterior(
        {"a": fine, "b": stuck}, sample_stats={"diverging": diverging}, attrs={"target_accept": 0.8}
    )
    messages = post.convergence_warnings()
    assert any(m.startswith("R-hat above 1.01 for b (") for m in messages)
    assert not any("for a (" in m for m in messages)
    assert any(
        m.startswith("7 of 1000 transitions diverged") and "target_accept (now 0.8)" in m
        for m in messages
    )


def test_progress_bar_keeps_the_furthest_step():
    import io

    stream = io.StringIO()
    bar = nuts_module._ProgressBar({0: ("warmup", 10)}, stream=stream)
    for done in [1, 5, 3, 10, 10]:
        bar.update(0, done)
    assert stream.getvalue().count("10/10") == 1 and "5/10" not in stream.getvalue()


def test_initial_positions_are_finite_and_init_is_used():
    pinned = tfd.JointDistributionCoroutine(normal_model).pin(y=Y)
    find = nuts_module._start_finder(pinned, pinned.unconstrained_log_prob)
    # jitted, as inside cm.nuts's compiled program
    starts, found = jax.jit(jax.vmap(find))(jax.random.split(jax.random.key(0), 3))
    assert np.all(found) and np.all(np.isfinite(starts["mu"]))
    assert starts["mu"].shape == (3,) and len(set(np.asarray(starts["mu"]).tolist())) == 3


def test_init_values_start_every_chain_there():
    # two modes at -50 and +50, 333 sd apart: a chain stays in the mode it starts in
    def two_modes():
        mu = yield tfd.Normal(0.0, 10.0)
        yield cm.factor(jnp.logaddexp(-0.5 * ((mu - 50) / 0.3) ** 2, -0.5 * ((mu + 50) / 0.3) ** 2))

    for start in (50.0, -50.0):
        post = cm.nuts(
            two_modes,
            {},
            init={"mu": start},
            num_warmup=100,
            num_samples=100,
            seed=1,
            progress=False,
        )
        assert post.attrs["init"] == "values"
        draws = np.asarray(post.samples["mu"])
        assert np.all(np.sign(draws) == np.sign(start)), (start, draws.min(), draws.max())


def test_prior_start_and_bad_init_string():
    def located():  # the posterior is far from the default uniform box
        mu = yield tfd.Normal(100.0, 1.0)
        y = yield tfd.Normal(jnp.broadcast_to(mu, Y.shape), 1.0)

    pinned = tfd.JointDistributionCoroutine(located).pin(y=Y + 100.0)
    find = nuts_module._start_finder(pinned, pinned.unconstrained_log_prob, from_prior=True)
    # jitted, as inside cm.nuts's compiled program
    starts, found = jax.jit(jax.vmap(find))(jax.random.split(jax.random.key(0), 200))
    assert np.all(found) and 95 < float(np.mean(starts["mu"])) < 105
    uniform = nuts_module._start_finder(pinned, pinned.unconstrained_log_prob)
    starts = jax.jit(jax.vmap(uniform))(jax.random.split(jax.random.key(0), 8))[0]
    assert np.all(np.abs(starts["mu"]) < 2)
    with pytest.raises(
        ValueError, match="init must be None, 'mode', 'uniform', 'prior' or a mapping"
    ):
        cm.nuts(normal_model, {"y": Y}, init="map", progress=False)


def test_init_errors():
    def exponential_model():
        rate = yield tfd.Exponential(1.0)
        # t <= rate: zero density wherever a start can be (rate = exp(u) < e^2 for |u| < 2)
        t = yield tfd.Uniform(0.0, jnp.broadcast_to(rate, (3,)))

    with pytest.raises(ValueError, match=r"no starting point .*'exponential_model'.*'rate'"):
        cm.nuts(exponential_model, {"t": jnp.array([1.0, 20.0, 0.5])}, progress=False)
    with pytest.raises(ValueError, match=r"init= does not fit .*\['mu', 'sigma'\].*positive"):
        cm.nuts(normal_model, {"y": Y}, init={"mu": 0.0, "sigma": -1.0}, progress=False)
    with pytest.raises(ValueError, match=r"init= does not fit .*missing \['sigma'\]"):
        cm.nuts(normal_model, {"y": Y}, init={"mu": 0.0}, progress=False)


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"num_samples": 0}, "num_samples must be an integer >= 1"),
        ({"num_chains": 2.0}, "num_chains must be an integer"),
        ({"target_accept": 1.0}, r"target_accept must lie in \(0, 1\)"),
        ({"chain_method": "sequential"}, "chain_method must be one of"),
    ],
)
def test_settings_are_checked(settings, match):
    with pytest.raises(ValueError, match=match):
        cm.nuts(normal_model, {"y": Y}, **settings)


def test_model_without_parameters_is_an_error():
    def fixed():
        y = yield tfd.Normal(0.0, 1.0)

    with pytest.raises(ValueError, match="no free continuous variable"):
        cm.nuts(fixed, {"y": 0.3})


MULTI_DEVICE_SCRIPT = textwrap.dedent("""
    import json, jax, jax.numpy as jnp, numpy as np, warnings
    import coromix as cm
    tfd = cm.distributions

    def model():
        mu = yield tfd.Normal(0.0, 10.0)
        y = yield tfd.Normal(jnp.broadcast_to(mu, (5,)), 1.0)

    warnings.simplefilter("ignore")
    fit = cm.nuts(model, {"y": np.arange(5.0)}, num_chains=2, num_warmup=100, num_samples=100)
    print(json.dumps({"devices": jax.local_device_count(), "method": fit.attrs["chain_method"],
                      "shape": list(fit.samples["mu"].shape),
                      "mean": float(fit.samples["mu"].mean()),
                      "chains_differ": bool(np.any(fit.samples["mu"][0] != fit.samples["mu"][1]))}))
""")


def test_chains_split_over_devices():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    done = subprocess.run(
        [sys.executable, "-c", MULTI_DEVICE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2 and result["method"] == "parallel"
    assert result["shape"] == [2, 100] and result["chains_differ"]
    assert "sampling [" in done.stderr and "100/100" in done.stderr
    assert abs(result["mean"] - 2.0) < 0.5


def test_chain_groups_on_threads_give_the_vectorized_draws(monkeypatch):
    """chain_method="threads" runs the chains as groups of a vmapped program, each from its own
    thread: every chain keeps its key, so the draws are the vectorized run's (the groups' programs
    are the same computation on fewer chains, equal up to rounding), also when the steps are split
    into many calls."""
    monkeypatch.setattr(nuts_module, "_cores", lambda: 2)
    monkeypatch.setattr(nuts_module, "_CHUNK_SECONDS", 0.001)  # many calls per group

    def location_scale():
        mu = yield tfd.Normal(0.0, 10.0)
        sigma = yield tfd.HalfNormal(5.0)
        y = yield tfd.Normal(jnp.broadcast_to(mu, Y.shape), sigma)

    kwargs = {"num_warmup": 60, "num_samples": 40, "num_chains": 4, "seed": 3, "progress": False}
    with warnings.catch_warnings(), jax.enable_x64(True):  # float64: rounding far below NUTS's
        warnings.simplefilter("ignore", ConvergenceWarning)  # 160 draws
        data = {"y": np.asarray(Y, np.float64)}
        one = cm.nuts(location_scale, data, chain_method="vectorized", **kwargs)
        two = cm.nuts(location_scale, data, chain_method="threads", **kwargs)
    assert one.attrs["chain_method"] == "vectorized" and two.attrs["chain_method"] == "threads"
    assert one.samples["mu"].dtype == np.float64
    for name in one.samples:
        np.testing.assert_allclose(two.samples[name], one.samples[name], rtol=1e-9, atol=1e-12)
    for name in ("n_steps", "diverging"):
        np.testing.assert_array_equal(two.sample_stats[name], one.sample_stats[name])
    # each chain adapts its own step size; all sample with the median of the four
    np.testing.assert_allclose(two.attrs["adapted_step_sizes"], one.attrs["adapted_step_sizes"])
    own = np.asarray(one.attrs["adapted_step_sizes"])
    assert own.shape == (4,) and len(np.unique(own)) == 4
    pooled = np.exp(np.median(np.log(own)))
    np.testing.assert_allclose(one.sample_stats["step_size"], pooled, rtol=1e-12)


def test_a_single_chain_samples_with_its_own_step_size():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 100 draws
        post = cm.nuts(
            normal_model,
            {"y": Y},
            num_chains=1,
            num_warmup=100,
            num_samples=100,
            seed=0,
            progress=False,
        )
    own = post.attrs["adapted_step_sizes"]
    assert len(own) == 1 and own[0] > 0
    np.testing.assert_allclose(post.sample_stats["step_size"], own[0], rtol=1e-6)


@pytest.mark.parametrize(
    "cores, num_chains, size, backend, expected",
    [
        (2, 4, 1000, "cpu", "threads"),
        (2, 4, 100_000, "cpu", "vectorized"),  # XLA spreads each large operation over the cores
        (1, 4, 1000, "cpu", "vectorized"),  # one core: nothing to split over
        (2, 1, 1000, "cpu", "vectorized"),
        (3, 4, 1000, "cpu", "threads"),  # 2 groups of 2 (the largest divisor up to the cores)
        (2, 4, 1000, "gpu", "vectorized"),
    ],
)
def test_auto_chain_layout(monkeypatch, cores, num_chains, size, backend, expected):
    monkeypatch.setattr(nuts_module, "_cores", lambda: cores)
    monkeypatch.setattr(nuts_module.jax, "default_backend", lambda: backend)
    method = nuts_module._resolve_chain_method("auto", num_chains, None, size)
    assert method == expected
    if method == "threads":
        assert nuts_module._thread_groups(num_chains) == 2


@pytest.mark.parametrize("method", ["parallel", "threads"])
def test_chains_are_not_split_by_hand_over_sharded_data(method):
    class FakeMesh:  # only its shape is read
        def __init__(self):
            self.shape = {"data": 4}

    with pytest.raises(
        ValueError,
        match=rf"chain_method='{method}' splits the chains, but the "
        r"observed values are sharded over a mesh \{'data': 4\}",
    ):
        nuts_module._resolve_chain_method(method, 4, FakeMesh(), 1000)
    assert nuts_module._resolve_chain_method("auto", 4, FakeMesh(), 1000) == "vectorized"


def test_init_at_a_point_of_zero_density_is_an_error():
    def beta_model():
        p = yield tfd.Beta(2.0, 2.0)
        k = yield tfd.Binomial(10, probs=p)

    with pytest.raises(ValueError, match=r"init= is a point where the log density of 'beta_model'"):
        cm.nuts(beta_model, {"k": 3.0}, init={"p": 1.0}, progress=False)


def test_nonfinite_densities_during_sampling_are_counted_and_named():
    """A scale with a prior on all reals: NUTS meets negative scales, where the density of 'y'
    is NaN; the fit counts those transitions and names the term."""

    def bad_scale():
        mu = yield tfd.Normal(0.0, 1.0)
        s = yield tfd.Normal(1.0, 1.0)  # a scale that can go negative
        y = yield tfd.Normal(jnp.broadcast_to(mu, (3,)), s, validate_args=False)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = cm.nuts(
            bad_scale,
            {"y": jnp.array([0.1, -0.2, 0.3])},
            num_warmup=200,
            num_samples=200,
            num_chains=2,
            init="uniform",
            progress=False,
        )
    assert post.attrs["nonfinite_sampling"] > 0
    messages = [str(w.message) for w in caught if "not finite" in str(w.message)]
    assert len(messages) == 1, messages
    assert f"{post.attrs['nonfinite_sampling']} of 400 sampling transitions" in messages[0]
    assert "the term of 'y' is NaN" in messages[0], messages[0]
    # the draws themselves are all at finite densities
    assert np.all(np.isfinite(post.sample_stats["lp"]))
