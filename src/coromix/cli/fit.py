"""``coromix fit MODEL.py --data DATA.csv``: a user's model file fitted to a CSV, with outputs.

The model file
--------------
``MODEL.py`` defines a generator function ``model(data)``.  ``data`` is a read-only mapping
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
Blank lines and lines starting with ``#`` (notes on the source) are skipped.

Outputs (in ``--out``, by default a new folder ``coromix-fit-YYYYmmdd-HHMMSS`` under the current
directory): ``posterior.nc`` (ArviZ NetCDF, :meth:`coromix.Posterior.save`), ``summary.csv``
(:meth:`coromix.Posterior.summary`), ``trace.png``, ``posterior.png`` and
``posterior_predictive.png`` (each observed column against replicated data sets drawn from the model
at posterior draws).  With ``--map``: ``map.csv`` (parameter, value) only.

Problems with the files, the data or the model are raised as :class:`FitError`, whose message is
one line; when the user's code raised, ``details`` holds the traceback restricted to the model file.
"""

from __future__ import annotations

import csv
import functools
import inspect
import math
import sys
import time
import traceback
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

import coromix as cm
from coromix import _arviz
from coromix.joint import JointDistributionCoroutine
from coromix.results import ConvergenceWarning

#: Posterior draws used for the posterior predictive plot (evenly spaced in each chain).
PREDICTIVE_DRAWS = 100
#: Random starting points of ``--map`` (the best optimum is kept).
MAP_RESTARTS = 8
# Offending rows named in an error message before the rest are only counted.
_ROWS_SHOWN = 10


class FitError(Exception):
    """A problem with the model file, the data or the model; the message is one line.

    ``details``: the user's traceback (frames of the model file only), printed before the message.
    """

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


# --- the data -----------------------------------------------------------------------------------


def read_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Column name -> 1-D array of the CSV at ``path`` (``int64`` if every value is an integer)."""
    path = Path(path)
    if not path.is_file():
        raise FitError(
            f"data file {path} not found"
            if not path.exists()
            else f"data file {path} is not a file"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise FitError(f"cannot read data file {path}: {err}") from None
    numbered = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise FitError(
            f"data file {path} is empty: expected a header line of column names, then "
            f"one line per data row"
        )
    records = list(csv.reader(line for _, line in numbered))
    header = [name.strip() for name in records[0]]
    if any(not name for name in header):
        raise FitError(
            f"data file {path}: the header line {numbered[0][0]} has an empty column "
            f"name: {records[0]}"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise FitError(f"data file {path}: column names appear twice in the header: {repeated}")
    rows = records[1:]
    if not rows:
        raise FitError(f"data file {path} has a header ({', '.join(header)}) but no data rows")
    for row_number, (row, (line_number, _)) in enumerate(zip(rows, numbered[1:]), start=1):
        if len(row) != len(header):
            raise FitError(
                f"data file {path}: data row {row_number} (line {line_number}) has "
                f"{len(row)} values; the header has {len(header)} columns"
            )
    columns = {}
    problems = []
    for j, name in enumerate(header):
        column, bad = _parse_column([row[j].strip() for row in rows])
        if bad:
            shown = ", ".join(f"{i} ({value!r})" for i, value in bad[:_ROWS_SHOWN])
            more = f", ... ({len(bad)} rows in all)" if len(bad) > _ROWS_SHOWN else ""
            problems.append(f"column {name!r} in data rows {shown}{more}")
        columns[name] = column
    if problems:
        raise FitError(
            f"data file {path}: values that are not finite numbers (missing, NaN, "
            f"infinite or text; data rows counted from 1 after the header): "
            f"{'; '.join(problems)}"
        )
    return columns


def _parse_column(cells: list[str]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The column as integers if every cell is one, else as floats; and the cells that are neither
    (1-based row, text)."""
    try:
        return np.array([int(cell) for cell in cells], dtype=np.int64), []
    except (ValueError, OverflowError):
        pass
    values, bad = np.empty(len(cells)), []
    for i, cell in enumerate(cells):
        try:
            values[i] = float(cell)
        except ValueError:
            values[i] = np.nan
        if not math.isfinite(values[i]):
            bad.append((i + 1, cell))
    return values, bad


class _MissingColumn(KeyError):
    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


