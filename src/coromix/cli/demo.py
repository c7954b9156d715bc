"""``coromix demo``: two fits on real data shipped with the package, with summaries and plots.

1. A mixture: Fisher's iris petals (length, width), three bivariate normal components with one
   shared covariance; the
   component of each flower is a batch-shaped Categorical summed out exactly during NUTS, and its
   posterior comes back afterwards (compared with the species).
2. Regime switching: quarterly US real GDP growth 1959-2009, a two-regime Markov-switching mean
   (Hamilton style) written as one step; the smoothed probability of the low-growth regime finds
   the recessions (drawn beside the NBER's dates), and ``Posterior.forecast`` gives the next eight
   quarters' recession probability and growth.
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

#: US recessions as the NBER's Business Cycle Dating Committee dates them (peak and trough
#: quarters, https://www.nber.org/research/data/us-business-cycle-expansions-and-contractions),
#: those within the demo's data, 1959Q2-2009Q3.
NBER_RECESSIONS = (
    ("1960Q2", "1961Q1"),
    ("1969Q4", "1970Q4"),
    ("1973Q4", "1975Q1"),
    ("1980Q1", "1980Q3"),
    ("1981Q3", "1982Q4"),
    ("1990Q3", "1991Q1"),
    ("2001Q1", "2001Q4"),
    ("2007Q4", "2009Q2"),
)

#: Quarters of growth forecast past the data.
FORECAST_QUARTERS = 8


def quarter_index(label: str) -> int:
    """Quarters since 0000Q1 of a label ``"YYYYQn"`` (consecutive quarters differ by one).

    >>> quarter_index("1960Q2") - quarter_index("1959Q4"), quarter_label(quarter_index("2009Q4") + 1)
    (2, '2010Q1')
    """
    year, quarter = label.split("Q")
    return 4 * int(year) + int(quarter) - 1


def quarter_label(index: int) -> str:
    """The label ``"YYYYQn"`` of :func:`quarter_index` ``index``.

    >>> quarter_label(4 * 2009 + 3)
    '2009Q4'
    """
    return f"{index // 4}Q{index % 4 + 1}"


def nber_recession(quarters: list[str]) -> np.ndarray:
    """Whether each quarter is in an NBER recession: after a peak, up to and including the trough
    (the convention of FRED's ``USRECQ``).

    >>> nber_recession(["1960Q2", "1960Q3", "1961Q1", "1961Q2"]).tolist()
    [False, True, True, False]
    """
    index = np.array([quarter_index(q) for q in quarters])
    inside = np.zeros(len(quarters), bool)
    for peak, trough in NBER_RECESSIONS:
        inside |= (index > quarter_index(peak)) & (index <= quarter_index(trough))
    return inside


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
    whose smoothed recession probability exceeds 1/2, and draw ``gdp_regimes.png`` (NBER
    recessions shaded) into ``out``.

    Also compares the quarters above 1/2 with the NBER's recession dates, prints the forecast of
    the next quarters (:func:`forecast_gdp`) and draws its fan chart ``gdp_forecast.png``.

    Returns ``{"recession_quarters": ["1974Q4", ...], "forecast": ..., "posterior": Posterior}``.
    A full NUTS fit (tens of seconds), called as :func:`fit_iris` is.
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
    labels = [f"{y}Q{q}" for y, q in zip(year, quarter)]
    quarters = [label for label, p in zip(labels, recession) if p > 0.5]
    print("quarters with recession probability > 0.5:")
    for line in range(0, len(quarters), 10):
        print("  " + " ".join(quarters[line : line + 10]))
    nber = nber_recession(labels)
    found = recession > 0.5
    print(
        f"\nvs the NBER's dates: {np.sum(found & nber)} of the {np.sum(nber)} NBER recession "
        f"quarters have probability > 0.5; {np.sum(found & ~nber)} of the {np.sum(found)} "
        f"quarters above 0.5 fall outside them"
    )
    ahead = forecast_gdp(post, labels[-1], seed)
    _plot_gdp(out / "gdp_regimes.png", year + (quarter - 1) / 4, growth, recession)
    when = year + (quarter - 1) / 4
    history = np.stack([recession, 1 - recession], -1)
    plots.fan_chart(
        out / "gdp_forecast.png",
        growth,
        ahead["growth"],
        ahead["growth_regime"],
        time=when,
        history_probs=history,
        regime_names=["recession", "expansion"],
        show_last=40,
        ylabel="real GDP growth (%/quarter)",
        title=f"US real GDP growth: the last 10 years and the next {FORECAST_QUARTERS} quarters",
    )
    return {"recession_quarters": quarters, "forecast": ahead, "posterior": post}


def forecast_gdp(post: cm.Posterior, last: str, seed: int) -> dict[str, np.ndarray]:
    """Print the next :data:`FORECAST_QUARTERS` quarters' recession probability and growth.

    From :meth:`coromix.Posterior.forecast`: per quarter after ``last`` (the data's last quarter),
    ``P(recession)`` (the regime probability averaged over the draws), the median growth and
    the central 90% interval of the predictive draws.  Also the expected duration of each
    regime, ``1 / (1 - stay[k])`` (geometric), its posterior median.  Returns the forecast
    (``growth`` ``(chain, draw, h)``, ``growth_regime`` ``(chain, draw, h, 2)``,
    ``growth_regime_duration`` ``(chain, draw, 2)``).  Called by :func:`fit_gdp`.
    """
    ahead = post.forecast(FORECAST_QUARTERS, seed=seed)
    probs = np.asarray(ahead["growth_regime"]).reshape(-1, FORECAST_QUARTERS, 2)[:, :, 0]
    draws = np.asarray(ahead["growth"]).reshape(-1, FORECAST_QUARTERS)
    low, median, high = np.quantile(draws, [0.05, 0.5, 0.95], axis=0)
    durations = np.median(np.asarray(ahead["growth_regime_duration"]).reshape(-1, 2), axis=0)
    print(
        f"\nexpected duration (posterior median): recession {durations[0]:.1f} quarters, "
        f"expansion {durations[1]:.1f} quarters"
    )
    print(f"forecast of the next {FORECAST_QUARTERS} quarters (growth in % per quarter):")
    print(f"{'quarter':>8} {'P(recession)':>13} {'median':>8} {'90% interval':>17}")
    start = quarter_index(last)
    for h in range(FORECAST_QUARTERS):
        print(
            f"{quarter_label(start + h + 1):>8} {probs[:, h].mean():>13.3f} {median[h]:>8.2f} "
            f"{f'[{low[h]:.2f}, {high[h]:.2f}]':>17}"
        )
    return ahead


def _plot_gdp(path: Path, when: np.ndarray, growth: np.ndarray, recession: np.ndarray) -> None:
    plt = plots.pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    top.plot(when, growth, color="black", lw=0.9)
    top.axhline(0, color="grey", lw=0.5)
    top.set_ylabel("real GDP growth (%/quarter)")
    top.set_title(
        "US real GDP growth and the smoothed probability of the recession regime\n"
        "(grey: NBER recessions, peak to trough)"
    )
    bottom.fill_between(when, recession, color="tab:red", alpha=0.5, step="mid")
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("P(recession)")
    bottom.set_xlabel("year")
    for ax in (top, bottom):
        for peak, trough in NBER_RECESSIONS:
            start, end = (quarter_index(q) / 4 for q in (peak, trough))
            ax.axvspan(start, end, color="grey", alpha=0.25, lw=0)
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
    warmup: int = 1000,
    samples: int = 1000,
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
    print(f"\nplots written to {folder}/: iris_clusters.png, gdp_regimes.png, gdp_forecast.png")
    print(f"total time {time.perf_counter() - start:.0f} s")
    return {"iris": iris, "gdp": gdp, "out": folder}
