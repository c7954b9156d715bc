"""The one matplotlib setup of the command line: ``coromix fit`` and ``coromix demo`` draw here.

The commands write figures to files and never show them, so :func:`pyplot` selects the
non-interactive ``Agg`` backend before pyplot is used (also on machines with no display), and
:func:`save` lays a figure out, writes it and closes it.  matplotlib is imported on first use
only: ``import coromix`` and ``import coromix.cli`` do not load it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from coromix.results import Posterior

#: The backend of every figure the command line draws (files only, no window).
BACKEND = "Agg"


def pyplot() -> ModuleType:
    """``matplotlib.pyplot``, with the :data:`BACKEND` selected.

    >>> plt = pyplot()
    >>> plt.get_backend().lower()
    'agg'
    """
    import matplotlib

    matplotlib.use(BACKEND)
    import matplotlib.pyplot as plt

    return plt


def save(figure: Figure, path: str | Path, dpi: int = 100) -> None:
    """Lay ``figure`` out tightly, write it to ``path`` (the format from the suffix) and close it.

    >>> import pathlib, tempfile
    >>> figure, ax = pyplot().subplots()
    >>> _ = ax.plot([0, 1], [1, 0])
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "line.png"
    >>> save(figure, path)
    >>> path.stat().st_size > 1000
    True
    """
    plt = pyplot()
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    plt.close(figure)


def arviz_plot(kind: str, posterior: Posterior, path: str | Path, dpi: int = 100) -> None:
    """Write ``az.plot_trace`` (``kind="trace"``) or ``az.plot_posterior`` of draws to a file.

    The figure is :meth:`coromix.Posterior.plot`'s.

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> import coromix as cm
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "trace.png"
    >>> draws = {"mu": np.random.default_rng(0).normal(size=(2, 50))}
    >>> arviz_plot("trace", cm.Posterior(draws), path)
    >>> path.stat().st_size > 1000
    True
    """
    pyplot()  # the backend, before ArviZ imports pyplot
    figure = posterior.plot(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the layout of many small ArviZ panels may warn
        save(figure, path, dpi=dpi)


def predictive(
    path: str | Path, observed: Mapping[str, np.ndarray], replicated: Mapping[str, np.ndarray]
) -> None:
    """Per observed column: its histogram and those of data sets replicated at posterior draws.

    ``observed``: name -> values ``(N,)``; ``replicated``: name -> replicas ``(R, N)``.  One panel
    per column: the density histogram of the data (black) over those of the ``R`` replicas (blue);
    integer columns get one bin per integer.

    Example:

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ppc.png"
    >>> predictive(path, {"y": rng.normal(size=50)}, {"y": rng.normal(size=(5, 50))})
    >>> path.stat().st_size > 1000
    True
    """
    plt = pyplot()
    figure, axes = plt.subplots(len(observed), 1, figsize=(7, 3.2 * len(observed)), squeeze=False)
    for ax, (name, values) in zip(axes[:, 0], observed.items()):
        draws = replicated[name]
        low, high = np.quantile(np.concatenate([values.ravel(), draws.ravel()]), [0.005, 0.995])
        low, high = min(low, values.min()), max(high, values.max())
        if np.issubdtype(values.dtype, np.integer):
            bins = np.arange(np.floor(low), np.ceil(high) + 2) - 0.5
        else:
            bins = np.histogram_bin_edges(values, bins="auto", range=(low, high))
        for i, draw in enumerate(draws):
            density, _ = np.histogram(draw, bins=bins, density=True)
            ax.stairs(
                density,
                bins,
                color="tab:blue",
                alpha=0.12,
                lw=0.8,
                label=f"replicated ({len(draws)} posterior draws)" if i == 0 else None,
            )
        density, _ = np.histogram(values, bins=bins, density=True)
        ax.stairs(density, bins, color="black", lw=1.8, label="observed")
        ax.set_xlabel(name)
        ax.set_ylabel("density")
        ax.set_title(f"{name}: observed vs posterior predictive")
        ax.legend(fontsize=8)
    save(figure, path, dpi=110)


def fan_chart(
    path: str | Path,
    observed: np.ndarray,
    predictive: np.ndarray,
    regime_probs: np.ndarray,
    *,
    time: np.ndarray | None = None,
    history_probs: np.ndarray | None = None,
    regime_names: list[str] | None = None,
    show_last: int | None = None,
    ylabel: str = "value",
    title: str = "forecast",
    dpi: int = 110,
) -> None:
    """A forecast fan chart: the series, its predictive bands, and the regime probabilities below.

    ``observed``: the series ``(T,)``; ``predictive``: draws of the next ``h`` values
    ``(..., h)`` (e.g. ``Posterior.forecast``'s ``(chain, draw, h)``); ``regime_probs``:
    ``p(s_{T+j} = k)`` per draw ``(..., h, K)``.  Top panel: the series (black), the median of
    the draws and their central 50% and 90% intervals per step.  Bottom panel: the mean over the
    draws of each regime's probability with its 5-95% range over the draws, after
    ``history_probs`` ``(T, K)`` (e.g. smoothed probabilities) if given.  ``time``: the ``x`` of
    the observations ``(T,)`` (steps ``0..T-1`` by default); the forecast continues at the same
    spacing.  ``show_last``: draw only the last that many observations.

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> probs = np.broadcast_to([0.3, 0.7], (100, 8, 2))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "fan.png"
    >>> fan_chart(path, rng.normal(size=40), rng.normal(size=(100, 8)), probs)
    >>> path.stat().st_size > 1000
    True
    """
    observed = np.asarray(observed, dtype=float).reshape(-1)
    h = np.shape(predictive)[-1]
    draws = np.asarray(predictive, dtype=float).reshape(-1, h)
    probs = np.asarray(regime_probs, dtype=float)
    if probs.shape[-2] != h:
        raise ValueError(
            f"fan_chart: regime_probs has shape {probs.shape}, expected (..., {h}, K) to match "
            f"the {h} steps of predictive (shape {np.shape(predictive)})"
        )
    probs = probs.reshape(-1, h, probs.shape[-1])
    K = probs.shape[-1]
    when = np.arange(len(observed), dtype=float) if time is None else np.asarray(time, float)
    spacing = when[-1] - when[-2] if len(when) > 1 else 1.0
    future = when[-1] + spacing * np.arange(1, h + 1)
    keep = slice(None) if show_last is None else slice(-show_last, None)
    names = regime_names or [f"regime {k}" for k in range(K)]
    colors = [f"C{k}" for k in range(K)]

    plt = pyplot()
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 5.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    top.plot(when[keep], observed[keep], color="black", lw=1.0, label="observed")
    joined = np.concatenate([when[-1:], future])  # the bands start at the last observation
    q = np.quantile(draws, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    q = np.concatenate([np.full((5, 1), observed[-1]), q], axis=1)
    top.fill_between(joined, q[0], q[4], color="tab:blue", alpha=0.2, lw=0, label="90%")
    top.fill_between(joined, q[1], q[3], color="tab:blue", alpha=0.4, lw=0, label="50%")
    top.plot(joined, q[2], color="tab:blue", lw=1.5, label="median")
    top.axvline(when[-1], color="grey", lw=0.6, ls="--")
    top.set_ylabel(ylabel)
    top.set_title(title)
    top.legend(loc="upper left", fontsize=8, ncol=4)
    mean = probs.mean(0)
    low, high = np.quantile(probs, [0.05, 0.95], axis=0)
    for k in range(K):
        x, line = future, mean[:, k]
        if history_probs is not None:
            past = np.asarray(history_probs, dtype=float)[:, k]
            bottom.plot(when[keep], past[keep], color=colors[k], lw=0.9)
            x, line = joined, np.concatenate([past[-1:], line])
        bottom.plot(x, line, color=colors[k], lw=1.5, label=names[k])
        bottom.fill_between(future, low[:, k], high[:, k], color=colors[k], alpha=0.2, lw=0)
    bottom.axvline(when[-1], color="grey", lw=0.6, ls="--")
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("regime probability")
    bottom.legend(loc="upper left", fontsize=8, ncol=K)
    save(figure, path, dpi=dpi)
