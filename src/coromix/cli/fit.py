"""``coromix fit MODEL.py --data DATA.csv``: a user's model file fitted to a CSV, with outputs.

The model file
--------------
``MODEL.py`` is executed as Python code (as ``python MODEL.py`` would run it, with the user's
permissions: run only model files you trust) and defines a generator function ``model(data)``.  ``data`` is a read-only mapping
column name -> 1-D NumPy array (one entry per data row; integer columns as ``int64``, others as
``float64``), so the model can read sizes and covariates from it.  The model describes the WHOLE
data set (one draw of the model = one data set): its observed variables have shape ``(N,)``, N being
the number of rows, e.g. a batch-shaped ``Categorical`` per point or a ``RegimeSwitching`` series::

    import jax.numpy as jnp
    import coromix as cm
    tfd = cm.distributions

    def model(data):
        n = len(data["y"])
        weights = yield tfd.Dirichlet(2.0 * jnp.ones(2))
        mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 5.0))
        sigma = yield tfd.HalfNormal(2.0 * jnp.ones(2))
        z = yield tfd.Categorical(probs=jnp.broadcast_to(weights, (n, 2)))  # summed out
        y = yield tfd.Normal(mu[z], sigma[z])                                # the column `y`

Columns and variables
---------------------
* A column named like a variable of the model is OBSERVED: the variable takes the column as its
  value, and must have shape ``(N,)``.
* Every other column must be READ by the model as data (``data["x"]``, a covariate).  A column that
  is neither is an error, and so is a data set none of whose columns is a variable.
* Variables that are not observed are inferred: the continuous ones by NUTS (or MAP), the finite
  discrete ones summed out exactly (their posterior is in ``posterior.nc``).
* Multivariate observations (one variable spread over several columns) are not supported.

The CSV: a header line of column names, then one line per row, every value a finite number.
Lines starting with ``#`` (notes on the source) are skipped; an empty cell, or a blank line
between data rows, is a missing value, reported with its row (never dropped silently).

Outputs (in ``--out``, by default a new folder ``coromix-fit-YYYYmmdd-HHMMSS`` under the current
directory): ``posterior.nc`` (ArviZ NetCDF, :meth:`coromix.Posterior.save`), ``summary.csv``
(:meth:`coromix.Posterior.summary`), ``trace.png``, ``posterior.png`` and
``posterior_predictive.png`` (each observed column against replicated data sets drawn from the model
at posterior draws).  With ``--map``: ``map.csv`` (parameter, value) only.

Problems with the files, the data or the model are raised as
:class:`~coromix.cli.errors.FitError`, whose message is one line; when the user's code raised,
``details`` holds the traceback restricted to the model file.  Reading the CSV is
:mod:`coromix.cli.data`, running the model file :mod:`coromix.cli.user_files`, the figures
:mod:`coromix.cli.plots`.
"""

from __future__ import annotations

import csv
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import coromix as cm
from coromix.cli import plots
from coromix.cli.data import read_csv
from coromix.cli.errors import FitError
from coromix.cli.user_files import Bound, UserCode, bind, load_model
from coromix.results import ConvergenceWarning

#: Posterior draws used for the posterior predictive plot (evenly spaced in each chain).
PREDICTIVE_DRAWS = 100
#: Random starting points of ``--map`` (the best optimum is kept).
MAP_RESTARTS = 8


