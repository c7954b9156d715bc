"""The one place coromix talks to ArviZ: supporting another ArviZ version touches this file only.

Everything here takes and returns plain data: a *group* is a dict name -> NumPy array, with leading
``(chain, draw)`` dims except in ``observed_data``.  Written against ArviZ 0.x (``InferenceData``).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import arviz as az
    import pandas as pd
    from matplotlib.figure import Figure

Group = Mapping[str, np.ndarray]


def _az():
    """ArviZ, imported on first use: it takes about a second, which ``import coromix`` should not."""
    import arviz

    return arviz


def import_in_background() -> None:
    """Start importing ArviZ on a daemon thread, so that a fit's diagnostics do not wait for it.

    ``cm.nuts`` calls this before compiling: XLA compiles and samples without Python's global
    interpreter lock, so the import (about 2 s with xarray and pandas) overlaps them.  A later
    :func:`_az` waits for a half-done import on Python's module lock.
    """
    import sys
    import threading

    if "arviz" not in sys.modules:
        threading.Thread(target=_az, name="coromix-import-arviz", daemon=True).start()


_UNSAMPLED_GROUPS = ("observed_data", "constant_data", "predictions_constant_data")


# Group attribute recording the variables' order (NetCDF files list them by name).
_ORDER = "variable_order"


def _dataset(
    group: str, data: Group, dims: Mapping[str, list[str]] | None, attrs: Mapping[str, Any]
):
    attrs = {**attrs, _ORDER: json.dumps(list(data))}
    if group in _UNSAMPLED_GROUPS:
        dataset = _az().dict_to_dataset(dict(data), attrs=attrs, dims=dims, default_dims=[])
    else:
        dataset = _az().dict_to_dataset(dict(data), attrs=attrs, dims=dims)
    return dataset[list(data)]  # ArviZ sorts the variables by name; keep the model's order


def inference_data(
    groups: Mapping[str, Group],
    *,
    dims: Mapping[str, Mapping[str, list[str]]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> az.InferenceData:
    """An ``InferenceData`` with one dataset per non-empty group (custom group names allowed).

    ``dims`` maps group -> variable -> names of the dims after ``(chain, draw)``; variables not
    listed get ArviZ's default names ``{name}_dim_{i}``.  ``attrs`` go on every group.

    >>> import numpy as np
    >>> idata = inference_data(
    ...     {"posterior": {"mu": np.zeros((2, 5, 3))}, "sample_stats": {}},
    ...     dims={"posterior": {"mu": ["component"]}},
    ... )
    >>> idata.groups(), dict(idata.posterior["mu"].sizes)
    (['posterior'], {'chain': 2, 'draw': 5, 'component': 3})
    """
    dims = dims or {}
    datasets = {
        group: _dataset(group, _flat(data), dims.get(group), attrs or {})
        for group, data in groups.items()
        if data
    }
    return _az().InferenceData(**datasets)


def _flat(data: Mapping[str, Any]) -> dict[str, Any]:
    """A variable whose value is a mapping (several observations of a regime step) becomes one
    variable per entry, named ``{variable}.{entry}``."""
    out = {}
    for name, value in data.items():
        if isinstance(value, Mapping):
            out.update({f"{name}.{part}": v for part, v in value.items()})
        else:
            out[name] = value
    return out


def to_netcdf(idata: az.InferenceData, path: str | os.PathLike[str]) -> None:
    """Write ``idata`` to a NetCDF file, read back by :func:`read_netcdf`.

    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "fit.nc"
    >>> to_netcdf(inference_data({"posterior": {"b": np.zeros((1, 2)), "a": np.ones((1, 2))}}), path)
    >>> groups, attrs = read_netcdf(path)
    >>> list(groups["posterior"])                   # the order written, not ArviZ's sorted one
    ['b', 'a']
    """
    idata.to_netcdf(str(path))


def read_netcdf(
    path: str | os.PathLike[str],
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Every group of a NetCDF file written by :func:`to_netcdf`, and the posterior's attributes.

    group -> name -> array, each group's variables in the order they were written.  Example: see
    :func:`to_netcdf`.
    """
    idata = _az().from_netcdf(str(path))
    groups = {}
    for group in idata.groups():
        dataset = idata[group]
        names = list(dataset.data_vars)
        if _ORDER in dataset.attrs:
            names = [n for n in json.loads(dataset.attrs[_ORDER]) if n in names]
        groups[group] = {name: np.asarray(dataset[name].values) for name in names}
    attrs = dict(idata["posterior"].attrs) if "posterior" in idata.groups() else {}
    attrs.pop(_ORDER, None)
    return groups, attrs


def summary(samples: Group, **kwargs: Any) -> pd.DataFrame:
    """``arviz.summary`` of draws ``(chain, draw, ...)``: mean, sd, HDI, MCSE, ESS, R-hat.

    Rows by variable in the order of ``samples`` (ArviZ sorts them by name).

    >>> import numpy as np
    >>> draws = {"z": np.zeros((2, 10)), "a": np.arange(20.0).reshape(2, 10)}
    >>> list(summary(draws, kind="stats").index)
    ['z', 'a']
    """
    table = _az().summary(inference_data({"posterior": samples}), **kwargs)
    # rows ``name`` or ``name[i, ...]``, by variable in the order of ``samples`` (model order)
    position = {name: i for i, name in enumerate(samples)}
    rows = sorted(
        range(len(table)),
        key=lambda i: position.get(str(table.index[i]).split("[")[0], len(position)),
    )
    return table.iloc[rows]


def worst_diagnostics(samples: Group) -> dict[str, tuple[float, float]]:
    """Per variable: the largest rank-normalized R-hat and the smallest bulk ESS over its elements.

    R-hat is NaN with a single chain; elements with no spread (NaN diagnostics) are ignored.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2, 500, 3))
    >>> rhat, ess = worst_diagnostics({"x": x})["x"]
    >>> bool(rhat < 1.01), bool(ess > 500)
    (True, True)
    """
    posterior = inference_data({"posterior": samples})["posterior"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns on shapes it finds odd (few draws, one chain)
        rhat = _az().rhat(posterior) if _num_chains(samples) > 1 else None
        ess = _az().ess(posterior, method="bulk")
    out = {}
    for name in samples:
        r = np.asarray(rhat[name]) if rhat is not None else np.array([np.nan])
        e = np.asarray(ess[name])
        out[name] = (
            float(np.nanmax(r)) if np.any(np.isfinite(r)) else float("nan"),
            float(np.nanmin(e)) if np.any(np.isfinite(e)) else float("nan"),
        )
    return out


def _num_chains(samples: Group) -> int:
    return int(np.shape(next(iter(samples.values())))[0]) if samples else 0


def plot(kind: str, samples: Group) -> Figure:
    """The figure of ``az.plot_trace`` (``kind="trace"``) or ``az.plot_posterior`` of draws.

    ArviZ draws with pyplot's current backend: a caller that writes files selects one first (the
    command line does, in :mod:`coromix.cli.plots`), and closes the figure when done.

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> figure = plot("posterior", {"mu": np.random.default_rng(0).normal(size=(2, 50))})
    >>> len(figure.axes)
    1
    >>> plt.close(figure)
    """
    function = {"trace": _az().plot_trace, "posterior": _az().plot_posterior}[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns when it shows only the first 40 subplots
        axes = function(inference_data({"posterior": samples}), var_names=list(samples))
    return np.ravel(axes)[0].figure
