"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari and Gelman 2018) of ``cm.nuts``.

If the parameters are drawn from the prior, the data from the model given them, and the fit draws
exactly from the posterior given those data, then the rank of the true value of every scalar
parameter among ``M`` independent posterior draws is uniform on ``0..M``.  A sampler (or a log
density, an enumeration, a transform) that is wrong anywhere the prior puts mass bends the rank
histogram: too narrow posteriors give a U, too wide ones a hump, a bias a slope.

For each model below, ``SBC_REPLICATIONS`` (default 200) replications, each with fixed seeds:

1. ``jd.sample(seed=...)`` draws the parameters and the data (the discrete choices too; they are
   summed out in the fit).
2. ``cm.nuts`` with 2 chains x (300 warmup + ``L`` draws), default settings unless the model's
   entry says otherwise.  The model is one object for all replications and the data go in
   ``observed=``, so the programs compile once per model.
3. The pooled draws are thinned to ``M = 99`` evenly spaced ones; ``L`` is chosen per model so
   that the bulk ESS of the ``2 L`` draws is about ``M`` or more (the ESS of every fit is recorded
   and its quantiles printed), so the thinned draws are nearly independent.
4. The rank of each scalar element of each parameter: how many of the ``M`` draws lie below the
   truth (``0..99``, 100 values).

