"""Forward algorithm: coromix vs TensorFlow Probability (JAX substrate) vs NumPyro, same run.

Gaussian HMM with K states and T steps, float32, jit-compiled; times are medians of repeated calls
after compilation (ms).  "value" is the log-likelihood, "value+grad" its value and gradient with
respect to the means, log-scales and transition logits.  "err" is the float32 result's distance
from a float64 reference (nats).  Ratios are peer time / coromix time (> 1: coromix is faster).

Run: make bench   (or: .venv/bin/python benchmarks/hmm_forward.py [--quick])
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import coromix.distributions as tfd


def make_problem(T: int, K: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = {
        "loc": np.sort(rng.normal(0.0, 3.0, size=K)),
        "log_scale": rng.normal(0.0, 0.2, size=K),
        "logits": rng.normal(0.0, 1.0, size=(K, K)) + 3.0 * np.eye(K),
    }
    A = np.exp(params["logits"]) / np.exp(params["logits"]).sum(1, keepdims=True)
    z = np.zeros(T, int)
    for t in range(1, T):
        z[t] = rng.choice(K, p=A[z[t - 1]])
    y = params["loc"][z] + np.exp(params["log_scale"])[z] * rng.normal(size=T)
    return params, y


def coromix_fn(T, K):
    def log_lik(params, y):
        hmm = tfd.HiddenMarkovModel(
            tfd.Categorical(logits=jnp.zeros(K, y.dtype)),
            tfd.Categorical(logits=params["logits"]),
            tfd.Normal(params["loc"], jnp.exp(params["log_scale"])),
            num_steps=T,
            validate_args=False,
        )
        return hmm.log_prob(y)

    return log_lik


def tfp_fn(T, K):
    from tensorflow_probability.substrates import jax as tfp

    d = tfp.distributions

    def log_lik(params, y):
        hmm = d.HiddenMarkovModel(
            d.Categorical(logits=jnp.zeros(K, y.dtype)),
            d.Categorical(logits=params["logits"]),
            d.Normal(params["loc"], jnp.exp(params["log_scale"])),
            num_steps=T,
        )
        return hmm.log_prob(y)

    return log_lik


def numpyro_fn(T, K):
    import numpyro
    import numpyro.distributions as nd
    from numpyro.contrib.control_flow import scan
    from numpyro.contrib.funsor import config_enumerate, enum, log_density

    def model(params, y):
        trans = jax.nn.softmax(params["logits"], -1)

        def transition(z_prev, y_t):
            z = numpyro.sample("z", nd.Categorical(trans[z_prev]))
            numpyro.sample(
                "y", nd.Normal(params["loc"][z], jnp.exp(params["log_scale"])[z]), obs=y_t
            )
            return z, None

        z0 = numpyro.sample("z0", nd.Categorical(jnp.full(K, 1.0 / K)))
        numpyro.sample(
            "y0", nd.Normal(params["loc"][z0], jnp.exp(params["log_scale"])[z0]), obs=y[0]
        )
        scan(transition, z0, y[1:])

    # what NumPyro's NUTS evaluates for this model: every z enumerated, scan over time
    enumerated = enum(config_enumerate(model), first_available_dim=-1)

    def log_lik(params, y):
        return log_density(enumerated, (params, y), {}, {})[0]

    return log_lik


def timed(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="T = 1e3, 1e4 only")
    parser.add_argument("--no-numpyro", action="store_true")
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    peers = {"coromix": coromix_fn, "tfp": tfp_fn}
    if not args.no_numpyro:
        peers["numpyro"] = numpyro_fn
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} device(s)")
    header = f"{'T':>7} {'K':>2} | " + " | ".join(
        f"{name:>8} value  v+grad   err" for name in peers
    )
    print(header)
    print("-" * len(header))
    ratios = []
    for T in sizes:
        for K in (2, 3, 5):
            params64, y64 = make_problem(T, K)
            with jax.enable_x64(True):
                ref = float(
                    jax.jit(coromix_fn(T, K))(
                        {k: jnp.asarray(v) for k, v in params64.items()}, jnp.asarray(y64)
                    )
                )
            params = {k: jnp.asarray(v, jnp.float32) for k, v in params64.items()}
            y = jnp.asarray(y64, jnp.float32)
            repeats = 20 if T <= 10_000 else 5
            row, results = [], {}
            for name, make in peers.items():
                fn = make(T, K)
                value = jax.jit(fn)
                vgrad = jax.jit(jax.value_and_grad(fn))
                err = abs(float(value(params, y)) - ref)
                results[name] = (
                    timed(value, params, y, repeats=repeats),
                    timed(vgrad, params, y, repeats=repeats),
                    err,
                )
                row.append("{:>14.2f} {:>7.2f} {:>5.3f}".format(*results[name]))
            print(f"{T:>7} {K:>2} | " + " | ".join(row), flush=True)
            base = results["coromix"]
            ratios.append(
                (
                    T,
                    K,
                    {
                        n: (r[0] / base[0], r[1] / base[1])
                        for n, r in results.items()
                        if n != "coromix"
                    },
                )
            )
    print("\nspeed-up of coromix (peer time / coromix time), value and value+grad:")
    for T, K, by_peer in ratios:
        print(
            f"{T:>7} {K:>2} | "
            + " | ".join(f"{n}: {v:5.1f}x {g:5.1f}x" for n, (v, g) in by_peer.items())
        )


if __name__ == "__main__":
    main()