def run(
    model_path: str,
    data_path: str,
    out: str | None = None,
    *,
    chains: int = 4,
    warmup: int = 1000,
    samples: int = 1000,
    seed: int = 0,
    use_map: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit the model file to the CSV, write the outputs into ``out`` and print what was done.

    ``chains`` x (``warmup`` + ``samples``) NUTS draws (:func:`coromix.nuts`), or with
    ``use_map`` the posterior mode from :data:`MAP_RESTARTS` L-BFGS starts (:func:`coromix.map`);
    ``progress`` shows progress bars.  Returns ``{"out": folder, "files": [...], "posterior":
    Posterior}`` (``"map"`` instead of ``"posterior"`` with ``use_map``).  Raises
    :class:`~coromix.cli.errors.FitError` on any problem with the inputs, before anything is
    written.

    Example (a NUTS fit of a few seconds to a minute, as ``coromix fit`` runs it)::

        result = run("examples/fit_gmm.py", "examples/data/gmm.csv", "out",
                     chains=2, warmup=300, samples=300, progress=False)
        result["posterior"].summary()      # also in out/summary.csv

    >>> run("model.py", "data.csv", chains=0)
    Traceback (most recent call last):
    ...
    coromix.cli.errors.FitError: --chains must be at least 1; got 0
    """
    for name, value, least in [
        ("--chains", chains, 1),
        ("--warmup", warmup, 1),
        ("--samples", samples, 1),
    ]:
        if value < least:
            raise FitError(f"{name} must be at least {least}; got {value}")
    start = time.perf_counter()
    folder = Path(out) if out else _fresh_folder(Path.cwd())
    check_out(folder)
    model = load_model(model_path)
    columns = read_csv(data_path)
    user = UserCode(str(Path(model_path).resolve()), model_path)
    bound = user("running", lambda: bind(model, columns, source=str(data_path)))
    rows = len(next(iter(columns.values())))
    print(f"coromix {cm.__version__} fit: {model_path} on {data_path} ({rows} rows)")
    print(
        f"observed: {', '.join(bound.observed)}"
        + (f"; covariates: {', '.join(bound.covariates)}" if bound.covariates else "")
        + f"; parameters: {', '.join(bound.parameters) or '(none)'}"
        + (f"; summed out: {', '.join(bound.discrete)}" if bound.discrete else "")
    )
    if use_map:
        result = _fit_map(bound, folder, seed, user)
    else:
        result = _fit_nuts(bound, folder, chains, warmup, samples, seed, progress, user)
    print(f"\noutputs written to {folder}/: {', '.join(result['files'])}")
    print(f"total time {time.perf_counter() - start:.0f} s")
    return {"out": folder, **result}


def check_out(folder: Path) -> None:
    """Raise :class:`~coromix.cli.errors.FitError` unless the results can be written in
    ``folder``: a writable folder, or one that can be created (its nearest existing parent is a
    writable folder).  Checked before the fit, so that no fit is lost to a bad ``--out``.

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> check_out(folder / "new" / "results")
    >>> (folder / "notes.txt").write_text("a file")
    6
    >>> check_out(folder / "notes.txt" / "results")
    Traceback (most recent call last):
    ...
    coromix.cli.errors.FitError: --out .../notes.txt/results: cannot create it, .../notes.txt is a file, not a folder
    """
    if folder.exists():
        if not folder.is_dir():
            raise FitError(f"--out {folder} is a file, not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise FitError(f"--out {folder}: no permission to write in that folder")
        return
    parent = folder.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise FitError(f"--out {folder}: cannot create it, {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FitError(f"--out {folder}: cannot create it, no permission to write in {parent}")


def _fresh_folder(parent: Path) -> Path:
    base = parent / time.strftime("coromix-fit-%Y%m%d-%H%M%S")
    folder, suffix = base, 1
    while folder.exists():
        suffix += 1
        folder = base.with_name(f"{base.name}-{suffix}")
    return folder


def _fit_map(bound: Bound, folder: Path, seed: int, user: UserCode) -> dict[str, Any]:
    print(f"MAP: L-BFGS from {MAP_RESTARTS} random starting points, the best kept")
    estimate = user(
        "MAP of",
        lambda: cm.map(bound.jd, observed=bound.observed, num_restarts=MAP_RESTARTS, seed=seed),
    )
    table = [
        (label, float(value))
        for name, array in estimate.items()
        for label, value in _elements(name, np.asarray(array))
    ]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "map.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["parameter", "value"])
        writer.writerows((label, repr(value)) for label, value in table)
    width = max(len(label) for label, _ in table)
    print(f"log density at the mode: {estimate.log_density:.3f}")
    for label, value in table:
        print(f"  {label:<{width}}  {value: .4g}")
    return {"map": estimate, "files": ["map.csv"]}


def _elements(name: str, array: np.ndarray) -> Iterator[tuple[str, Any]]:
    """(``name[i, j]``, value) for each element, as ArviZ labels them; ``name`` for a scalar."""
    if array.ndim == 0:
        yield name, array
        return
    for index in np.ndindex(array.shape):
        yield f"{name}[{', '.join(map(str, index))}]", array[index]


def _fit_nuts(
    bound: Bound,
    folder: Path,
    chains: int,
    warmup: int,
    samples: int,
    seed: int,
    progress: bool,
    user: UserCode,
) -> dict[str, Any]:
    print(f"NUTS: {chains} chains x ({warmup} warmup + {samples} draws)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        post = user(
            "NUTS on",
            lambda: cm.nuts(
                bound.jd,
                observed=bound.observed,
                num_chains=chains,
                num_warmup=warmup,
                num_samples=samples,
                seed=seed,
                progress=progress,
            ),
        )
    summary = post.summary()
    print(summary.round(3).to_string(), flush=True)
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            print(f"coromix fit: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    per_chain = -(-PREDICTIVE_DRAWS // post.num_chains)
    replicated = user(
        "posterior predictive draws of",
        lambda: post.posterior_predictive(num_draws=per_chain, seed=seed),
    )
    replicated = {k: v.reshape((-1,) + v.shape[2:]) for k, v in replicated.items()}
    folder.mkdir(parents=True, exist_ok=True)
    post.save(str(folder / "posterior.nc"))
    summary.to_csv(folder / "summary.csv", index_label="parameter")
    for name, kind in [("trace.png", "trace"), ("posterior.png", "posterior")]:
        plots.arviz_plot(kind, post, folder / name)
    plots.predictive(folder / "posterior_predictive.png", bound.observed, replicated)
    files = [
        "posterior.nc",
        "summary.csv",
        "trace.png",
        "posterior.png",
        "posterior_predictive.png",
    ]
    return {"posterior": post, "files": files}
