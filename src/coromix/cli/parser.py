"""The ``coromix`` command's arguments: ``coromix --version``, ``coromix demo``, ``coromix fit``.

:func:`main` parses the arguments and runs the command; the commands themselves are
:mod:`coromix.cli.demo` and :mod:`coromix.cli.fit`, imported when run (``coromix --version`` loads
neither JAX model code nor matplotlib beyond ``import coromix``).
"""

from __future__ import annotations

import argparse
import sys

import coromix


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
    p_demo = commands.add_parser("demo", help="run the built-in demonstration")
    p_demo.add_argument(
        "--out", help="folder for the plots (default: a new one under the current directory)"
    )
    p_demo.add_argument("--chains", type=int, default=4)
    p_demo.add_argument("--warmup", type=int, default=500)
    p_demo.add_argument("--samples", type=int, default=500)
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--quiet", action="store_true", help="no progress bars")
    p_demo.set_defaults(run=demo)
    p_fit = commands.add_parser(
        "fit",
        help="fit a model file to a CSV",
        description="Fit the generator function `model(data)` of MODEL.py to the CSV: columns "
        "named like model variables are observed, the others are data the model "
        "reads (data['x']). Writes posterior.nc (ArviZ), summary.csv, trace.png, "
        "posterior.png and posterior_predictive.png, or map.csv with --map.",
    )
    p_fit.add_argument(
        "model", metavar="MODEL.py", help="Python file defining a generator function model(data)"
    )
    p_fit.add_argument(
        "--data",
        required=True,
        metavar="DATA.csv",
        help="CSV with a header line; one numeric column per variable or covariate",
    )
    p_fit.add_argument(
        "--out", help="folder for the results (default: a new one under the current directory)"
    )
    p_fit.add_argument("--chains", type=int, default=4)
    p_fit.add_argument("--warmup", type=int, default=1000)
    p_fit.add_argument("--samples", type=int, default=1000)
    p_fit.add_argument("--seed", type=int, default=0)
    p_fit.add_argument(
        "--map",
        action="store_true",
        help="the posterior mode (MAP, by optimization) instead of NUTS draws",
    )
    p_fit.add_argument("--quiet", action="store_true", help="no progress bars")
    p_fit.set_defaults(run=fit)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``coromix`` with the arguments ``argv`` (default: ``sys.argv[1:]``); the exit code.

    0 on success; 2 for a problem with the inputs (one line ``coromix fit: error: ...`` on
    stderr) or no command (the help is printed).  ``--version`` and ``--help`` exit through
    ``SystemExit`` as argparse does.

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
    return args.run(args)
