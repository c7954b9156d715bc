"""``coromix demo``: two fits on real data shipped with the package, with summaries and plots.

1. A mixture: Fisher's iris petals (length, width), three bivariate normal components with one
   shared covariance; the
   component of each flower is a batch-shaped Categorical summed out exactly during NUTS, and its
   posterior comes back afterwards (compared with the species).
2. Regime switching: quarterly US real GDP growth 1959-2009, a two-regime Markov-switching mean
   (Hamilton style) written as one step; the smoothed probability of the low-growth regime finds
   the recessions.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable, Generator
from importlib import resources
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

import coromix as cm
from coromix.cli import plots
from coromix.results import ConvergenceWarning

tfd = cm.distributions


def load_csv(name: str) -> tuple[list[str], np.ndarray]:
    """A data file shipped in ``coromix/data`` (``#`` lines are its source notes): the header, and
    the rows as an array of strings.

    >>> header, table = load_csv("iris_petals.csv")
    >>> header, table.shape, table[0]
    (['petal_length', 'petal_width', 'species'], (150, 3), array(['1.4', '0.2', 'setosa'], ...))
    """
    text = resources.files("coromix").joinpath("data", name).read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    header = lines[0].split(",")
    return header, np.array([line.split(",") for line in lines[1:]])


def _nuts(
    model: Callable[[], Generator],
    observed: dict[str, Any],
    chains: int,
    warmup: int,
    samples: int,
    seed: int,
    progress: bool,
) -> cm.Posterior:
    """``cm.nuts`` with its convergence warnings printed as plain lines, and the mode search."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        post = cm.nuts(
            model,
            observed=observed,
            num_chains=chains,
            num_warmup=warmup,
            num_samples=samples,
            seed=seed,
            progress=progress,
        )
    attrs = post.attrs
    if "search_climbs" in attrs:
        print(
            f"start: {attrs['search_climbs']} L-BFGS climbs, {attrs['search_climbs_below']} "
            f"ended in minor modes (more than 1 nat below the best, log density "
            f"{attrs['search_best_lp']:.1f}); every chain starts around the best"
        )
    for warning in caught:
        print(f"warning: {warning.message}")
    return post


# --- the mixture --------------------------------------------------------------------------------


def iris_model(x: np.ndarray) -> Callable[[], Generator]:
    """Three bivariate normal components sharing one covariance (as linear discriminant analysis,
    scikit-learn's ``covariance_type="tied"``); means ordered by petal length (no label switching).

    For the petals ``x_n`` (rows of ``x``, shape ``(N, 2)``)::

        w ~ Dirichlet(5, 5, 5),   z_n ~ Categorical(w),   x_n ~ N((length_z, width_z), S S^T)

    ``S`` lower triangular with the scales and correlation shared by the components.

    With a covariance per component the posterior has a second mode of real mass (versicolor and
    virginica overlap, and a broad, tilted middle component can take a share of either); chains
    move between the two only rarely, so R-hat and the effective sample size flag it.  The shared
    covariance has one mode.

    >>> jd = cm.distributions.JointDistributionCoroutine(iris_model(np.ones((5, 2))))
    >>> jd.variable_names
    ['weights', 'length', 'width', 'scale', 'corr', 'cluster', 'petals']
    """
    n = len(x)
    center = x.mean(0)

    def model():
        weights = yield tfd.Dirichlet(5.0 * jnp.ones(3))
        length = yield tfd.Ordered(tfd.Normal(jnp.full(3, center[0]), 3.0))
        width = yield tfd.Normal(jnp.full(3, center[1]), 2.0)
        scale = yield tfd.HalfNormal(0.5 * jnp.ones(2))
        corr = yield tfd.Uniform(-1.0, 1.0)
        loc = jnp.stack([length, width], -1)
        scale_tril = jnp.stack(
            [
                jnp.stack([scale[0], 0.0]),
                jnp.stack([corr * scale[1], jnp.sqrt(1 - corr**2) * scale[1]]),
            ]
        )
        cluster = yield tfd.Categorical(probs=jnp.broadcast_to(weights, (n, 3)))
        petals = yield tfd.MultivariateNormalTriL(loc[cluster], scale_tril)

    return model


def agreement(labels: np.ndarray, species: np.ndarray) -> float:
    """Share of flowers whose cluster matches their species, under the best relabelling.

    ``max_p mean_n [p(label_n) = species_n]`` over the permutations ``p`` of the species, coded
    in sorted order; as many clusters as species.

    >>> agreement(np.array([1, 1, 0, 0]), np.array(["a", "a", "b", "a"]))
    0.75
    """
    names = sorted(set(species))
    codes = np.array([names.index(s) for s in species])
    return float(
        max(
            np.mean(np.array(perm)[labels] == codes)
            for perm in itertools.permutations(range(len(names)))
        )
    )


