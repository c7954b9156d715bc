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
