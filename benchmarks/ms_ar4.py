"""Hamilton's MS-AR(4) on GNP growth written with ``RegimeSwitching(history=4)``: speed and fit.

The model (Hamilton 1989; statsmodels' ``MarkovAutoregression(rgnp, k_regimes=2, order=4,
switching_ar=False)``), conditional on the first four observations as statsmodels fits it::

    s_0 ~ ergodic(P),  s_t | s_{t-1} ~ P[s_{t-1}],
    y_t = mu[s_t] + sum_{k=1..4} phi_k (y_{t-k} - mu[s_{t-k}]) + sigma e_t   (t >= 4)

Data: statsmodels' ``rgnp`` test series (135 quarters, 1951Q2-1984Q4).  Every worker runs in a
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
  draws), default start, float64; "compile s" and "sampling s" from ``post.attrs``; posterior
  means, min bulk ESS and max R-hat from ``post.summary()``, mean leapfrog steps per draw.
- ``statsmodels``: ``MarkovAutoregression(...).fit(search_reps=20)`` (maximum likelihood,
  BFGS from its start plus 20 random starts); its log-likelihood and parameters.

Run: .venv/bin/python benchmarks/ms_ar4.py

Measured 2026-12-02 13:36 UTC on an idle machine (2 cores, load about 1), float64, after the
history kernel got its custom VJP (``coromix.markov.history``):

- loglik: process 6.9 s, first call (trace + compile of value and gradient) 1.6 s, then 0.34 ms
  per value+gradient; llf -181.263394 equal to statsmodels' (difference 0).
- nuts: process 100.9 s: fit 86.7 s = compile 16.9 s + sampling 63.1 s (4 x (1000 + 1000),
  31.0 leapfrog steps per draw, min bulk ESS 538, max R-hat 1.01); posterior means stay
  (0.733, 0.862), mu (-0.181, 1.078), sigma 0.874, phi (0.198, 0.075, -0.143, -0.117).
  The issue's target (under 60 s) is NOT met.
- statsmodels: process 3.1 s, fit 0.60 s, llf -181.26339, parameters E-views' (0.755, 0.096,
  -0.359, 1.164, 0.591, 0.013, -0.058, -0.247, -0.213).

Where the NUTS time goes (same machine, ``jax.jit(jax.vmap(jax.value_and_grad(...)))`` over
4 chains, median of 200 calls): the whole log-likelihood 0.66-0.73 ms, of which the step's
terms over the 32 (history, regime) combinations and 127 steps 0.35 ms and the expanded-state
forward algorithm 0.50 ms (its scaled weights 0.17, forward scan 0.14, backward scan 0.17); the
same chain as a dense 16 x 16 forward algorithm takes 2.2 ms.  float32 is no faster (0.68-0.85
ms): per-operation overhead, not arithmetic, sets the floor.  So sampling is about 2000
iterations x the longest of 4 trees (31 leapfrogs on average) x 0.7 ms, and compiling the three
programs (the mode search's, the chain steps', the draws' constraint) 17 s.
With the chains split over 2 host CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2
.venv/bin/python benchmarks/ms_ar4.py --worker nuts``, 14:43 UTC, idle): process 67.3 s, fit 55.4 s
= compile 17.1 s + sampling 32.3 s (34.9 leapfrog steps per draw, min ESS 702, max R-hat 1.02,
and one transition reached a non-finite log density: warned, not yet looked into).
Before (08:29 UTC, load 6-7, the kernel differentiated through its scan): process 208 s, compile
30.6 s, sampling 156.1 s.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
import warnings

WORKERS = ("loglik", "nuts", "statsmodels")
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


def rgnp():
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


def worker_nuts() -> dict:
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
    post = cm.nuts(model, observed={"gnp": jnp.asarray(y)}, seed=0, progress=False)
    fit_s = time.perf_counter() - start
    summary = post.summary()
    steps = float(np.asarray(post.to_arviz().sample_stats["n_steps"]).mean())
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
        "posterior means": means,
    }


def worker_statsmodels() -> dict:
    import numpy as np
    import statsmodels.api as sm

    y = rgnp()
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=WORKERS)
    args = parser.parse_args()
    if args.worker:
        start = time.perf_counter()
        result = globals()[f"worker_{args.worker}"]()
        result["worker s"] = time.perf_counter() - start
        print("RESULT " + json.dumps(result))
        return
    rows = {}
    for name in WORKERS:
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
        rows[name] = {"process s": elapsed, **json.loads(lines[-1][len("RESULT ") :])}
    for name, row in rows.items():
        print(f"\n{name}")
        for key, value in row.items():
            shown = f"{value:.4g}" if isinstance(value, float) else value
            print(f"  {key:>18}: {shown}")


if __name__ == "__main__":
    main()