def fit_iris(
    out: Path, chains: int, warmup: int, samples: int, seed: int, progress: bool
) -> dict[str, Any]:
    """Fit :func:`iris_model` to the iris petals with NUTS, print the summary and the agreement of
    the posterior clusters with the species, and draw ``iris_clusters.png`` into ``out``.

    Returns ``{"agreement": share, "posterior": Posterior}``.  A full NUTS fit (tens of seconds):
    ``fit_iris(Path("out"), chains=2, warmup=200, samples=200, seed=0, progress=False)``.
    """
    _, table = load_csv("iris_petals.csv")
    x = table[:, :2].astype(float)
    species = table[:, 2]
    print(f"\n== Mixture: iris petals ({len(x)} flowers, 3 bivariate normal components)")
    model, observed = iris_model(x), {"petals": jnp.asarray(x)}
    # a mixture posterior has minor modes (e.g. one broad component covering two species); the
    # default start climbs from 8 points and starts every chain around the highest end
    post = _nuts(model, observed, chains, warmup, samples, seed, progress)
    print(post.summary().round(3).to_string())
    resp = np.asarray(post.discrete_posterior()["cluster"]).mean(axis=(0, 1))  # (150, 3)
    labels = resp.argmax(-1)
    rate = agreement(labels, species)
    print(
        f"\nposterior cluster vs species: {100 * rate:.1f}% of flowers agree "
        f"(clusters ordered by petal length)"
    )
    _plot_iris(out / "iris_clusters.png", x, labels, post)
    return {"agreement": rate, "posterior": post}


def _plot_iris(path: Path, x: np.ndarray, labels: np.ndarray, post: cm.Posterior) -> None:
    plt = plots.pyplot()
    s = post.samples
    length, width = (np.asarray(s[k]).reshape(-1, 3).mean(0) for k in ("length", "width"))
    scale = np.broadcast_to(np.asarray(s["scale"]).reshape(-1, 2).mean(0), (3, 2))
    corr = np.broadcast_to(np.asarray(s["corr"]).reshape(-1).mean(), (3,))
    colors = ["tab:blue", "tab:orange", "tab:green"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for k in range(3):
        ax.scatter(*x[labels == k].T, s=14, color=colors[k], alpha=0.7, label=f"cluster {k}")
        cov = np.array(
            [
                [scale[k, 0] ** 2, corr[k] * scale[k, 0] * scale[k, 1]],
                [corr[k] * scale[k, 0] * scale[k, 1], scale[k, 1] ** 2],
            ]
        )
        values, vectors = np.linalg.eigh(cov)
        angle = np.linspace(0, 2 * np.pi, 100)
        for radius in (1.0, 2.0):  # 1 and 2 standard deviations
            circle = radius * np.stack([np.cos(angle), np.sin(angle)]) * np.sqrt(values)[:, None]
            ellipse = vectors @ circle + np.array([[length[k]], [width[k]]])
            ax.plot(*ellipse, color=colors[k], lw=1.2 if radius == 1 else 0.7)
    ax.set_xlabel("petal length (cm)")
    ax.set_ylabel("petal width (cm)")
    ax.set_title("Iris petals by posterior cluster; components at 1 and 2 sd")
    ax.legend(loc="upper left", fontsize=8)
    plots.save(fig, path, dpi=120)


# --- regime switching ---------------------------------------------------------------------------


def gdp_model(num_steps: int) -> Callable[[], Generator]:
    """Two regimes with their own mean growth (ordered: regime 0 = recession), one scale.

    Hamilton's Markov-switching mean: for quarters ``t = 1..T``::

        s_1 ~ Categorical(1/2, 1/2),   s_t | s_{t-1} ~ Categorical(P[s_{t-1}]),
        growth_t ~ N(mean[s_t], sigma),   P[k, k] = stay[k]

    >>> jd = cm.distributions.JointDistributionCoroutine(gdp_model(8))
    >>> jd.variable_names
    ['stay', 'mean', 'sigma', 'growth']
    """

    def model():
        stay = yield tfd.Beta(jnp.array([8.0, 8.0]), jnp.array([2.0, 2.0]))
        mean = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 2.0))
        sigma = yield tfd.HalfNormal(2.0)
        transition = jnp.stack(
            [jnp.stack([stay[0], 1 - stay[0]]), jnp.stack([1 - stay[1], stay[1]])]
        )

        def step(prev, inputs):
            regime = yield tfd.Categorical(
                probs=jnp.array([0.5, 0.5]) if prev is None else transition[prev.regime]
            )
            growth = yield tfd.Normal(mean[regime], sigma)

        growth = yield tfd.RegimeSwitching(step, num_steps=num_steps)

    return model


