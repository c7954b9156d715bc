"""Running the user's model file for ``coromix fit``: loading it, and binding ``model(data)``.

``MODEL.py`` defines a generator function ``model(data)`` (see :mod:`coromix.cli.fit` for the
convention).  :func:`load_model` runs the file as ``python MODEL.py`` would (modules beside it can
be imported) and returns ``model``; :func:`bind` turns ``model(data)`` into a joint distribution
and splits its variables into observed columns, continuous parameters and summed-out discrete
ones.  Exceptions raised by the user's code become a :class:`~coromix.cli.errors.FitError` whose
``details`` hold the traceback restricted to the model file (:class:`UserCode`).
"""

from __future__ import annotations

import functools
import inspect
import sys
import traceback
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from coromix.cli.data import Columns, MissingColumn
from coromix.cli.errors import FitError
from coromix.joint import JointDistributionCoroutine

# --- the model file -----------------------------------------------------------------------------


def load_model(path: str | Path) -> Callable[[Mapping[str, np.ndarray]], Any]:
    """The generator function ``model(data)`` defined by the Python file at ``path``.

    The file runs as ``python MODEL.py`` would (modules beside it can be imported).  Raises
    :class:`~coromix.cli.errors.FitError` when the file is missing, is not valid Python, raises on
    import, or defines no generator function ``model`` of one argument.

    Example:

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "my_model.py"
    >>> _ = path.write_text(
    ...     "import coromix as cm\\n"
    ...     "def model(data):\\n"
    ...     "    mu = yield cm.distributions.Normal(0.0, 5.0)\\n"
    ...     "    y = yield cm.distributions.Normal(mu * data['x'], 1.0)\\n"
    ... )
    >>> load_model(path).__name__
    'model'
    >>> _ = path.write_text("def model():\\n    return 1\\n")
    >>> load_model(path)
    Traceback (most recent call last):
    ...
    coromix.cli.errors.FitError: `model` in ...my_model.py is a function, not a generator function; ...
    """
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
    kind = "KeyError" if isinstance(err, MissingColumn) else type(err).__name__
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


class UserCode:
    """Runs steps that execute the user's model, turning their exceptions into FitError.

    ``filename``: the resolved path of the model file (its frames go into ``details``);
    ``model_path``: the path as the user gave it (named in the message).

    Example:

    >>> user = UserCode("/nowhere/model.py", "model.py")
    >>> user("running", lambda: 1 + 1)
    2
    >>> user("running", lambda: 1 / 0)
    Traceback (most recent call last):
    ...
    coromix.cli.errors.FitError: running model(data) from model.py failed: ZeroDivisionError: ...
    """

    def __init__(self, filename: str, model_path: str) -> None:
        self.filename, self.model_path = filename, model_path

    def __call__(self, what: str, fn: Callable[[], Any]) -> Any:
        """``fn()``; an exception it raises becomes "``{what} model(data) from MODEL failed``"."""
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
    model's variables into observed, continuous parameters and discrete (summed out) ones.

    Attributes:
        jd: the joint distribution of ``model(columns)``.
        columns: the data (:class:`~coromix.cli.data.Columns`, with the names the model read).
        observed: name -> column, for the columns named like variables.
        parameters: the continuous variables left to infer, in model order.
        discrete: the free discrete variables (summed out during the fit).
        covariates: the columns the model reads that are not observed.

    Made by :func:`bind`.
    """

    def __init__(
        self, jd: JointDistributionCoroutine, columns: Columns, observed: dict[str, np.ndarray]
    ) -> None:
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
    """Bind ``model(data)`` to the columns: observed = columns named like variables.

    The rules are in :mod:`coromix.cli.fit`: an observed variable has shape ``(N,)`` for ``N``
    rows, every other column must be read by the model, and a continuous variable must be left to
    infer.  Exceptions of the model propagate; a mismatch of columns and model is a
    :class:`~coromix.cli.errors.FitError`.

    Example: a two-component mixture of ``y`` around a line in the covariate ``x``.

    >>> import numpy as np
    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> def model(data):
    ...     slope = yield tfd.Normal(0.0, 5.0)
    ...     z = yield tfd.Categorical(probs=np.full((len(data["x"]), 2), 0.5))
    ...     y = yield tfd.Normal(slope * data["x"] + 2.0 * z, 1.0)
    >>> bound = bind(model, {"x": np.array([1.0, 2.0, 3.0]), "y": np.array([0.9, 4.1, 2.8])})
    >>> list(bound.observed), bound.parameters, bound.discrete, bound.covariates
    (['y'], ['slope'], ['z'], ['x'])
    >>> bind(model, {"x": np.ones(3), "y": np.ones(3), "w": np.ones(3)})
    Traceback (most recent call last):
    ...
    coromix.cli.errors.FitError: column(s) 'w' of the CSV neither name a variable of the model ...
    """
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