The ranks fall in ``B = 10`` bins of 10 values; uniformity by Pearson's chi-square, its p-value from
the exact null law of the statistic for ``R`` replications (simulated multinomial counts, so it is
right for the reduced runs too), at level 1% with Bonferroni over the model's parameter elements.
A replication whose fit raises is skipped and counted (the test fails when more than 2% are);
divergent transitions are counted and printed, and fail the test only when they are frequent (more
than 5% of all kept transitions).  One figure of rank histograms per model (with the 99% band of a
bin's count under uniformity) and the ranks themselves (``.npz``) go to ``$SBC_PLOT_DIR``
(default ``sbc_plots/`` in the working directory).

The models (data small, so that a fit takes about a second once compiled):

* ``seed_mixture``, ``seed_hierarchical``: the seed document's first and third models exactly as
  it writes them (read from ``../shared/seed`` as ``tests/test_seed.py`` does: one observation, a
  Python ``if`` on the component).  With one observation the posterior is close to the prior and
  keeps its funnels: ``sigma`` near 0 with a mean at the observation (first model), and the
  centred hierarchy ``mu1, mu2 ~ N(hyper_mu, hyper_sigma)`` (third model), so these two run at
  ``target_accept`` 0.95 and 0.99, and the third from prior draws (``init="prior"``: the default
  mode search climbs into the funnel's neck) with ``L = 1000`` (its ESS is low).  The third is
  exchangeable in ``mu1, mu2``; with one observation its mirror modes overlap completely, so NUTS
  moves between them and the ranks of ``mu1`` stay meaningful.
* ``seed_hierarchical_plated``: the third model for N = 30 points (one batch-shaped component per
  point), its means one ``tfd.Ordered`` vector (with data the mirror modes separate, and label
  switching would make the rank of ``mu1`` meaningless), as tests/infer/test_seed_coverage.py
  writes it; the two-group hierarchy keeps a funnel when the two means nearly coincide, so it runs
  at ``target_accept`` 0.95.
* ``seed_dynamic``: the seed's second model as one joint series (examples/switching_models.py's
  ``seed_dynamic_mixture``, ``tfd.RegimeSwitching``, component probabilities softmax(x, -x) of
  the previous observation), ``T = 50``.
* ``gmm``: a plated Gaussian mixture, K = 2 components with Dirichlet(4) weights, ordered
  locations (``tfd.Ordered``: label switching would make a component's rank meaningless), one
  shared scale, N = 40 points, the component of each point summed out.
* ``hmm``: a two-state ``tfd.HiddenMarkovModel``, Dirichlet transition rows favouring staying,
  ordered state means, T = 60.
* ``msar``: Hamilton's Markov-switching AR(1) (examples/switching_models.py's ``hamilton_ar1``,
  ``tfd.RegimeSwitching`` with a regime-dependent mean and AR coefficient), T = 80.
* ``hsmm``: a two-state ``tfd.HiddenSemiMarkovModel`` (the regimes alternate) with Poisson
  durations truncated to ``1..15`` whose rates have Gamma priors, ordered means, T = 60.

Run: ``make test-slow`` (or ``pytest -m slow tests/test_sbc.py -s`` for the tables);
``SBC_REPLICATIONS=20`` for a quick check of the machinery.
"""

from __future__ import annotations

import importlib.util
import os
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import arviz as az
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import coromix as cm
from coromix.results import ConvergenceWarning

tfd = cm.distributions

REPLICATIONS = int(os.environ.get("SBC_REPLICATIONS", "200"))
PLOT_DIR = Path(os.environ.get("SBC_PLOT_DIR", "sbc_plots"))
NUM_CHAINS = 2
NUM_WARMUP = 300
THINNED = 99  # draws kept per fit: ranks 0..99
BINS = 10  # of 10 rank values each
LEVEL = 0.01  # family-wise, Bonferroni over a model's parameter elements
MAX_SKIPPED = 0.02  # share of replications whose fit may raise
MAX_DIVERGENT = 0.05  # share of all kept transitions that may diverge

# ---------------------------------------------------------------------------------------------
# SBC machinery
# ---------------------------------------------------------------------------------------------


def thin(draws: np.ndarray, m: int) -> np.ndarray:
    """``m`` evenly spaced draws of ``(chain, draw, ...)`` draws, chains one after another."""
    flat = draws.reshape((-1,) + draws.shape[2:])
    index = np.round(np.linspace(0, len(flat) - 1, m)).astype(int)
    return flat[index]


def ranks(truth: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The rank of each element of ``truth`` among ``draws`` (``(m,) + truth.shape``): ``0..m``."""
    return np.sum(draws < truth[None], axis=0).ravel()


def bin_counts(rank_values: np.ndarray, m: int, bins: int) -> np.ndarray:
    """Counts of ranks ``0..m`` in ``bins`` bins of ``(m + 1) / bins`` values each."""
    assert (m + 1) % bins == 0, (m, bins)
    return np.bincount(rank_values * bins // (m + 1), minlength=bins)


@cache
def _null_statistics(replications: int, bins: int, sims: int = 200_000) -> np.ndarray:
    """Pearson's statistic of ``sims`` uniform multinomial histograms of ``replications`` ranks."""
    counts = np.random.default_rng(20180711).multinomial(
        replications, np.full(bins, 1 / bins), size=sims
    )
    expected = replications / bins
    return np.sort(np.sum((counts - expected) ** 2, axis=1) / expected)


def chi_square_pvalue(counts: np.ndarray) -> float:
    """P(statistic >= observed) under uniform ranks, from the statistic's exact (simulated) law."""
    counts = np.asarray(counts)
    replications, bins = int(counts.sum()), len(counts)
    expected = replications / bins
    observed = float(np.sum((counts - expected) ** 2) / expected)
    null = _null_statistics(replications, bins)
    above = len(null) - np.searchsorted(null, observed - 1e-9, side="left")
    return (1 + above) / (1 + len(null))


def uniformity_pvalues(rank_table: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: chi_square_pvalue(bin_counts(r, THINNED, BINS)) for k, r in rank_table.items()}


def element_names(name: str, shape: tuple[int, ...]) -> list[str]:
    if not shape:
        return [name]
    return [f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(shape)]


def min_bulk_ess(post: Any, parameters: tuple[str, ...]) -> float:
    data = {k: np.asarray(post.samples[k], np.float64) for k in parameters}
    ess = az.ess(az.convert_to_dataset(data), method="bulk")
    return float(min(np.min(ess[k].values) for k in parameters))


def plot_ranks(name: str, rank_table: dict[str, np.ndarray], pvalues: dict[str, float], path: Path):
    """One figure: a rank histogram per parameter element, the 99% band of a bin's count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(rank_table)
    replications = len(next(iter(rank_table.values())))
    cols = min(4, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    lo, hi = stats.binom(replications, 1 / BINS).ppf([0.005, 0.995])
    edges = np.arange(BINS + 1) * (THINNED + 1) / BINS
    for ax, key in zip(axes.ravel(), keys):
        counts = bin_counts(rank_table[key], THINNED, BINS)
        ax.axhspan(lo, hi, color="0.85", zorder=0)
        ax.axhline(replications / BINS, color="0.5", lw=0.8, zorder=1)
        ax.stairs(counts, edges, fill=True, color="C0", alpha=0.8, zorder=2)
        ax.set_title(f"{key}  p = {pvalues[key]:.3g}", fontsize=9)
        ax.set_xlim(0, THINNED + 1)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(keys) :]:
        ax.axis("off")
    fig.suptitle(
        f"SBC rank histograms: {name} ({replications} replications, {THINNED} draws each, "
        f"grey: 99% band per bin)",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# The models: each defined once (the programs of cm.nuts are cached per model function)
# ---------------------------------------------------------------------------------------------


def _example(name: str):
    """A module from examples/ (not a package), loaded by path."""
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"sbc_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _seed_namespace(index: int) -> dict:
    from test_seed import run_seed_block  # the seed's code with its import line changed

    return run_seed_block(index)


def seed_mixture():
    return _seed_namespace(0)["model"]


def seed_hierarchical():
    return _seed_namespace(2)["model"]


def seed_dynamic():
    return _example("switching_models").seed_dynamic_mixture(50)


def msar():
    return _example("switching_models").hamilton_ar1(80)


K_GMM, N_GMM = 2, 40


def gmm_model():
    w = yield tfd.Dirichlet(jnp.full(K_GMM, 4.0))
    mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(K_GMM), 3.0))
    sigma = yield tfd.HalfNormal(1.0)
    z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (N_GMM, K_GMM)))
    y = yield tfd.Normal(mu[z], sigma)


N_SEED = 30


def seed_hierarchical_plated():
    """The seed's third model for N_SEED points, means ordered (tests/infer/test_seed_coverage.py)."""
    hyper_mu = yield tfd.Normal(loc=0.0, scale=10.0)
    hyper_sigma = yield tfd.HalfNormal(scale=5.0)
    mu = yield tfd.Ordered(tfd.Normal(loc=jnp.full(2, hyper_mu), scale=hyper_sigma))
    sigma = yield tfd.HalfNormal(scale=2.0)
    component_selection = yield tfd.Categorical(
        probs=jnp.broadcast_to(jnp.array([0.5, 0.5]), (N_SEED, 2))
    )
    observed_data = yield tfd.Normal(loc=mu[component_selection], scale=sigma)


T_HMM = 60


def hmm_model():
    A = yield tfd.Dirichlet(jnp.array([[8.0, 2.0], [2.0, 8.0]]))
    mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 3.0))
    sigma = yield tfd.HalfNormal(1.0)
    y = yield tfd.HiddenMarkovModel(
        tfd.Categorical(probs=jnp.array([0.5, 0.5])),
        tfd.Categorical(probs=A),
        tfd.Normal(mu, sigma),
        num_steps=T_HMM,
    )


