"""Plated 3-component GMM: value+grad against a hand-fused JAX reference, and the whole fit.

    .venv/bin/python benchmarks/gmm.py --value-grad [--sizes 1e3 1e5 1e6] [--repeats 30]
    python-with-numpyro benchmarks/gmm.py --fit [--repeats 2]

``--value-grad`` (issue 14's target: at most 1.1x the reference at N = 1e6): the model

    w ~ Dirichlet(1, 1, 1);  mu_k ~ Normal(0, 10);  sigma_k ~ HalfNormal(5)
    z_n ~ Categorical(w)  (shape (N,), summed out);  y_n ~ Normal(mu[z_n], sigma[z_n])

scored by ``JointDistributionCoroutine.log_prob`` (the component per point summed out by
:class:`coromix.enumerate.PlateEnumerator`), against the hand-fused reference

    prior + sum_n logsumexp_k(log w_k + log Normal(y_n | mu_k, sigma_k))    an (N, K) array,

both ``jax.jit(jax.value_and_grad(f))`` with respect to (w, mu, sigma), float32, y as an argument
(not a constant).  ``reference_KN`` is the same reference written with the component axis first,
``(K, N)``, the layout coromix's enumeration gives XLA (the enumeration dim on the left): the two
references differ only in layout, which on XLA's CPU backend decides how a loop over a ``(3, N)``
array is split between threads (its outer dim, 3, over the threads) against ``(N, 3)`` (N over
the threads).  The calls of the three are interleaved, ``--repeats`` rounds after one compiling
call; the table shows the fastest call of each (the least disturbed by other load) and the median
ratio.  ``--hlo DIR`` writes the optimized HLO of each at the largest N.

``--fit``: the whole fit at N = 1e5 against NumPyro's enumerated plate, fresh processes, min bulk
ESS per whole-process second: ``benchmarks/nuts_whole_process.py --models gmm_100000`` (run this
with an interpreter that has numpyro and funsor, e.g. ``pip install -e '.[bench]'``; issue 14's
target: at least 1.0x NumPyro).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

K = 3
PARAMS = {"w": (0.3, 0.45, 0.25), "mu": (-4.0, 0.0, 5.0), "sigma": (1.0, 1.5, 0.8)}


def densities(n: int):
    import jax
    import jax.numpy as jnp
    import numpy as np

    import coromix.distributions as tfd

    def model():
        w = yield tfd.Dirichlet(jnp.ones(K), name="w")
        mu = yield tfd.Normal(jnp.zeros(K), 10.0, name="mu")
        sigma = yield tfd.HalfNormal(5.0 * jnp.ones(K), name="sigma")
        z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (n, K)), name="z")
        yield tfd.Normal(mu[z], sigma[z], name="y")

    jd = tfd.JointDistributionCoroutine(model)

    def coromix(p, y):
        return jd.log_prob(w=p["w"], mu=p["mu"], sigma=p["sigma"], y=y)

    def prior(p):
        return (
            tfd.Dirichlet(jnp.ones(K)).log_prob(p["w"])
            + tfd.Normal(jnp.zeros(K), 10.0).log_prob(p["mu"]).sum()
            + tfd.HalfNormal(5.0 * jnp.ones(K)).log_prob(p["sigma"]).sum()
        )

    half_log_2pi = 0.5 * np.log(2 * np.pi)

    def reference(p, y):
        w, mu, s = p["w"], p["mu"], p["sigma"]
        lp = jnp.log(w) - jnp.log(s) - half_log_2pi - 0.5 * ((y[:, None] - mu) / s) ** 2
        return prior(p) + jax.nn.logsumexp(lp, axis=-1).sum()

    def reference_kn(p, y):
        w, mu, s = p["w"][:, None], p["mu"][:, None], p["sigma"][:, None]
        lp = jnp.log(w) - jnp.log(s) - half_log_2pi - 0.5 * ((y[None, :] - mu) / s) ** 2
        return prior(p) + jax.nn.logsumexp(lp, axis=0).sum()

    return {"coromix": coromix, "reference": reference, "reference_KN": reference_kn}


def value_grad(sizes: list[int], repeats: int, hlo: str | None) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    print(
        f"value+grad, float32, {jax.default_backend()} ({os.cpu_count()} CPUs), jax "
        f"{jax.__version__}; fastest of {repeats} interleaved calls (ms)"
    )
    header = (
        f"{'N':>9} {'coromix':>9} {'reference':>10} {'ref_KN':>8} {'coromix/ref':>12} "
        f"{'median':>7} {'ref_KN/ref':>11} {'|dvalue|':>9} {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    p = {k: jnp.asarray(v, jnp.float32) for k, v in PARAMS.items()}
    for n in sizes:
        y = jnp.asarray(np.random.default_rng(0).normal(0.0, 3.0, n), jnp.float32)
        fns = {k: jax.jit(jax.value_and_grad(f)) for k, f in densities(n).items()}
        values = {k: float(f(p, y)[0]) for k, f in fns.items()}
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeats):
            for k, f in fns.items():
                start = time.perf_counter()
                jax.block_until_ready(f(p, y))
                times[k].append(time.perf_counter() - start)
        best = {k: min(v) for k, v in times.items()}
        ratio_median = statistics.median(
            a / b for a, b in zip(times["coromix"], times["reference"], strict=True)
        )
        print(
            f"{n:>9} {1e3 * best['coromix']:>9.3f} {1e3 * best['reference']:>10.3f} "
            f"{1e3 * best['reference_KN']:>8.3f} {best['coromix'] / best['reference']:>12.2f} "
            f"{ratio_median:>7.2f} {best['reference_KN'] / best['reference']:>11.2f} "
            f"{abs(values['coromix'] - values['reference']):>9.2e} {os.getloadavg()[0]:>5.1f}",
            flush=True,
        )
        if hlo and n == max(sizes):
            Path(hlo).mkdir(parents=True, exist_ok=True)
            for k, f in fns.items():
                text = f.lower(p, y).compile().as_text()
                (Path(hlo) / f"{k}_N{n}.hlo").write_text(text)
            print(f"optimized HLO written to {hlo}/*_N{n}.hlo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--value-grad", action="store_true")
    mode.add_argument("--fit", action="store_true")
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e3, 1e5, 1e6])
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--hlo", help="folder for the optimized HLO at the largest N")
    parser.add_argument("--quick", action="store_true", help="--fit: 4 x (100 + 100) draws")
    args = parser.parse_args()
    if args.value_grad:
        value_grad([int(n) for n in args.sizes], args.repeats or 30, args.hlo)
        return
    command = [
        sys.executable,
        str(Path(__file__).with_name("nuts_whole_process.py")),
        "--models",
        "gmm_100000",
        "--libraries",
        "coromix",
        "numpyro",
        "jax_reference",
        "--repeats",
        str(args.repeats or 1),
    ] + (["--draws", "100", "100"] if args.quick else [])
    raise SystemExit(subprocess.call(command))


if __name__ == "__main__":
    main()
