"""Refit time: a second ``cm.nuts`` fit of the same model on new data of the same shape.

In one Python process, each model is fitted once on its data ("first fit": tracing, XLA compilation
and sampling) and then ``--refits`` times on new data sets of the same shape ("refit": the compiled
programs are reused, the data being arguments of them).  Wall time of the whole ``cm.nuts`` call
(``time.perf_counter``), 4 chains x (1000 warmup + 1000 draws), float32, default start, no progress
bar.  The ratio is the median refit over the first fit (issue 14's target: at most 0.25).

Models:

- ``low_dim_gauss_mix``: posteriordb's data (N = 1000; ../shared/data/posteriordb), the model of
  ``benchmarks/nuts_whole_process.py``; the refits use data simulated from the two-component
  mixture at the reference posterior's means (mu = (-2.75, 2.85), sigma = 1, theta = 0.62; NumPy,
  seeds 1..R).
- ``coal_mining``: the change point of ``benchmarks/coal_mining.py`` (111 years), the refits on
  counts simulated with other seeds.

Run: .venv/bin/python benchmarks/refit.py [--refits R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import jax.numpy as jnp
import numpy as np

import coromix as cm

tfd = cm.distributions
ROOT = Path(__file__).resolve().parents[1]
N_MIX = 1000
YEARS = jnp.arange(111)


def gauss_mix():
    mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 2.0))
    sigma = yield tfd.HalfNormal(2.0 * jnp.ones(2))
    theta = yield tfd.Beta(5.0, 5.0)
    z = yield tfd.Categorical(probs=jnp.broadcast_to(jnp.stack([theta, 1 - theta]), (N_MIX, 2)))
    y = yield tfd.Normal(mu[z], sigma[z])


def coal_mining():
    switchpoint = yield tfd.Categorical(logits=jnp.zeros(111))
    early = yield tfd.Exponential(1.0)
    late = yield tfd.Exponential(1.0)
    disasters = yield tfd.Poisson(jnp.where(YEARS < switchpoint, early, late))


def mixture_data(seed: int) -> np.ndarray:
    if seed == 0:
        path = ROOT.parent / "shared/data/posteriordb/low_dim_gauss_mix.data.json"
        if path.exists():
            return np.asarray(json.loads(path.read_text())["y"], np.float32)
    rng = np.random.default_rng(seed)
    z = rng.random(N_MIX) < 0.62
    return np.where(z, rng.normal(-2.75, 1.0, N_MIX), rng.normal(2.85, 1.0, N_MIX)).astype(
        np.float32
    )


def coal_data(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(np.where(np.arange(111) < 40, 3.0, 1.0)).astype(np.int32)


def timed_fit(model, observed) -> tuple[float, cm.Posterior]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = cm.nuts(model, observed, seed=0, progress=False)
    return time.perf_counter() - start, post


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refits", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for name, model, data, obs in [
        ("low_dim_gauss_mix", gauss_mix, mixture_data, "y"),
        ("coal_mining", coal_mining, coal_data, "disasters"),
    ]:
        first, post = timed_fit(model, {obs: data(0)})
        refits = []
        for seed in range(1, args.refits + 1):
            seconds, post = timed_fit(model, {obs: data(seed)})
            refits.append(seconds)
        refit = statistics.median(refits)
        rows.append((name, first, refit, refit / first, post.attrs["compile_time"]))
    print(f"{'model':<20} {'first s':>8} {'refit s':>8} {'ratio':>6} {'refit compile s':>16}")
    for name, first, refit, ratio, compile_s in rows:
        print(f"{name:<20} {first:8.2f} {refit:8.2f} {ratio:6.2f} {compile_s:16.3f}")


if __name__ == "__main__":
    main()