T_HSMM, D_HSMM = 60, 15


def hsmm_model():
    rate = yield tfd.Gamma(jnp.full(2, 6.0), jnp.full(2, 1.0))  # durations about rate + 1
    mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 3.0))
    sigma = yield tfd.HalfNormal(1.0)
    y = yield tfd.HiddenSemiMarkovModel(
        tfd.Categorical(probs=jnp.array([0.5, 0.5])),
        tfd.Categorical(probs=jnp.array([[0.0, 1.0], [1.0, 0.0]])),
        tfd.Poisson(rate),
        tfd.Normal(mu, sigma),
        num_steps=T_HSMM,
        max_duration=D_HSMM,
    )


@dataclass(frozen=True)
class Spec:
    model: Callable[[], Any]  # -> the generator function or JointDistributionCoroutine
    observed: str
    parameters: tuple[str, ...]
    num_samples: int  # per chain, before thinning the 2 chains' draws to THINNED
    settings: dict = field(default_factory=dict)


MODELS = {
    "seed_mixture": Spec(
        seed_mixture, "observed_data", ("mu1", "mu2", "sigma"), 400, {"target_accept": 0.95}
    ),
    "seed_hierarchical": Spec(
        seed_hierarchical,
        "observed_data",
        ("hyper_mu", "hyper_sigma", "mu1", "mu2", "sigma"),
        1000,
        {"target_accept": 0.99, "init": "prior"},
    ),
    "seed_hierarchical_plated": Spec(
        lambda: seed_hierarchical_plated,
        "observed_data",
        ("hyper_mu", "hyper_sigma", "mu", "sigma"),
        500,
        {"target_accept": 0.95},
    ),
    "seed_dynamic": Spec(seed_dynamic, "series", ("mu1", "mu2", "sigma"), 200),
    "gmm": Spec(lambda: gmm_model, "y", ("w", "mu", "sigma"), 500),
    "hmm": Spec(lambda: hmm_model, "y", ("A", "mu", "sigma"), 300),
    "msar": Spec(msar, "y", ("stay", "mu", "phi", "sigma"), 200),
    "hsmm": Spec(lambda: hsmm_model, "y", ("rate", "mu", "sigma"), 200),
}


