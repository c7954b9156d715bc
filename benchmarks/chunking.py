"""The cost of running NUTS in chunks (what lets Ctrl-C stop a fit within a second).

``cm.nuts`` runs the chain steps in calls of about ``_CHUNK_SECONDS`` (0.5 s) of the compiled
program, looking for an interrupt between calls.  This script fits the same model with the same
seed in one process, alternating chunked fits and fits whose chunk is made long enough to hold
every step (one call, as before chunking), and prints the median sampling time
(``post.attrs["sampling_time"]``: start search, warmup and draws, compiled programs reused) of each
and their ratio.  The draws of both are identical (checked).

Models: posteriordb ``low_dim_gauss_mix`` and the coal-mining change point, both from
``benchmarks/refit.py``; 4 chains x (1000 + 1000).

Run: .venv/bin/python benchmarks/chunking.py [--repeats R]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np

import coromix as cm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refit

nuts_module = importlib.import_module("coromix.infer.nuts")


def fit(model, observed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cm.nuts(model, observed, seed=0, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    chunk = nuts_module._CHUNK_SECONDS
    print(f"{'model':<20} {'chunked s':>10} {'one call s':>10} {'ratio':>6}")
    for name, model, data, obs in [
        ("low_dim_gauss_mix", refit.gauss_mix, refit.mixture_data, "y"),
        ("coal_mining", refit.coal_mining, refit.coal_data, "disasters"),
    ]:
        observed = {obs: data(0)}
        fit(model, observed)  # compile
        times: dict[str, list[float]] = {"chunked": [], "one": []}
        draws = {}
        for _ in range(args.repeats):
            for kind, seconds in [("chunked", chunk), ("one", 1e9)]:
                nuts_module._CHUNK_SECONDS = seconds
                nuts_module._FIRST_CHUNK = 10 if kind == "chunked" else 10**9
                post = fit(model, observed)
                times[kind].append(post.attrs["sampling_time"])
                draws[kind] = np.asarray(post.unconstrained[next(iter(post.unconstrained))])
        nuts_module._CHUNK_SECONDS, nuts_module._FIRST_CHUNK = chunk, 10
        assert np.array_equal(draws["chunked"], draws["one"])
        a, b = statistics.median(times["chunked"]), statistics.median(times["one"])
        print(f"{name:<20} {a:10.3f} {b:10.3f} {a / b:6.3f}")


if __name__ == "__main__":
    main()
