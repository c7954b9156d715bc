"""JAX's persistent compilation cache for ``coromix fit`` and ``coromix demo``.

A fit compiles its NUTS program once per process (seconds); with the cache, a second process
fitting the same model to data of the same shapes reads the compiled program from disk instead.
Only the command line turns it on (``import coromix`` changes no JAX setting).

Where it lives, first match wins:

1. ``--no-cache``: off.
2. ``--cache-dir DIR``.
3. The environment variable ``COROMIX_CACHE_DIR``: a folder, or ``off`` to turn the cache off.
4. ``$XDG_CACHE_HOME/coromix/jax``, by default ``~/.cache/coromix/jax``.

Deleting the folder is always safe: it only holds compiled programs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

#: The environment variable that moves the cache (a folder) or turns it off (``off``).
ENV_VAR = "COROMIX_CACHE_DIR"
#: Values of :data:`ENV_VAR` that turn the cache off (case does not matter).
OFF_VALUES = ("off", "none", "0", "false", "no")
#: Programs that compile faster than this are not written (JAX's default is 1 s): the small
#: programs of predictive draws and densities, compiled in a few tenths of a second, count too.
MIN_COMPILE_SECONDS = 0.1


def cache_dir(
    option: str | None = None,
    disabled: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Path | None:
    """The cache folder for ``--cache-dir option`` / ``--no-cache`` and the environment; ``None``
    when the cache is off.

    >>> cache_dir(environ={"HOME": "/home/ada"})
    PosixPath('/home/ada/.cache/coromix/jax')
    >>> cache_dir(environ={"XDG_CACHE_HOME": "/tmp/xdg"})
    PosixPath('/tmp/xdg/coromix/jax')
    >>> cache_dir(environ={"COROMIX_CACHE_DIR": "/data/jax-cache", "XDG_CACHE_HOME": "/tmp/xdg"})
    PosixPath('/data/jax-cache')
    >>> cache_dir("here", environ={"COROMIX_CACHE_DIR": "/data/jax-cache"})
    PosixPath('here')
    >>> cache_dir(environ={"COROMIX_CACHE_DIR": "off"}) is None
    True
    >>> cache_dir("here", disabled=True) is None
    True
    """
    environ = os.environ if environ is None else environ
    if disabled:
        return None
    if option:
        return Path(option).expanduser()
    value = environ.get(ENV_VAR, "").strip()
    if value.lower() in OFF_VALUES:
        return None
    if value:
        return Path(value).expanduser()
    base = environ.get("XDG_CACHE_HOME", "").strip()
    home = environ.get("HOME") or str(Path.home())
    return Path(base or os.path.join(home, ".cache")) / "coromix" / "jax"


def enable(folder: Path | None) -> Path | None:
    """Point JAX's persistent compilation cache at ``folder`` (``None``: turn it off).

    Creates the folder; if it cannot, says so on stderr and leaves the cache off (a fit does not
    need it).  Returns the folder in use, or ``None``.  Call it before anything compiles.

    >>> import jax, tempfile
    >>> before = settings()
    >>> folder = Path(tempfile.mkdtemp()) / "jax"
    >>> enable(folder) == folder, jax.config.jax_compilation_cache_dir == str(folder)
    (True, True)
    >>> enable(None), jax.config.jax_enable_compilation_cache
    (None, False)
    >>> restore(before)
    """
    import jax

    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            print(
                f"coromix: warning: no compilation cache ({folder}: {err.strerror}); set "
                f"{ENV_VAR} to a writable folder, or pass --no-cache",
                file=sys.stderr,
            )
            folder = None
    if folder is None:
        jax.config.update("jax_enable_compilation_cache", False)
    else:
        jax.config.update("jax_enable_compilation_cache", True)
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    _reset()
    return folder


#: The JAX settings :func:`enable` changes.
SETTINGS = (
    "jax_enable_compilation_cache",
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
)


def settings() -> dict[str, object]:
    """JAX's current values of :data:`SETTINGS` (to give back to :func:`restore`).

    >>> sorted(settings()) == sorted(SETTINGS)
    True
    """
    import jax

    return {name: getattr(jax.config, name) for name in SETTINGS}


def restore(saved: Mapping[str, object]) -> None:
    """Put back the cache settings :func:`settings` returned (for tests and notebooks).

    >>> restore(settings())
    """
    import jax

    for name, value in saved.items():
        jax.config.update(name, value)
    _reset()


def _reset() -> None:
    """Forget whether the cache was in use: JAX decides it once, at the first compilation."""
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()
