"""The ``coromix`` command's arguments: ``coromix --version``, ``coromix demo``, ``coromix fit``.

:func:`main` parses the arguments and runs the command; the commands themselves are
:mod:`coromix.cli.demo` and :mod:`coromix.cli.fit`, imported when run (``coromix --version`` loads
neither JAX model code nor matplotlib beyond ``import coromix``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import coromix
from coromix.cli import cache


def demo(args: argparse.Namespace) -> int:
    """Fit the built-in real data: an iris mixture and a US GDP regime-switching model."""
    from coromix.cli import demo as demo_module

    demo_module.run(
        args.out,
        chains=args.chains,
        warmup=args.warmup,
        samples=args.samples,
        seed=args.seed,
        progress=not args.quiet,
    )
    return 0


def fit(args: argparse.Namespace) -> int:
    """Fit a model file to a CSV; problems with the inputs are one line on stderr, exit code 2."""
    from coromix.cli import fit as fit_module
    from coromix.cli.errors import FitError

    try:
        fit_module.run(
            args.model,
            args.data,
            args.out,
            chains=args.chains,
            warmup=args.warmup,
            samples=args.samples,
            seed=args.seed,
            use_map=args.map,
            progress=not args.quiet,
        )
    except FitError as err:
        sys.stdout.flush()
        if err.details:
            sys.stderr.write(err.details)
        print(f"coromix fit: error: {err}", file=sys.stderr)
        return 2
    return 0


def _count(least: int, why: str = "") -> Callable[[str], int]:
    """An argparse type: an integer >= ``least`` (``why``: the reason, in the error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}{why}; got {value}")
        return value

    parse.__name__ = f"integer >= {least}"
    return parse


def _sampling_options(command: argparse.ArgumentParser, warmup: int, samples: int) -> None:
    """``--chains``, ``--warmup``, ``--samples``, ``--seed``, ``--quiet``, and the cache options."""
    command.add_argument(
        "--chains", type=_count(1), default=4, help="NUTS chains (default: %(default)s)"
    )
    command.add_argument(
        "--warmup",
        type=_count(1, " (warmup tunes the step size and mass matrix; 0 leaves them untuned)"),
        default=warmup,
        help="warmup (adaptation) steps per chain (default: %(default)s)",
    )
    command.add_argument(
        "--samples",
        type=_count(1),
        default=samples,
        help="draws kept per chain (default: %(default)s)",
    )
    command.add_argument(
        "--seed", type=int, default=0, help="random seed of the fit (default: %(default)s)"
    )
    command.add_argument(
        "--quiet", action="store_true", help="no progress bars (default: progress bars shown)"
    )
    command.add_argument(
        "--cache-dir",
        metavar="DIR",
        help=f"folder of JAX's persistent compilation cache, so that a later run skips "
        f"compiling the same programs (default: ${cache.ENV_VAR} if set, else "
        f"$XDG_CACHE_HOME/coromix/jax or ~/.cache/coromix/jax; {cache.ENV_VAR}=off turns it off)",
    )
    command.add_argument(
        "--no-cache",
        action="store_true",
        help="do not read or write the compilation cache (default: the cache is used)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``coromix``'s arguments; each command sets ``run``, its function.

    >>> args = build_parser().parse_args(["fit", "m.py", "--data", "d.csv", "--map"])
    >>> args.command, args.model, args.data, args.map, args.chains, args.run.__name__
    ('fit', 'm.py', 'd.csv', True, 4, 'fit')
    """
    parser = argparse.ArgumentParser(
        prog="coromix", description="Mixture and regime-switching models written as coroutines."
    )
    parser.add_argument("--version", action="version", version=f"coromix {coromix.__version__}")
    commands = parser.add_subparsers(dest="command")
    p_demo = commands.add_parser(
        "demo",
        help="run the built-in demonstration",
        description="Fit two real data sets shipped with coromix (iris petals: a mixture; US "
        "GDP growth: regime switching), print the summaries and write plots.",
    )
    p_demo.add_argument(
        "--out",
        help="folder for the plots (default: a new folder coromix-demo-* under the current "
        "directory)",
    )
    _sampling_options(p_demo, warmup=1000, samples=1000)
    p_demo.set_defaults(run=demo)
    p_fit = commands.add_parser(
        "fit",
        help="fit a model file to a CSV",
        description="Fit the generator function `model(data)` of MODEL.py to the CSV: columns "
        "named like model variables are observed, the others are data the model "
        "reads (data['x']). Writes posterior.nc (ArviZ), summary.csv, trace.png, "
        "posterior.png and posterior_predictive.png, or map.csv with --map. "
        "MODEL.py is executed as Python code, as `python MODEL.py` would run it, with your "
        "permissions: run only model files you trust.",
    )
    p_fit.add_argument(
        "model",
        metavar="MODEL.py",
        help="Python file defining a generator function model(data); it is executed as Python code",
    )
    p_fit.add_argument(
        "--data",
        required=True,
        metavar="DATA.csv",
        help="CSV with a header line; one numeric column per variable or covariate (required)",
    )
    p_fit.add_argument(
        "--out",
        help="folder for the results, checked to be writable before the fit (default: a new "
        "folder coromix-fit-YYYYmmdd-HHMMSS under the current directory)",
    )
    _sampling_options(p_fit, warmup=1000, samples=1000)
    p_fit.add_argument(
        "--map",
        action="store_true",
        help="the posterior mode (MAP, by optimization) instead of NUTS draws (default: NUTS)",
    )
    p_fit.set_defaults(run=fit)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``coromix`` with the arguments ``argv`` (default: ``sys.argv[1:]``); the exit code.

    0 on success; 2 for a problem with the inputs (one line ``coromix fit: error: ...`` on
    stderr) or no command (the help is printed).  ``--version`` and ``--help`` exit through
    ``SystemExit`` as argparse does.  ``demo`` and ``fit`` run with JAX's persistent compilation
    cache on (:mod:`coromix.cli.cache`: ``--cache-dir``, ``--no-cache``, ``COROMIX_CACHE_DIR``);
    the JAX settings are put back when the command returns.

    >>> main([])
    usage: coromix [-h] [--version] {demo,fit} ...
    ...
    2
    >>> main(["fit", "no_such_model.py", "--data", "no_such_data.csv"])
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    saved = cache.settings()
    cache.enable(cache.cache_dir(args.cache_dir, args.no_cache))
    try:
        return args.run(args)
    finally:
        cache.restore(saved)  # as it was, for a caller in the same process (tests, notebooks)