@cache
def joint(name: str) -> tfd.JointDistributionCoroutine:
    """One model object per name, for every replication's draw and fit."""
    model = MODELS[name].model()
    if not isinstance(model, tfd.JointDistributionCoroutine):
        model = tfd.JointDistributionCoroutine(model)
    return model


# ---------------------------------------------------------------------------------------------
# One SBC run
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    ranks: dict[str, list[int]] = field(default_factory=dict)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    divergences: list[int] = field(default_factory=list)
    ess: list[float] = field(default_factory=list)
    fit_seconds: list[float] = field(default_factory=list)
    compile_seconds: float = 0.0


def replicate(name: str, replications: int) -> Run:
    spec = MODELS[name]
    jd = joint(name)
    base = zlib.crc32(name.encode()) % 1_000_000
    run = Run()
    for r in range(replications):
        draw = jd.sample(seed=base + r)
        truth = {k: np.asarray(draw[k]) for k in spec.parameters}
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                post = cm.nuts(
                    jd,
                    observed={spec.observed: draw[spec.observed]},
                    num_chains=NUM_CHAINS,
                    num_warmup=NUM_WARMUP,
                    num_samples=spec.num_samples,
                    seed=r,
                    progress=False,
                    **spec.settings,
                )
        except Exception as error:  # noqa: BLE001 (a fit that raises is counted and reported)
            run.skipped.append((r, f"{type(error).__name__}: {error}"[:300]))
            continue
        elapsed = time.perf_counter() - start
        compile_time = float(post.attrs.get("compile_time", 0.0))
        run.compile_seconds += compile_time
        run.fit_seconds.append(elapsed - compile_time)
        run.divergences.append(int(post.num_divergences))
        run.ess.append(min_bulk_ess(post, spec.parameters))
        for k in spec.parameters:
            draws = np.asarray(post.samples[k], np.float64)
            assert draws.shape[:2] == (NUM_CHAINS, spec.num_samples), draws.shape
            rk = ranks(truth[k].astype(np.float64), thin(draws, THINNED))
            for key, value in zip(element_names(k, truth[k].shape), rk):
                run.ranks.setdefault(key, []).append(int(value))
    return run


