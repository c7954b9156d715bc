"""Whole-process timing of the coal-mining change point fit: coromix vs hand-written JAX + BlackJAX.

The model (111 yearly disaster counts ``y_t``, one switchpoint year ``s``)::

    s ~ Categorical(uniform over 0..110),  early, late ~ Exponential(1),
    y_t ~ Poisson(early if t < s else late)

The data are simulated as in ``tests/test_scoring.py`` (``coal_counts``): NumPy
``default_rng(seed).poisson(rate)`` with rate 3.0 for the years ``t < 40`` and 1.0 after (seed 0
unless ``--data-seed``).  They are not the historical British series 1851-1962.

What is timed.  Every fit runs in a fresh Python process (this file with ``--worker NAME``); the
parent measures ``time.perf_counter`` around ``subprocess.run``, so "process s" includes interpreter
start, the imports (JAX, BlackJAX, coromix, ArviZ), tracing, XLA compilation, the start search,
warmup, sampling, and the work after the fit that both workers do alike: the exact posterior of
the switchpoint per draw, averaged over the draws, and ArviZ's bulk ESS and R-hat of ``early`` and
``late``.  The worker also reports its own split of that time:

- "import s": from the worker's first line to the end of its imports (``jax`` and ``coromix``;
  ``jax``, ``blackjax`` and ``arviz`` for the reference; coromix imports ArviZ later, inside
  ``cm.nuts``).  "process s" minus the worker's own time is the interpreter start.
- "fit s": from there until the draws are in hand: for coromix the whole ``cm.nuts`` call, which
  also checks convergence (ArviZ import, R-hat and ESS, and when R-hat exceeds 1.01 the search for
  label switching and minor modes) and issues ``ConvergenceWarning``s; for the reference the
  tracing, compilation and run of the jitted program.
- "compile s" (part of fit s): tracing and XLA compilation of the sampling program (coromix
  ``post.attrs["compile_time"]``, the reference ``jax.jit(...).lower(...).compile()``).
- "sampling s" (part of fit s): running that compiled program: warmup and draws, and for coromix's
  default start the mode search (coromix ``post.attrs["sampling_time"]``).
- "after s": the switchpoint posterior per draw averaged over the draws, and the ArviZ summary.

The two workers, 4 chains each vectorized in one jitted program, 1000 warmup + 1000 draws per chain,
NUTS with target acceptance 0.8, max tree depth 10, diagonal mass matrix, Stan-style window
adaptation (BlackJAX in both), float32 unless ``--float64``:

- ``coromix``: the model as a user writes it (a generator yielding ``tfd.Categorical``,
  ``tfd.Exponential``, ``tfd.Poisson``; ``jnp.where(YEARS < switchpoint, early, late)``), fitted by
  ``cm.nuts(jd, observed={"disasters": counts}, num_chains=4, num_warmup=1000, num_samples=1000,
  seed=0, progress=False)``.  coromix sums the switchpoint out exactly (one vectorized run over
  its 111 values).  Default start (``init="mode"``): 8 L-BFGS climbs inside the compiled program,
  then each chain near the best end.  After the fit: ``post.discrete_posterior()["switchpoint"]``
  and ``post.summary()``.
- ``jax_reference``: what one writes without a modelling layer: the log density of
  ``q = (log early, log late)`` by hand (the Poisson log pmf at the ``(111, 111)`` grid of
  switchpoints x years built with ``jnp.where``, ``logsumexp`` over the switchpoints plus
  ``log(1/111)``, the Exponential(1) log densities, and the log-Jacobian ``q_0 + q_1``),
  ``blackjax.window_adaptation(blackjax.nuts)`` for 1000 steps then 1000 ``blackjax.nuts`` steps in
  a ``jax.lax.scan``, all chains in one ``jax.jit(jax.vmap(...))``.  Each chain starts at its own
  point uniform in (-2, 2) on unconstrained space (Stan's, NumPyro's and coromix's
  ``init="uniform"`` start).  After the fit: the softmax over switchpoints of the same per-value log
  joint, per draw (one jitted ``vmap``), and ``arviz.summary``.
- ``coromix_uniform`` (only with ``--libraries``): ``coromix`` with ``init="uniform"``, the same
  start as the reference (no mode search).

Columns: "TV" is the total variation distance between the switchpoint posterior averaged over the
draws and the exact ``p(s | y)``: with Gamma(1, 1) priors each segment's rate integrates out,
``p(s | y) ∝ prod over the two segments Gamma(c + 1) / (n + 1)^(c + 1)`` (``c`` the segment's count
total, ``n`` its length; the uniform prior on ``s`` cancels).  "min ESS" is the smallest bulk ESS
and "max R-hat" the largest rank-normalized R-hat over ``early`` and ``late``.  With ``--repeats R``
each cell is the median over R processes (the libraries alternate order between repeats); the last
line is the ratio of the median whole-process seconds coromix / reference.  ConvergenceWarnings or
other warning lines a worker prints on stderr are listed after the table.

Run: .venv/bin/python benchmarks/coal_mining.py [--repeats 3] [--float64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("coromix", "jax_reference", "coromix_uniform")
DEFAULT_LIBRARIES = ("coromix", "jax_reference")
NUM_YEARS = 111
SWITCH_YEAR = 40
EARLY_RATE, LATE_RATE = 3.0, 1.0
NUM_CHAINS = 4


def coal_counts(seed: int):
    """111 simulated yearly counts: Poisson(3.0) before year 40, Poisson(1.0) from year 40 on."""
    import numpy as np

    rng = np.random.default_rng(seed)
    years = np.arange(NUM_YEARS)
    return rng.poisson(np.where(years < SWITCH_YEAR, EARLY_RATE, LATE_RATE)).astype(np.float64)


def exact_switchpoint_posterior(y):
    """Closed-form ``p(s | y)`` (NumPy/SciPy, float64): the Gamma(1, 1) rates integrated out."""
    import numpy as np
    from scipy.special import gammaln, logsumexp

    y = np.asarray(y, np.float64)
    s = np.arange(NUM_YEARS)
    c_early = np.concatenate([[0.0], np.cumsum(y)])[s]  # sum of y[:s]
    c_late = y.sum() - c_early
    n_early, n_late = s, NUM_YEARS - s
    log_w = (
        gammaln(c_early + 1)
        - (c_early + 1) * np.log(n_early + 1)
        + gammaln(c_late + 1)
        - (c_late + 1) * np.log(n_late + 1)
    )
    return np.exp(log_w - logsumexp(log_w))


def diagnostics(table) -> tuple[float, float]:
    """(min bulk ESS, max R-hat) over the rows of an ArviZ summary."""
    return float(table["ess_bulk"].min()), float(table["r_hat"].max())


# --- the workers: one fit per process ----------------------------------------------------------
def fit_coromix(y, args, init: str | None = None) -> dict:
    import jax.numpy as jnp

    import coromix as cm
    import coromix.distributions as tfd

    imported = time.perf_counter()
    years = jnp.arange(NUM_YEARS)

    def coal_mining():
        switchpoint = yield tfd.Categorical(probs=jnp.full(NUM_YEARS, 1 / NUM_YEARS))
        early = yield tfd.Exponential(1.0)
        late = yield tfd.Exponential(1.0)
        rate = jnp.where(years < switchpoint, early, late)
        disasters = yield tfd.Poisson(rate)

    jd = tfd.JointDistributionCoroutine(coal_mining)
    kwargs = {} if init is None else {"init": init}
    post = cm.nuts(
        jd,
        observed={"disasters": jnp.asarray(y)},
        num_chains=NUM_CHAINS,
        num_warmup=args.warmup,
        num_samples=args.samples,
        seed=args.seed,
        progress=False,
        **kwargs,
    )
    fitted = time.perf_counter()
    probs = post.discrete_posterior()["switchpoint"]  # (chain, draw, 111)
    switch_probs = probs.reshape(-1, NUM_YEARS).astype("float64").mean(axis=0)
    discrete_at = time.perf_counter()
    min_ess, max_rhat = diagnostics(post.summary(var_names=["early", "late"]))
    return {
        "import_seconds": imported,
        "fit_seconds": fitted - imported,
        "discrete_seconds": discrete_at - fitted,
        "summary_seconds": time.perf_counter() - discrete_at,
        "compile_seconds": float(post.attrs["compile_time"]),
        "sampling_seconds": float(post.attrs["sampling_time"]),
        "switch_probs": switch_probs,
        "min_ess": min_ess,
        "max_rhat": max_rhat,
        "divergences": post.num_divergences,
        "means": {k: float(post.samples[k].mean()) for k in ("early", "late")},
        "versions": {"coromix": cm.__version__},
    }


def fit_jax_reference(y, args) -> dict:
    import arviz as az
    import blackjax
    import jax
    import jax.numpy as jnp
    import numpy as np
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    imported = time.perf_counter()
    dtype = jnp.float64 if args.float64 else jnp.float32
    y = jnp.asarray(y, dtype)
    years = jnp.arange(NUM_YEARS)
    switchpoints = jnp.arange(NUM_YEARS)
    log_factorial_y = jnp.sum(jax.scipy.special.gammaln(y + 1))

    def log_joint_per_switchpoint(early, late):
        """log p(s, early, late, y) for s = 0..110: a (111,) vector."""
        rate = jnp.where(years[None, :] < switchpoints[:, None], early, late)  # (s, t)
        log_lik = jnp.sum(y * jnp.log(rate) - rate, axis=-1) - log_factorial_y
        return log_lik - jnp.log(NUM_YEARS) - early - late  # Exponential(1) priors

    def log_density(q):  # q = (log early, log late)
        early, late = jnp.exp(q[0]), jnp.exp(q[1])
        return jax.nn.logsumexp(log_joint_per_switchpoint(early, late)) + q[0] + q[1]

    def run_chain(key, q0):
        warmup_key, sample_key = jax.random.split(key)
        warmup = blackjax.window_adaptation(
            blackjax.nuts,
            log_density,
            target_acceptance_rate=0.8,
            adaptation_info_fn=get_filter_adapt_info_fn(),
        )
        (state, parameters), _ = warmup.run(warmup_key, q0, args.warmup)
        sampler = blackjax.nuts(log_density, **parameters)

        def one_draw(state, key):
            state, info = sampler.step(key, state)
            return state, (jnp.exp(state.position), info.is_divergent)

        _, (draws, diverging) = jax.lax.scan(
            one_draw, state, jax.random.split(sample_key, args.samples)
        )
        return draws, diverging

    init_key, chain_key = jax.random.split(jax.random.key(args.seed))
    q0 = jax.random.uniform(init_key, (NUM_CHAINS, 2), dtype, -2.0, 2.0)
    chain_keys = jax.random.split(chain_key, NUM_CHAINS)
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(run_chain)).lower(chain_keys, q0).compile()
    compiled_at = time.perf_counter()
    draws, diverging = jax.block_until_ready(compiled(chain_keys, q0))
    sampled_at = time.perf_counter()
    draws = np.asarray(draws)  # (chain, draw, 2): early, late
    samples = {"early": draws[..., 0], "late": draws[..., 1]}
    fitted = time.perf_counter()

    @jax.jit
    def switch_probs_of(flat):  # (num_draws, 2) -> mean over draws of p(s | early, late, y)
        lp = jax.vmap(lambda d: log_joint_per_switchpoint(d[0], d[1]))(flat)
        return jnp.mean(jax.nn.softmax(lp, axis=-1), axis=0)

    switch_probs = np.asarray(switch_probs_of(jnp.asarray(draws.reshape(-1, 2))), np.float64)
    discrete_at = time.perf_counter()
    min_ess, max_rhat = diagnostics(az.summary(samples))
    return {
        "import_seconds": imported,
        "fit_seconds": fitted - imported,
        "discrete_seconds": discrete_at - fitted,
        "summary_seconds": time.perf_counter() - discrete_at,
        "compile_seconds": compiled_at - start,
        "sampling_seconds": sampled_at - compiled_at,
        "switch_probs": switch_probs,
        "min_ess": min_ess,
        "max_rhat": max_rhat,
        "divergences": int(np.sum(np.asarray(diverging))),
        "means": {k: float(v.mean()) for k, v in samples.items()},
        "versions": {"blackjax": blackjax.__version__},
    }


def worker(args) -> None:
    process_start = time.perf_counter()
    import jax

    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import numpy as np

    y = coal_counts(args.data_seed)
    if args.worker == "coromix":
        out = fit_coromix(y, args)
    elif args.worker == "coromix_uniform":
        out = fit_coromix(y, args, init="uniform")
    else:
        out = fit_jax_reference(y, args)
    probs = out.pop("switch_probs")
    tv = 0.5 * float(np.abs(probs / probs.sum() - exact_switchpoint_posterior(y)).sum())
    out["import_seconds"] -= process_start
    out["worker_seconds"] = time.perf_counter() - process_start
    out.update(
        library=args.worker,
        tv=tv,
        versions={**out["versions"], "jax": jax.__version__},
        backend=jax.default_backend(),
    )
    print(json.dumps(out))


# --- the parent: spawn, time, tabulate ---------------------------------------------------------
def run_one(library: str, args) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", library]
    command += ["--warmup", str(args.warmup), "--samples", str(args.samples)]
    command += ["--seed", str(args.seed), "--data-seed", str(args.data_seed)]
    command += ["--float64"] if args.float64 else []
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    total = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{library} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1]
    result = json.loads(line)
    result["total_seconds"] = total
    result["stderr_warnings"] = [
        ln.strip() for ln in done.stderr.splitlines() if "warn" in ln.lower() and ln.strip()
    ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=3, help="processes per library; cells are medians"
    )
    parser.add_argument("--float64", action="store_true", help="enable jax_enable_x64")
    parser.add_argument(
        "--libraries", nargs="+", default=list(DEFAULT_LIBRARIES), choices=LIBRARIES
    )
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (repeat r uses seed + r)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the simulated counts")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    y = coal_counts(args.data_seed)
    exact = exact_switchpoint_posterior(y)
    print(
        f"coal mining change point: {NUM_YEARS} simulated years (seed {args.data_seed}, total "
        f"{int(y.sum())} disasters); exact p(s | y) mode at year {int(exact.argmax())} "
        f"(p = {exact.max():.3f})"
    )
    print(
        f"{NUM_CHAINS} chains x ({args.warmup} warmup + {args.samples} draws), vectorized; "
        f"{'float64' if args.float64 else 'float32'}; each fit a fresh process; "
        f"{args.repeats} process(es) per library"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}; load average before: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    results: dict[str, list[dict]] = {}
    for r in range(args.repeats):
        order = args.libraries if r % 2 == 0 else args.libraries[::-1]
        for library in order:
            res = run_one(library, argparse.Namespace(**{**vars(args), "seed": args.seed + r}))
            results.setdefault(library, []).append(res)
            print(
                f"  done: {library:<15} {res['total_seconds']:7.1f} s "
                f"(load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    versions: dict[str, str] = {}
    for rs in results.values():
        versions.update(rs[0]["versions"])
    print(f"versions: {versions}; backend {next(iter(results.values()))[0]['backend']}")
    print("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print()

    def median(rs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rs)

    header = (
        f"{'library':<15} {'process s':>9} {'import s':>8} {'fit s':>6} {'compile s':>9} "
        f"{'sampling s':>10} {'after s':>7} {'TV':>7} {'min ESS':>7} {'max R-hat':>9} "
        f"{'diverg.':>7}"
    )
    print(header)
    print("-" * len(header))
    for library, rs in results.items():
        after = statistics.median(r["discrete_seconds"] + r["summary_seconds"] for r in rs)
        print(
            f"{library:<15} {median(rs, 'total_seconds'):>9.1f} "
            f"{median(rs, 'import_seconds'):>8.1f} {median(rs, 'fit_seconds'):>6.1f} "
            f"{median(rs, 'compile_seconds'):>9.1f} {median(rs, 'sampling_seconds'):>10.2f} "
            f"{after:>7.1f} {median(rs, 'tv'):>7.4f} {median(rs, 'min_ess'):>7.0f} "
            f"{median(rs, 'max_rhat'):>9.3f} {','.join(str(r['divergences']) for r in rs):>7}"
        )
    print()
    for library, rs in results.items():
        means = ", ".join(
            f"{k} {statistics.median(r['means'][k] for r in rs):.3f}" for k in rs[0]["means"]
        )
        print(f"posterior means, {library}: {means}")
    reference = results.get("jax_reference")
    for library in ("coromix", "coromix_uniform"):
        if library in results and reference:
            ratio = median(results[library], "total_seconds") / median(reference, "total_seconds")
            sampling = median(results[library], "sampling_seconds") / median(
                reference, "sampling_seconds"
            )
            print(
                f"{library}/jax_reference: whole-process time {ratio:.2f}, "
                f"sampling-only time {sampling:.2f}"
            )
    for library, rs in results.items():
        lines = sorted({ln for r in rs for ln in r["stderr_warnings"]})
        for ln in lines:
            print(f"stderr of {library}: {ln}")


if __name__ == "__main__":
    main()
