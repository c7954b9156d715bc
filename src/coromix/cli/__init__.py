"""The ``coromix`` command line: ``coromix demo`` and ``coromix fit``, apart from the library.

``import coromix`` does not import this package; the console script ``coromix`` and
``python -m coromix.cli`` call :func:`main`.

Modules:
    parser: the arguments, and :func:`main`.
    fit: ``coromix fit MODEL.py --data DATA.csv`` (the convention of model files, the outputs).
    data: reading the CSV, and the read-only ``data`` mapping given to ``model(data)``.
    user_files: running the user's model file and binding ``model(data)`` to the columns.
    errors: ``FitError``, a problem with the inputs reported as one line (exit code 2).
    demo: ``coromix demo``, two fits on real data shipped with the package.
    plots: the one matplotlib setup (backend, layout, saving) used by ``fit`` and ``demo``.
    cache: JAX's persistent compilation cache, on for ``fit`` and ``demo`` (``--cache-dir``,
        ``--no-cache``, ``COROMIX_CACHE_DIR``).
"""

from coromix.cli.parser import main

__all__ = ["main"]