def report(name: str, run: Run, pvalues: dict[str, float], replications: int) -> str:
    spec = MODELS[name]
    fits = len(run.fit_seconds)
    transitions = fits * NUM_CHAINS * spec.num_samples
    ess = np.asarray(run.ess)
    lines = [
        (
            f"SBC {name}: {replications} replications, {len(run.skipped)} skipped, "
            f"{NUM_CHAINS} chains x ({NUM_WARMUP} + {spec.num_samples}), thinned to {THINNED}; "
            f"compile {run.compile_seconds:.1f} s, fit {np.mean(run.fit_seconds):.2f} s "
            f"(median {np.median(run.fit_seconds):.2f}, max {np.max(run.fit_seconds):.2f})"
        ),
        (
            f"  min bulk ESS per fit: 5% {np.quantile(ess, 0.05):.0f}, median "
            f"{np.median(ess):.0f}; fits below {THINNED}: {np.sum(ess < THINNED)}"
        ),
        (
            f"  divergent transitions: {sum(run.divergences)} of {transitions} "
            f"({sum(d > 0 for d in run.divergences)} fits with any)"
        ),
    ]
    threshold = LEVEL / len(pvalues)
    for key, p in pvalues.items():
        counts = bin_counts(np.asarray(run.ranks[key]), THINNED, BINS)
        flag = "  FAIL" if p < threshold else ""
        lines.append(f"  {key:<14} p = {p:.4f}  counts {counts.tolist()}{flag}")
    lines.append(f"  Bonferroni threshold {threshold:.2g} ({len(pvalues)} elements)")
    for r, message in run.skipped:
        lines.append(f"  skipped replication {r}: {message}")
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_ranks_are_uniform(name):
    run = replicate(name, REPLICATIONS)
    fits = len(run.fit_seconds)
    assert fits > 0, f"every fit of {name} raised: {run.skipped[:3]}"
    rank_table = {k: np.asarray(v) for k, v in run.ranks.items()}
    pvalues = uniformity_pvalues(rank_table)
    table = report(name, run, pvalues, REPLICATIONS)
    print(table)
    PLOT_DIR.mkdir(parents=True, exist_ok=True)
    plot_ranks(name, rank_table, pvalues, PLOT_DIR / f"sbc_{name}.png")
    np.savez(
        PLOT_DIR / f"sbc_{name}.npz",
        divergences=np.asarray(run.divergences),
        min_bulk_ess=np.asarray(run.ess),
        fit_seconds=np.asarray(run.fit_seconds),
        **{f"ranks {k}": v for k, v in rank_table.items()},
    )
    assert len(run.skipped) <= MAX_SKIPPED * REPLICATIONS, table
    transitions = fits * NUM_CHAINS * MODELS[name].num_samples
    assert sum(run.divergences) <= MAX_DIVERGENT * transitions, table
    failing = {k: p for k, p in pvalues.items() if p < LEVEL / len(pvalues)}
    assert not failing, f"rank histograms not uniform for {failing}\n{table}"


# ---------------------------------------------------------------------------------------------
# The machinery itself: exact posterior draws pass, slightly wrong ones are caught
# ---------------------------------------------------------------------------------------------


def conjugate_ranks(rng: np.random.Generator, replications: int, sd_factor: float, shift: float):
    """SBC ranks of ``mu ~ N(0, 1)``, ``y_i ~ N(mu, 1)`` (n = 10), posterior draws taken from the
    exact posterior with its sd multiplied by ``sd_factor`` and its mean moved by ``shift`` sds."""
    n = 10
    mu = rng.normal(size=replications)
    ybar = mu + rng.normal(size=replications) / np.sqrt(n)
    post_mean, post_sd = n * ybar / (n + 1), 1 / np.sqrt(n + 1)
    draws = post_mean[:, None] + post_sd * (
        shift + sd_factor * rng.normal(size=(replications, THINNED))
    )
    return np.sum(draws < mu[:, None], axis=1)


@pytest.mark.slow
def test_the_rank_test_passes_exact_draws_and_catches_wrong_ones():
    rng = np.random.default_rng(0)
    exact = [
        chi_square_pvalue(bin_counts(conjugate_ranks(rng, 200, 1.0, 0.0), THINNED, BINS))
        for _ in range(200)
    ]
    # under the null the p-values are uniform: about 1% of them below 0.01
    assert np.mean(np.asarray(exact) < 0.01) < 0.04
    assert stats.kstest(exact, "uniform").pvalue > 1e-3
    # 200 replications detect a posterior 40% too narrow, 50% too wide or off by 0.7 sd (each
    # at p < 0.001 in 94-100% of runs; 30% too narrow in 80%, 30% too wide in 40%)
    for sd_factor, shift in [(0.6, 0.0), (1.5, 0.0), (1.0, 0.7)]:
        p = chi_square_pvalue(
            bin_counts(conjugate_ranks(rng, 200, sd_factor, shift), THINNED, BINS)
        )
        assert p < 0.001, (sd_factor, shift, p)
    # thinning keeps evenly spaced draws across both chains
    draws = np.arange(2 * 150).reshape(2, 150)
    kept = thin(draws, THINNED)
    assert kept.shape == (THINNED,) and kept[0] == 0 and kept[-1] == 299
    assert np.all(np.diff(kept) >= 3)
    assert ranks(np.array(2.5), np.arange(5.0)).tolist() == [3]
