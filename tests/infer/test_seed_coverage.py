"""Coverage of cm.nuts' 95% intervals on the seed's three models, data simulated from the model.

For each model and each of 20 seeds: draw the parameters and N = 200 observations from the joint
model (``jd.sample``: the true parameters are a prior draw, as in simulation-based calibration, so
a calibrated posterior covers them 95% of the time on average over seeds), fit with ``cm.nuts``,
and check that each true parameter lies in the central 95% posterior interval (2.5% and 97.5%
quantiles of the pooled draws).  The coverage table is printed (``pytest -s``); it lists every
miss with its interval, and the divergences per seed.

The models, written per observation (the plate form: one batch-shaped Categorical component per
observation) or as one joint switching model:

* ``mixture``: examples/seed_mixture.py for N points: weights (0.6, 0.4), mu1 ~ N(0, 1),
  mu2 ~ N(5, 1), sigma ~ HalfNormal(2); the component chooses the mean with ``jnp.where``.
* ``hierarchical``: examples/seed_hierarchical_mixture.py for N points: hyper_mu ~ N(0, 10),
  hyper_sigma ~ HalfNormal(5), the two component means iid N(hyper_mu, hyper_sigma), sigma ~
  HalfNormal(2), weights (0.5, 0.5).
* ``dynamic``: examples/switching_models.py's seed_dynamic_mixture: one ``tfd.RegimeSwitching``
  series of N steps whose component probabilities are softmax(x_prev, -x_prev); mu1, mu2, sigma
  as in ``mixture``.

Label switching: in ``hierarchical`` the two components are exchangeable (same prior, equal
weights), so the posterior has two mirror modes and "the interval of mu1" would be meaningless;
its means are one ``tfd.Ordered`` vector ``mu`` (mu[0] < mu[1]; the same model, the mirror modes
folded into one) and the truth is sorted the same way (``Ordered.sample`` sorts).  In ``mixture``
and ``dynamic`` the labels are fixed by the model itself: mu1 ~ N(0, 1) and mu2 ~ N(5, 1) sit five
prior sds apart, and the weights (0.6/0.4, or the previous-observation rule) differ between
components, so the swapped labelling is a mode of negligible mass (tens of nats lower); an
ordering constraint there would change the model.  A chain started between the two modes (a
uniform start puts both means near 0) can still settle in the swapped one (it happened in 1 of 40
fits, R-hat 1.83); the default start (``init="mode"``: L-BFGS climbs from 8 points, chains around
the highest) puts every chain in the dominant mode, and these fits use it.

Sampler settings: ``mixture`` and ``dynamic`` use cm.nuts' defaults with 2 chains x (500 + 500).
``hierarchical`` is harder: with two groups the hyper-parameters form a funnel (hyper_mu given
hyper_sigma has scale hyper_sigma / sqrt 2, and hyper_sigma can shrink with the distance between
the two means).  It runs 2 chains x (1000 + 1000) at target_accept 0.99 from the default start
(the mode search; until 2026-12-02 it needed a start at the data's quartiles, which a uniform
start lacked).  Divergences remain in some seeds (a few per 2000 transitions; printed); with
500 + 500 draws at 0.95 they biased the mu[1] intervals of the seeds whose two means nearly
coincide.  Measured 2026-12-02: pooled 93.0%, hyper_mu 19/20, hyper_sigma 17/20, mu[0] 20/20,
mu[1] 17/20, sigma 20/20, 109 s for the 20 fits (one compilation: the model object is shared and
each seed's data are arguments of the compiled program).

The criterion.  Per parameter, the number of misses in 20 seeds is Binomial(20, 0.05) for a
calibrated sampler, so "at least 18/20 covered" fails with probability 7.5% per parameter (about
58% that one of the 11 parameters fails) even for an exact sampler; that is what happened here:
hyper_sigma misses seeds 3, 4 and 8, and its exact posterior given the true means (by quadrature)
puts those truths at tail probabilities 2.7%, 1.6% and 2.2%, so they are genuine 95%-interval
misses, not sampler error.  The test therefore asserts what is decisive at a small false-alarm
rate: coverage pooled over a model's parameters and seeds at least 90% (a false alarm about 3%
of the time for 3 parameters x 20 seeds, 1% for 5 x 20, were the checks independent), and every
single parameter at least 16/20 (P(5 or more misses) = 0.26% per parameter).  The seeds are
fixed (0..19 per model); the test is deterministic.
"""

import time

import jax.numpy as jnp
import numpy as np
import pytest

import coromix as cm

tfd = cm.distributions
N = 200
SEEDS = range(20)
MIN_POOLED = 0.90  # pooled over a model's parameters and seeds
MIN_PER_PARAMETER = 16  # of 20 seeds, for each parameter


