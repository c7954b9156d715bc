"""The ``coromix`` command: ``coromix --version``, ``coromix demo``."""

from __future__ import annotations

import argparse
import sys

import coromix


def demo(args: argparse.Namespace) -> int:
    """Fit the built-in real data: an iris mixture and a US GDP regime-switching model."""
    from coromix import demo as demo_module

    demo_module.run(args.out, chains=args.chains, warmup=args.warmup, samples=args.samples,
                    seed=args.seed, progress=not args.quiet)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="coromix", description="Mixture and regime-switching models written as coroutines.")
    parser.add_argument("--version", action="version", version=f"coromix {coromix.__version__}")
    commands = parser.add_subparsers(dest="command")
    p_demo = commands.add_parser("demo", help="run the built-in demonstration")
    p_demo.add_argument("--out", help="folder for the plots (default: a new one under the "
                                      "current directory)")
    p_demo.add_argument("--chains", type=int, default=4)
    p_demo.add_argument("--warmup", type=int, default=500)
    p_demo.add_argument("--samples", type=int, default=500)
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--quiet", action="store_true", help="no progress bars")
    p_demo.set_defaults(run=demo)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
