"""Moved: ``coromix fit`` is :mod:`coromix.cli.fit`, reading the CSV :mod:`coromix.cli.data`, and
running the model file :mod:`coromix.cli.user_files`.

This alias only keeps ``from coromix.fit import bind, read_csv`` (in ``examples/fit_gmm.py`` and
``examples/fit_switching.py``) working until they import from :mod:`coromix.cli`; then delete it.
"""

from coromix.cli.data import read_csv
from coromix.cli.errors import FitError
from coromix.cli.user_files import bind, load_model

__all__ = ["FitError", "bind", "load_model", "read_csv"]