class Columns(Mapping):
    """The ``data`` given to ``model(data)``: column name -> 1-D array, read-only.

    Records which columns the model reads (``data[name]``, ``data.get(name)``, ``data.items()``);
    ``name in data`` and listing the names do not count as reading.
    """

    def __init__(self, columns: Mapping[str, np.ndarray], source: str):
        self._columns = {}
        for name, values in columns.items():
            values = np.array(values)
            values.flags.writeable = False
            self._columns[name] = values
        self.source = source
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._columns:
            raise _MissingColumn(
                f"the data ({self.source}) has no column {name!r}; its columns: "
                f"{', '.join(self._columns)}"
            )
        self.read.add(name)
        return self._columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        rows = len(next(iter(self._columns.values()))) if self._columns else 0
        return f"Columns({self.source}: {rows} rows of {', '.join(self._columns)})"


# --- the model file -----------------------------------------------------------------------------


def load_model(path: str | Path) -> Callable[[Mapping[str, np.ndarray]], Any]:
    """The generator function ``model(data)`` defined by the Python file at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FitError(
            f"model file {path} not found"
            if not path.exists()
            else f"model file {path} is not a file"
        )
    filename = str(path.resolve())
    module = types.ModuleType(f"coromix_fit_{path.stem}")
    module.__file__ = filename
    try:
        source = path.read_text(encoding="utf-8")
        code = compile(source, filename, "exec")
    except (OSError, UnicodeDecodeError) as err:
        raise FitError(f"cannot read model file {path}: {err}") from None
    except SyntaxError as err:
        details = "".join(traceback.format_exception_only(type(err), err))
        raise FitError(
            f"model file {path} is not valid Python: {err.msg} (line {err.lineno})", details
        ) from None
    # like `python MODEL.py`: modules beside the model file can be imported
    sys.path.insert(0, str(path.resolve().parent))
    sys.modules[module.__name__] = module
    try:
        exec(code, module.__dict__)  # noqa: S102 -- running the user's model file is the point
    except (Exception, SystemExit) as err:  # noqa: BLE001 -- any failure of user code is reported
        raise _user_error(err, filename, f"model file {path} raised on import") from None
    finally:
        sys.path.remove(str(path.resolve().parent))
    model = module.__dict__.get("model")
    if model is None:
        found = [
            name for name, value in module.__dict__.items() if inspect.isgeneratorfunction(value)
        ]
        hint = f" (its generator functions: {', '.join(found)})" if found else ""
        raise FitError(
            f"model file {path} defines no `model`{hint}; define a generator function "
            f"`def model(data):` that yields the model's distributions"
        )
    if isinstance(model, JointDistributionCoroutine) or not inspect.isgeneratorfunction(model):
        raise FitError(
            f"`model` in {path} is a {type(model).__name__}, not a generator function; "
            f"define `def model(data):` whose body yields distributions"
        )
    try:
        inspect.signature(model).bind(None)
    except TypeError:
        raise FitError(
            f"`model` in {path} must take one argument, the data (column name -> "
            f"array); its signature is model{inspect.signature(model)}"
        ) from None
    return model


def _user_error(err: BaseException, filename: str, what: str) -> FitError:
    """A FitError for an exception raised by user code: its frames in ``filename`` as details."""
    frames = [
        frame for frame in traceback.extract_tb(err.__traceback__) if frame.filename == filename
    ]
    kind = "KeyError" if isinstance(err, _MissingColumn) else type(err).__name__
    message = str(err).strip()
    summary = f"{kind}: {message.splitlines()[0]}" if message else kind
    if not frames:
        return FitError(f"{what}: {summary}")
    details = (
        "Traceback (most recent call last, frames in the model file):\n"
        + "".join(traceback.format_list(frames))
        + (f"{kind}: {message}" if message else kind)
        + "\n"
    )
    return FitError(f"{what} ({summary}; traceback above)", details)


class _UserCode:
    """Runs steps that execute the user's model, turning their exceptions into FitError."""

    def __init__(self, filename: str, model_path: str):
        self.filename, self.model_path = filename, model_path

    def __call__(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except FitError:
            raise
        except Exception as err:  # noqa: BLE001 -- any failure of user code is reported
            raise _user_error(
                err, self.filename, f"{what} model(data) from {self.model_path} failed"
            ) from None


# --- binding the model to the data --------------------------------------------------------------


class Bound:
    """A model bound to its data: the joint distribution, observed values, and the split of the
    model's variables into observed, continuous parameters and discrete (summed out) ones."""

    def __init__(
        self, jd: JointDistributionCoroutine, columns: Columns, observed: dict[str, np.ndarray]
    ):
        self.jd, self.columns, self.observed = jd, columns, observed
        self.parameters = list(jd.pin(observed).parameter_shapes)
        self.discrete = [
            k for k in jd.variable_names if k not in observed and k not in self.parameters
        ]
        self.covariates = [k for k in columns if k not in observed and k in columns.read]


def bind(
    model: Callable[[Mapping[str, np.ndarray]], Any],
    data: Mapping[str, np.ndarray],
    source: str = "the CSV",
) -> Bound:
    """Bind ``model(data)`` to the columns: observed = columns named like variables (see module
    docstring). Exceptions of the model propagate; a mismatch of columns and model is a FitError."""
    columns = Columns(data, source)
    jd = JointDistributionCoroutine(
        functools.partial(model, columns), name=getattr(model, "__name__", "model")
    )
    shapes = jd.event_shapes()
    listing = ", ".join(f"{k} {tuple(v.shape)}" for k, v in shapes.items())
    observed_names = [name for name in columns if name in shapes]
    if not observed_names:
        raise FitError(
            f"none of the columns of {source} ({', '.join(columns)}) is a variable of "
            f"the model (its variables: {listing}); name each observed variable like "
            f"its column"
        )
    unused = [name for name in columns if name not in shapes and name not in columns.read]
    if unused:
        raise FitError(
            f"column(s) {', '.join(map(repr, unused))} of {source} neither name a "
            f"variable of the model (its variables: {listing}) nor are read by it "
            f"(data[...]); use them or remove them from the CSV"
        )
    rows = len(next(iter(data.values())))
    for name in observed_names:
        if tuple(shapes[name].shape) != (rows,):
            raise FitError(
                f"variable {name!r} has shape {tuple(shapes[name].shape)} in one draw "
                f"of the model, but its column in {source} has {rows} rows; a model "
                f"describes the whole data set, so an observed variable needs shape "
                f"({rows},) (e.g. a batch of {rows} distributions)"
            )
    observed = {name: np.asarray(data[name]) for name in observed_names}
    bound = Bound(jd, columns, observed)
    if not bound.parameters:
        raise FitError(
            f"the model has no continuous variable left to infer (its variables: "
            f"{listing}; observed: {', '.join(observed)}); coromix fit samples the "
            f"continuous parameters of a model"
        )
    return bound


# --- the command --------------------------------------------------------------------------------


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

    Returns ``{"out": folder, "files": [...], "posterior": Posterior}`` (``"map"`` instead of
    ``"posterior"`` with ``use_map``).  Raises :class:`FitError` on any problem with the inputs.
    """
    for name, value, least in [
        ("--chains", chains, 1),
        ("--warmup", warmup, 0),
        ("--samples", samples, 1),
    ]:
        if value < least:
            raise FitError(f"{name} must be at least {least}; got {value}")
    start = time.perf_counter()
    folder = Path(out) if out else _fresh_folder(Path.cwd())
    if folder.exists() and not folder.is_dir():
        raise FitError(f"--out {folder} is a file, not a folder")
    model = load_model(model_path)
    columns = read_csv(data_path)
    user = _UserCode(str(Path(model_path).resolve()), model_path)
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


def _fresh_folder(parent: Path) -> Path:
    base = parent / time.strftime("coromix-fit-%Y%m%d-%H%M%S")
    folder, suffix = base, 1
    while folder.exists():
        suffix += 1
        folder = base.with_name(f"{base.name}-{suffix}")
    return folder


def _fit_map(bound: Bound, folder: Path, seed: int, user: _UserCode) -> dict[str, Any]:
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
    user: _UserCode,
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
        _arviz.plot(kind, post.samples, folder / name)
    _plot_predictive(folder / "posterior_predictive.png", bound.observed, replicated)
    files = [
        "posterior.nc",
        "summary.csv",
        "trace.png",
        "posterior.png",
        "posterior_predictive.png",
    ]
    return {"posterior": post, "files": files}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_predictive(
    path: Path, observed: Mapping[str, np.ndarray], replicated: Mapping[str, np.ndarray]
) -> None:
    """Per observed column: its histogram and those of data sets replicated at posterior draws."""
    plt = _pyplot()
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
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
