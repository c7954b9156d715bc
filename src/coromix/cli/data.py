"""Reading the data of ``coromix fit``: the CSV, and the read-only ``data`` given to ``model(data)``.

The CSV: a header line of column names, then one line per row, every value a finite number.
Lines starting with ``#`` (notes on the source) are skipped, and so are blank lines before the
header and at the end of the file.  A blank line between data rows is a row of missing values:
an error naming its row, as any empty cell is (coromix never drops data silently).  A column
whose values are all integers is read as ``int64``, any other as ``float64``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from coromix.cli.errors import FitError

# Offending rows named in an error message before the rest are only counted.
_ROWS_SHOWN = 10


def read_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Column name -> 1-D array of the CSV at ``path`` (``int64`` if every value is an integer).

    Raises :class:`~coromix.cli.errors.FitError` (one line naming the file, the line and the
    column) when the file is missing, empty, has a bad header, a row of the wrong length, or values
    that are not finite numbers.

    Example:

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "data.csv"
    >>> _ = path.write_text("# source: made up\\nx,y\\n1,0.5\\n2,1.5\\n")
    >>> read_csv(path)
    {'x': array([1, 2]), 'y': array([0.5, 1.5])}
    >>> _ = path.write_text("x,y\\n1,oops\\n")
    >>> read_csv(path)
    Traceback (most recent call last):
    ...
    coromix.cli.errors.FitError: data file ...data.csv: values that are not finite numbers ...
    >>> _ = path.write_text("y\\n1.5\\n\\n2.5\\n\\n")   # a blank line between rows: a missing value
    >>> read_csv(path)
    Traceback (most recent call last):
    ...
    coromix.cli.errors.FitError: data file ...: ... column 'y' in data rows 2 ('')
    """
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
        if not line.lstrip().startswith("#")
    ]
    # blank lines before the header and at the end are layout; between rows, missing values
    while numbered and not numbered[0][1].strip():
        numbered.pop(0)
    while numbered and not numbered[-1][1].strip():
        numbered.pop()
    if not numbered:
        raise FitError(
            f"data file {path} is empty: expected a header line of column names, then "
            f"one line per data row"
        )
    records = list(csv.reader(line for _, line in numbered))
    header = [name.strip() for name in records[0]]
    records[1:] = [
        row if line.strip() else [""] * len(header)
        for row, (_, line) in zip(records[1:], numbered[1:])
    ]
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


class MissingColumn(KeyError):
    """``data[name]`` for a column the data lacks; the message names the columns there are.

    >>> str(MissingColumn("the data has no column 'q'"))
    "the data has no column 'q'"
    """

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0])


class Columns(Mapping):
    """The ``data`` given to ``model(data)``: column name -> 1-D array, read-only.

    Records which columns the model reads (``data[name]``, ``data.get(name)``, ``data.items()``);
    ``name in data`` and listing the names do not count as reading.  ``source`` names the data in
    error messages.

    Example:

    >>> data = Columns({"x": [1.0, 2.0], "y": [0, 1]}, "data.csv")
    >>> data["x"]
    array([1., 2.])
    >>> "y" in data, sorted(data.read)
    (True, ['x'])
    >>> data
    Columns(data.csv: 2 rows of x, y)
    """

    def __init__(self, columns: Mapping[str, np.ndarray], source: str) -> None:
        self._columns = {}
        for name, values in columns.items():
            values = np.array(values)
            values.flags.writeable = False
            self._columns[name] = values
        self.source = source
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._columns:
            raise MissingColumn(
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
