"""Chain layout: 4 chains vmapped on one CPU device, in 2 groups on 2 threads, or over 2 host devices.

Issue 14, item 4 ("use both cores").  The same ``cm.nuts`` fits as
``benchmarks/nuts_whole_process.py`` (its worker, so the models, data, starts and settings are
those), each in a fresh process, in two layouts:

- ``vectorized``: ``chain_method="vectorized"``, one CPU device (XLA's default), the 4 chains
  ``jax.vmap``-ed in one program; XLA's intra-op threads use the cores inside each step.
- ``parallel``: ``chain_method="parallel"`` with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (as NumPyro's ``set_host_device_count``):
  2 chains per device, the devices on their own threads.
- ``threads``: ``chain_method="threads"``, one CPU device: 2 vmapped groups of 2 chains, each
  group's steps called from its own Python thread (the CPU device runs the two calls at once).
  ``cm.nuts``'s default ``"auto"`` picks this on a multi-core CPU for models with at most 20 000
  observed numbers.

Columns: ``process s`` (the whole process, timed from outside: start, imports, tracing,
compilation, warmup, sampling, ESS), ``compile s`` and ``sampling s`` (``post.attrs``:
``compile_time``, ``sampling_time``, the latter warmup + draws), min bulk ESS and min ESS per
whole-process second.  The last lines say which layout is faster per model (sampling time and
whole process).  The vmapped layout makes every chain wait for the longest tree of the 4 at each
step; the split one runs 2 chains per device, so a device waits only for its own 2, but both
compete for the same cores with XLA's intra-op threads.

Models (``--models``): ``low_dim_gauss_mix`` (small: N = 1000, 5 parameters; posteriordb data in
../shared), ``hmm_2000`` (3-state Gaussian HMM, T = 2000, simulated) and ``gmm_100000`` (3
components, N = 1e5, simulated); the real-size ones 4 x (500 + 500), the small one 4 x (1000 +
1000), or ``--draws W S`` for all.

Run on a quiet machine (the figures depend on free cores):

    .venv/bin/python benchmarks/chain_layout.py [--repeats 2] [--models ...] [--devices 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nuts_whole_process import SIMULATED, run_one

MODELS = ("low_dim_gauss_mix", "hmm_2000", "gmm_100000")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=1, help="processes per cell (median)")
    parser.add_argument("--devices", type=int, default=2, help="host CPU devices for 'parallel'")
    parser.add_argument("--draws", nargs=2, type=int, metavar=("WARMUP", "SAMPLES"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    def draws_of(model):
        if args.draws:
            return tuple(args.draws)
        return (500, 500) if model in SIMULATED else (1000, 1000)

    layouts = {"vectorized": None, "threads": None, "parallel": args.devices}
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}; load average before: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    results: dict[tuple[str, str], list[dict]] = {}
    for model in args.models:
        for r in range(args.repeats):
            order = list(layouts) if r % 2 == 0 else list(layouts)[::-1]
            for layout in order:
                res = run_one(
                    model,
                    "coromix",
                    *draws_of(model),
                    args.seed + r,
                    chain_method=layout,
                    host_devices=layouts[layout],
                )
                results.setdefault((model, layout), []).append(res)
                print(
                    f"  done: {model:<18} {layout:<10} {res['total_seconds']:7.1f} s "
                    f"({res['devices']} device(s); load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
    print("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print()
    header = (
        f"{'model':<18} {'layout':<10} {'draws':>9} {'process s':>9} {'compile s':>9} "
        f"{'sampling s':>10} {'min ESS':>8} {'ESS/s':>7}"
    )
    print(header)
    print("-" * len(header))

    def med(rs, key):
        return statistics.median(r[key] for r in rs)

    for (model, layout), rs in results.items():
        rate = statistics.median(r["min_bulk_ess"] / r["total_seconds"] for r in rs)
        print(
            f"{model:<18} {layout:<10} {'+'.join(map(str, draws_of(model))):>9} "
            f"{med(rs, 'total_seconds'):>9.1f} {med(rs, 'compile_time'):>9.1f} "
            f"{med(rs, 'sampling_time'):>10.1f} {med(rs, 'min_bulk_ess'):>8.0f} {rate:>7.1f}"
        )
    print()
    for model in args.models:
        vec = results[(model, "vectorized")]
        for layout in ("threads", "parallel"):
            other = results[(model, layout)]
            s = med(other, "sampling_time") / med(vec, "sampling_time")
            p = med(other, "total_seconds") / med(vec, "total_seconds")
            print(
                f"{model}: {layout}/vectorized sampling time {s:.2f}, whole process {p:.2f} "
                f"(< 1: {layout} is faster)"
            )


if __name__ == "__main__":
    main()