def fit_gdp(
    out: Path, chains: int, warmup: int, samples: int, seed: int, progress: bool
) -> dict[str, Any]:
    """Fit :func:`gdp_model` to US real GDP growth with NUTS, print the summary and the quarters
    whose smoothed recession probability exceeds 1/2, and draw ``gdp_regimes.png`` into ``out``.

    Returns ``{"recession_quarters": ["1974Q4", ...], "posterior": Posterior}``.  A full NUTS fit
    (tens of seconds), called as :func:`fit_iris` is.
    """
    _, table = load_csv("us_gdp_growth.csv")
    year, quarter = table[:, 0].astype(int), table[:, 1].astype(int)
    growth = table[:, 2].astype(float)
    print(
        f"\n== Regime switching: US real GDP growth, {year[0]}Q{quarter[0]}-"
        f"{year[-1]}Q{quarter[-1]} ({len(growth)} quarters, 2-regime switching mean)"
    )
    post = _nuts(
        gdp_model(len(growth)),
        {"growth": jnp.asarray(growth)},
        chains,
        warmup,
        samples,
        seed,
        progress,
    )
    print(post.summary().round(3).to_string())
    s = post.samples
    mean = np.asarray(s["mean"]).reshape(-1, 2).mean(0)
    stay = np.asarray(s["stay"]).reshape(-1, 2).mean(0)
    print(
        f"\nregime 0 (recession): mean growth {mean[0]:.2f}% per quarter, stays with "
        f"probability {stay[0]:.2f}; regime 1 (expansion): {mean[1]:.2f}%, stays {stay[1]:.2f}"
    )
    recession = np.asarray(post.discrete_posterior()["growth_regime"]).mean(axis=(0, 1))[:, 0]
    quarters = [f"{y}Q{q}" for y, q, p in zip(year, quarter, recession) if p > 0.5]
    print("quarters with recession probability > 0.5:")
    for line in range(0, len(quarters), 10):
        print("  " + " ".join(quarters[line : line + 10]))
    _plot_gdp(out / "gdp_regimes.png", year + (quarter - 1) / 4, growth, recession)
    return {"recession_quarters": quarters, "posterior": post}


def _plot_gdp(path: Path, when: np.ndarray, growth: np.ndarray, recession: np.ndarray) -> None:
    plt = plots.pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    top.plot(when, growth, color="black", lw=0.9)
    top.axhline(0, color="grey", lw=0.5)
    top.set_ylabel("real GDP growth (%/quarter)")
    top.set_title("US real GDP growth and the smoothed probability of the recession regime")
    bottom.fill_between(when, recession, color="tab:red", alpha=0.5, step="mid")
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("P(recession)")
    bottom.set_xlabel("year")
    for ax in (top, bottom):
        ax.fill_between(
            when,
            0,
            1,
            where=recession > 0.5,
            transform=ax.get_xaxis_transform(),
            color="tab:red",
            alpha=0.1,
            step="mid",
        )
    plots.save(fig, path, dpi=120)


def run(
    out: str | None = None,
    chains: int = 4,
    warmup: int = 500,
    samples: int = 500,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Both fits; returns their headline results. Writes the plots into ``out``.

    ``out`` defaults to a new folder ``coromix-demo-YYYYmmdd-HHMMSS`` under the current
    directory.  Returns ``{"iris": ..., "gdp": ..., "out": folder}`` (see :func:`fit_iris`,
    :func:`fit_gdp`).  ``coromix demo`` runs it; about a minute with the defaults, e.g.
    ``run("demo-out", chains=2, warmup=200, samples=200, progress=False)``.
    """
    start = time.perf_counter()
    folder = Path(out) if out else Path.cwd() / time.strftime("coromix-demo-%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"coromix {cm.__version__} demo: {chains} chains x ({warmup} warmup + {samples} draws) "
        f"of NUTS per model"
    )
    iris = fit_iris(folder, chains, warmup, samples, seed, progress)
    gdp = fit_gdp(folder, chains, warmup, samples, seed, progress)
    print(f"\nplots written to {folder}/: iris_clusters.png, gdp_regimes.png")
    print(f"total time {time.perf_counter() - start:.0f} s")
    return {"iris": iris, "gdp": gdp, "out": folder}
