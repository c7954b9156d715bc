"""Hamilton's MS-AR(4) on GNP growth written with ``RegimeSwitching(history=4)``: speed and fit.

The model (Hamilton 1989; statsmodels' ``MarkovAutoregression(rgnp, k_regimes=2, order=4,
switching_ar=False)``), conditional on the first four observations as statsmodels fits it::

    s_0 ~ ergodic(P),  s_t | s_{t-1} ~ P[s_{t-1}],
    y_t = mu[s_t] + sum_{k=1..4} phi_k (y_{t-k} - mu[s_{t-k}]) + sigma e_t   (t >= 4)

Data: statsmodels' ``rgnp`` test series (135 quarters, 1951Q2-1984Q4), kept in this file
(``RGNP``; the statsmodels worker checks it equals statsmodels' copy).  Every worker runs in a
fresh Python process (this file with ``--worker NAME``); the parent times ``subprocess.run``
around it ("process s": interpreter start, imports, tracing, compilation and the work), and the
worker reports its own split:

- ``loglik``: ``jax.jit(jax.value_and_grad(log_lik))`` of the log-likelihood in the 9
  parameters (statsmodels' vector) at E-views' published values: "compile s" is the first call
  (tracing the 62 step runs and XLA compilation), "eval ms" the median of 200 later calls; the
  log-likelihood and its difference to statsmodels' at the same parameters are printed.
- ``nuts``: ``cm.nuts`` of the model with the priors of ``coromix demo``'s GDP model (staying
  probabilities Beta(8, 2), means ``Ordered(Normal(0, 2))`` so that regime 0 is the lower one,
  HalfNormal(2) scale) and Normal(0, 0.5) AR coefficients, 4 chains x (1000 warmup + 1000
  draws), default settings (start, diagonal metric, ``chain_method="auto"``: on a multi-core CPU
  two groups of 2 chains on two threads), float64; "compile s" and "sampling s" from
  ``post.attrs``; posterior means, min bulk ESS and max R-hat from ``post.summary()``, mean
  leapfrog steps per draw.  ``nuts_dense``: the same with ``dense_mass=True``;
  ``nuts_vectorized``: with ``chain_method="vectorized"`` (all 4 chains in one vmapped program).
- ``statsmodels``: ``MarkovAutoregression(...).fit(search_reps=20)`` (maximum likelihood,
  BFGS from its start plus 20 random starts); its log-likelihood and parameters.

Run: .venv/bin/python benchmarks/ms_ar4.py [--repeats 2] [--workers nuts nuts_vectorized]

Measured 2026-12-03 08:04-08:12 UTC (2 cores; the machine is shared and its speed drifted by
up to 1.6x within the hour, so compare within a run), ``--repeats 2``, float64:

- loglik: process 6.3 s, first call 1.9 s, then 0.37 ms per value+gradient; llf -181.263394,
  equal to statsmodels' (difference 0).
- nuts (default): process 58.2 and 62.7 s (median 60.5 s): fit 57.3 s = compile 17.4 s +
  sampling 35.9 s; 43.5 leapfrog steps per draw, min bulk ESS 604, max R-hat 1.01.
- nuts_vectorized, same run: process 95.7 and 92.2 s (fit 90.6 = compile 18.6 + sampling
  68.4 s; 35.5 steps per draw, min ESS 624): the threads layout is 1.55x faster per process.
- nuts_dense: process 75.3 and 68.8 s (33.5 steps per draw, min ESS 487); 50.9 s in an earlier
  single run (07:24 UTC) when the default took 71.3 s: the dense metric helps this correlated
  posterior in some runs and not others, so it is not the default.
- statsmodels: process 2.9 s, fit 0.45 s, llf -181.26339, parameters E-views' (0.755, 0.096,
  -0.359, 1.164, 0.591, 0.013, -0.058, -0.247, -0.213).
- Posterior means (default): stay (0.736, 0.863), mu (-0.191, 1.084), sigma 0.869,
  phi (0.192, 0.075, -0.150, -0.122).

Measured 2026-12-03 12:27 UTC, after the start program holds one copy of the model's
gradient and the chains sample with the median of their adapted step sizes (default,
``--repeats 2`` then ``--repeats 1``): process 41.0, 39.8, 37.7 s (compile 12.4, 10.9, 9.8 s;
sampling 24.8, 25.4, 24.8 s; 41.0 leapfrog steps per draw, min ESS 687, max R-hat 1.00). The
code before those two changes, in the same run: process 44.6 s (compile 11.7, sampling 27.9 s,
min ESS 604).  Step sizes per chain, seeds 0-3, before -> after pooling (one fresh process
each, 10:40-10:50 UTC): seed 1: 0.058-0.187 (acceptance 0.44-0.98, 61 divergences, min ESS
294) -> 0.100 in all (acceptance 0.73-0.91, 0 divergences, ESS 514); seed 2: ESS 224 -> 454;
seed 0: 604 -> 563; seed 3: 161 -> 161 (all chains' steps too large either way: 159 and 105
divergences).

Earlier, the day before's figures: the target (a whole fit under 60 s in a fresh process) was not met reliably: the default
took 76.0, 69.7, 53.5, 58.2 and 62.7 s in five processes today (median 62.7 s). Where the time
goes (the same machine, 08:13 UTC): the start program (mode search and first states) 1.7 s to
lower and 6.9 s to compile, the chain steps 1.1 + 3.8 s, the draws' constraint 0.9 + 0.2 s,
pinning 0.8 s; the model's vmapped value and gradient alone compiles in 1.9 s, and the start
program holds two copies of it (the L-BFGS climbs and the curvature probe). Sampling: the 4
chains' step sizes come out of warmup far apart (seed 1: acceptance 0.44-0.98 for a target of
0.8, step sizes 0.058-0.187), and each group waits for its slowest chain, so pooling the
adaptation across chains is the next lever.

Before (2026-12-02 13:36 UTC, idle, chains vectorized, identity as the first metric): process
100.9 s: fit 86.7 s = compile 16.9 s + sampling 63.1 s (31.0 leapfrog steps per draw, min bulk
ESS 538, max R-hat 1.01); statsmodels process 3.1 s.

Where the per-gradient time goes (2026-12-02, ``jax.jit(jax.vmap(jax.value_and_grad(...)))`` over
4 chains, median of 200 calls): the whole log-likelihood 0.66-0.73 ms, of which the step's
terms over the 32 (history, regime) combinations and 127 steps 0.35 ms and the expanded-state
forward algorithm 0.50 ms (its scaled weights 0.17, forward scan 0.14, backward scan 0.17); the
same chain as a dense 16 x 16 forward algorithm takes 2.2 ms.  float32 is no faster (0.68-0.85
ms): per-operation overhead, not arithmetic, sets the floor.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
import warnings

WORKERS = ("loglik", "nuts", "nuts_dense", "nuts_vectorized", "statsmodels")
PUBLISHED = [
    0.754673,
    0.095915,
    -0.358811,
    1.163516,
    0.5911537,
    0.013486,
    -0.057521,
    -0.246983,
    -0.212923,
]  # fmt: skip  (E-views; sigma2 = exp(-0.262658)**2)


# statsmodels' ``rgnp`` test series (statsmodels/tsa/regime_switching/tests/
# test_markov_autoregression.py), kept here so that the coromix workers do not import statsmodels
# and its test module (about 3 s of a fresh process); the statsmodels worker checks it is equal.
RGNP = """
2.59316421 2.20217133 0.45827562 0.9687438 -0.24130757 0.89647478 2.05393219 1.73353648
0.93871289 -0.46477833 -0.80983406 -1.39763689 -0.39886093 1.1918416 1.45620048 2.11808228
1.08957863 1.32390273 0.87296367 -0.19773273 0.45420215 0.07221876 1.1030364 0.82097489
-0.05795795 0.58447772 -1.56192672 -2.05041027 0.53637183 2.33676839 2.34014559 1.2339263
1.8869648 -0.45920792 0.84940469 1.70139849 -0.28756312 0.09594627 -0.86080289 1.03447127
1.23685944 1.42004502 2.22410631 1.30210173 1.03517699 0.9253425 -0.16559951 1.3444382
1.37500131 1.73222184 0.71605635 2.21032143 0.85333031 1.00238776 0.42725441 2.14368343
1.43789184 1.57959926 2.27469826 1.95962656 0.25992399 1.01946914 0.49016398 0.5636338
0.5959546 1.43082857 0.56230122 1.15388393 1.68722844 0.77438205 -0.09647045 1.39600146
0.13646798 0.55223715 -0.39944872 -0.61671102 -0.08722561 1.2101835 -0.90729755 2.64916158
-0.0080694 0.51111895 -0.00401437 2.16821432 1.92586732 1.03504717 1.85897219 2.32004929
0.25570789 -0.09855274 0.89073682 -0.55896485 0.28350255 -1.31155407 -0.88278776 -1.97454941
1.01275265 1.68264723 1.38271284 1.86073637 0.4447377 0.41449001 0.99202275 1.36283576
1.59970522 1.98845816 -0.25684232 0.87786949 3.1095655 0.85324478 1.23337317 0.00314302
-0.09433369 0.89883322 -0.19036628 0.99772376 -2.39120054 0.06649673 1.26136017 1.91637838
-0.3348029 0.44207108 -1.40664911 -1.52129889 0.29919869 -0.80197448 0.15204792 0.98585027
2.13034606 1.34397924 1.61550522 2.70930099 1.24461412 0.50835466 0.14802167
"""


def rgnp():
    import numpy as np

    return np.asarray(RGNP.split(), np.float64)


def statsmodels_rgnp():
    import numpy as np
    import pytest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        module = importlib.import_module(
            "statsmodels.tsa.regime_switching.tests.test_markov_autoregression"
        )
    return np.asarray(module.rgnp, np.float64)


def ergodic(P):
    import jax.numpy as jnp

    K = P.shape[-1]
    A = jnp.concatenate([(jnp.eye(K) - P.T)[:-1], jnp.ones((1, K))])
    return jnp.linalg.solve(A, jnp.eye(K)[-1])


def hamilton(tfd, P, mu, sigma, phi, T):
    """The model as a user writes it: one step that sees the last four steps."""
    pi = ergodic(P)

    def step(prev, inputs):
        s = yield tfd.Categorical(probs=pi if not prev else P[prev[0].s])
        if len(prev) == 4:
            ar = sum(phi[k] * (prev[k].y - mu[prev[k].s]) for k in range(4))
            y = yield tfd.Normal(mu[s] + ar, sigma)

    return tfd.RegimeSwitching(step, T, history=4)


def worker_loglik() -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    import statsmodels.api as sm

    import coromix.distributions as tfd

    y = rgnp()

    def log_lik(theta):
        P = jnp.stack([jnp.stack([theta[0], 1 - theta[0]]), jnp.stack([theta[1], 1 - theta[1]])])
        return hamilton(tfd, P, theta[2:4], jnp.sqrt(theta[4]), theta[5:9], len(y)).log_prob(
            jnp.asarray(y)
        )

    theta = jnp.asarray(PUBLISHED)
    fn = jax.jit(jax.value_and_grad(log_lik))
    start = time.perf_counter()
    value, grad = jax.block_until_ready(fn(theta))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(200):
        start = time.perf_counter()
        jax.block_until_ready(fn(theta))
        times.append(time.perf_counter() - start)
    model = sm.tsa.MarkovAutoregression(y, k_regimes=2, order=4, switching_ar=False)
    reference = model.loglike(np.asarray(PUBLISHED))
    return {
        "compile s": compile_s,
        "eval ms": 1e3 * float(np.median(times)),
        "llf": float(value),
        "llf - statsmodels": float(value) - reference,
        "grad finite": bool(np.all(np.isfinite(grad))),
    }


def worker_nuts(dense_mass: bool = False, chain_method: str = "auto") -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    import coromix as cm

    tfd = cm.distributions
    y = rgnp()

    def model():
        stay = yield tfd.Beta(jnp.array([8.0, 8.0]), jnp.array([2.0, 2.0]))
        mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 2.0))  # regime 0: the lower mean
        sigma = yield tfd.HalfNormal(2.0)
        phi = yield tfd.Normal(jnp.zeros(4), 0.5)
        P = jnp.stack([jnp.stack([stay[0], 1 - stay[0]]), jnp.stack([1 - stay[1], stay[1]])])
        gnp = yield hamilton(tfd, P, mu, sigma, phi, len(y))

    start = time.perf_counter()
    post = cm.nuts(
        model,
        observed={"gnp": jnp.asarray(y)},
        seed=0,
        progress=False,
        dense_mass=dense_mass,
        chain_method=chain_method,
    )
    fit_s = time.perf_counter() - start
    summary = post.summary()
    steps = float(np.asarray(post.sample_stats["n_steps"]).mean())
    means = {
        k: np.round(np.asarray(v).mean(axis=(0, 1)), 3).tolist() for k, v in post.samples.items()
    }
    return {
        "fit s": fit_s,
        "compile s": float(post.attrs["compile_time"]),
        "sampling s": float(post.attrs["sampling_time"]),
        "min ESS": float(summary["ess_bulk"].min()),
        "max R-hat": float(summary["r_hat"].max()),
        "leapfrog steps per draw": steps,
        "chain method": post.attrs["chain_method"],
        "posterior means": means,
    }


def worker_nuts_dense() -> dict:
    return worker_nuts(dense_mass=True)


def worker_nuts_vectorized() -> dict:
    return worker_nuts(chain_method="vectorized")


def worker_statsmodels() -> dict:
    import numpy as np
    import statsmodels.api as sm

    y = rgnp()
    if not np.array_equal(y, statsmodels_rgnp()):
        raise AssertionError("RGNP differs from statsmodels' rgnp test series")
    model = sm.tsa.MarkovAutoregression(y, k_regimes=2, order=4, switching_ar=False)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(search_reps=20, rng=0, disp=False)
    return {
        "fit s": time.perf_counter() - start,
        "llf": float(fit.llf),
        "params": np.round(np.asarray(fit.params), 3).tolist(),
    }


def main() -> None:
    import statistics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=WORKERS)
    parser.add_argument("--workers", nargs="+", choices=WORKERS, default=list(WORKERS))
    parser.add_argument("--repeats", type=int, default=1, help="processes per worker, interleaved")
    args = parser.parse_args()
    if args.worker:
        start = time.perf_counter()
        result = globals()[f"worker_{args.worker}"]()
        result["worker s"] = time.perf_counter() - start
        print("RESULT " + json.dumps(result))
        return
    rows: dict[str, list[dict]] = {}
    for _ in range(args.repeats):
        for name in args.workers:
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, __file__, "--worker", name],
                check=False,
                capture_output=True,
                text=True,
            )
            elapsed = time.perf_counter() - start
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode or not lines:
                print(f"{name} failed:\n{done.stderr[-3000:]}")
                continue
            row = {"process s": elapsed, **json.loads(lines[-1][len("RESULT ") :])}
            rows.setdefault(name, []).append(row)
    for name, runs in rows.items():
        print(f"\n{name}")
        for key in runs[0]:
            values = [run[key] for run in runs]
            if isinstance(values[0], float):
                shown = " ".join(f"{v:.4g}" for v in values)
                if len(values) > 1:
                    shown += f"  (median {statistics.median(values):.4g})"
            else:
                shown = " | ".join(str(v) for v in values)
            print(f"  {key:>18}: {shown}")


if __name__ == "__main__":
    main()