def mixture(n):
    def model():
        component_selection = yield tfd.Categorical(
            probs=jnp.broadcast_to(jnp.array([0.6, 0.4]), (n, 2))
        )
        mu1 = yield tfd.Normal(loc=0.0, scale=1.0)
        mu2 = yield tfd.Normal(loc=5.0, scale=1.0)
        sigma = yield tfd.HalfNormal(scale=2.0)
        observed_data = yield tfd.Normal(
            loc=jnp.where(component_selection == 0, mu1, mu2), scale=sigma
        )

    return model


def hierarchical(n):
    def model():
        hyper_mu = yield tfd.Normal(loc=0.0, scale=10.0)
        hyper_sigma = yield tfd.HalfNormal(scale=5.0)
        # mu1, mu2 iid N(hyper_mu, hyper_sigma), ordered: mu[0] < mu[1] (label switching)
        mu = yield tfd.Ordered(tfd.Normal(loc=jnp.full(2, hyper_mu), scale=hyper_sigma))
        sigma = yield tfd.HalfNormal(scale=2.0)
        component_selection = yield tfd.Categorical(
            probs=jnp.broadcast_to(jnp.array([0.5, 0.5]), (n, 2))
        )
        observed_data = yield tfd.Normal(loc=mu[component_selection], scale=sigma)

    return model


def _example(name):
    """A module from examples/ (not a package), loaded by path."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dynamic = _example("switching_models").seed_dynamic_mixture


DEFAULT = {"num_warmup": 500, "num_samples": 500}
MODELS = {  # model, observed variable, parameters checked, nuts settings
    "mixture": (mixture, "observed_data", ("mu1", "mu2", "sigma"), DEFAULT),
    "hierarchical": (
        hierarchical,
        "observed_data",
        ("hyper_mu", "hyper_sigma", "mu", "sigma"),
        {"num_warmup": 1000, "num_samples": 1000, "target_accept": 0.99},
    ),
    "dynamic": (dynamic, "series", ("mu1", "mu2", "sigma"), DEFAULT),
}


def elements(name, value):
    value = np.asarray(value)
    if value.ndim == 0:
        return {name: value[()]}
    return {f"{name}[{','.join(map(str, i))}]": value[i] for i in np.ndindex(value.shape)}


_JOINTS: dict = {}


def one_seed(model_fn, observed_name, parameters, settings, seed):
    # one model object per model: every seed's fit reuses its compiled programs (new data only)
    jd = _JOINTS.setdefault(model_fn, tfd.JointDistributionCoroutine(model_fn(N)))
    draw = jd.sample(seed=10_000 + seed)
    truth = {k: np.asarray(draw[k]) for k in parameters}
    settings = dict(settings)
    if callable(settings.get("init")):
        settings["init"] = settings["init"](draw[observed_name])
    post = cm.nuts(
        jd,
        observed={observed_name: draw[observed_name]},
        num_chains=2,
        seed=seed,
        progress=False,
        **settings,
    )
    covered, intervals = {}, {}
    for k in parameters:
        draws = np.asarray(post.samples[k]).reshape((-1,) + truth[k].shape)
        lo, hi = np.quantile(draws, [0.025, 0.975], axis=0)
        for key, t in elements(k, truth[k]).items():
            l, h = elements(k, lo)[key], elements(k, hi)[key]
            covered[key] = bool(l <= t <= h)
            intervals[key] = (float(t), float(l), float(h))
    return covered, intervals, post.num_divergences


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_central_95_intervals_cover_the_truth(name):
    model_fn, observed_name, parameters, settings = MODELS[name]
    start = time.perf_counter()
    hits: dict[str, int] = {}
    misses: dict[str, list[str]] = {}
    divergences = []
    for seed in SEEDS:
        covered, intervals, div = one_seed(model_fn, observed_name, parameters, settings, seed)
        divergences.append(div)
        for key, ok in covered.items():
            hits[key] = hits.get(key, 0) + ok
            if not ok:
                t, lo, hi = intervals[key]
                misses.setdefault(key, []).append(
                    f"seed {seed}: {t:.3f} not in [{lo:.3f}, {hi:.3f}]"
                )
    run = {k: v for k, v in settings.items() if not callable(v)}
    title = (
        f"coverage of central 95% intervals, {name} (N = {N}, {len(SEEDS)} seeds, "
        f"2 chains, {run}), {time.perf_counter() - start:.0f} s:"
    )
    lines = [title]
    for key, n in hits.items():
        lines.append(f"  {key:<14} {n:>2}/{len(SEEDS)}  {'; '.join(misses.get(key, []))}")
    pooled = sum(hits.values()) / (len(hits) * len(SEEDS))
    lines.append(f"  pooled         {pooled:.1%}")
    lines.append(f"  divergences per seed: {divergences}")
    table = "\n".join(lines)
    print(table)
    assert pooled >= MIN_POOLED, f"pooled coverage {pooled:.1%} below {MIN_POOLED:.0%}\n{table}"
    low = {k: n for k, n in hits.items() if n < MIN_PER_PARAMETER}
    assert not low, f"coverage below {MIN_PER_PARAMETER}/{len(SEEDS)} for {low}\n{table}"
