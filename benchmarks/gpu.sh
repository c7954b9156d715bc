#!/usr/bin/env bash
# GPU benchmarks of issue 14 (item 5), for a lent GPU machine; writes its table to stdout.
#
#   bash benchmarks/gpu.sh [--quick]        (from the repository root; PYTHON=... to choose python)
#   bash benchmarks/gpu.sh --smoke          (tiny sizes: checks on a CPU that every section runs)
#
# Needs jax with CUDA (pip install -U "jax[cuda12]") and coromix installed (pip install -e .).
# Nothing else in the repository depends on it; figures go into README's Benchmarks section by
# hand.  Sections (each runs on its own; a failure prints "FAILED: ..." and the script goes on):
#
# 1. Parallel-in-time HMM forward algorithm, value+grad: a 3-state Gaussian HMM at T = 1e5, 1e6,
#    1e7 (--quick: 1e5, 1e6), tfd.HiddenMarkovModel with parallel=True (associative scan, the GPU
#    default) against parallel=False (the sequential lax.scan), jit(value_and_grad) with respect
#    to means, log-scales and transition logits, float32; fastest of 5 calls after compiling.
# 2. Plated 3-component GMM value+grad at N = 1e6 and 1e7: coromix against the hand-fused JAX
#    reference (benchmarks/gmm.py --value-grad).
# 3. A chains x data mesh: cm.nuts on the GMM at N = 1e6, 4 chains x (300 + 300), the data
#    sharded over the devices' "data" axis (NamedSharding) with the chains over "chains" when
#    there are >= 2 devices (mesh (2, n/2), or (1, n)); on one device the same fit unsharded.
#    Whole cm.nuts call, compile and sampling times, min bulk ESS.
#
# Device time on lent machines is short: the whole script takes about 3-6 minutes on one H200
# (most of it compiling); --quick about 2.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
[ "${1:-}" = "--smoke" ] && QUICK=smoke
GMM_SIZES="1e6 1e7"
[ "$QUICK" = "smoke" ] && GMM_SIZES="1e3 1e4"

echo "== coromix GPU benchmarks ($(date -u +%FT%TZ)) =="
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PYTHON" -c "import jax, coromix; print('jax', jax.__version__, '| backend', jax.default_backend(), '| devices', jax.devices(), '| coromix', coromix.__version__)"

echo
echo "== 1. parallel-in-time HMM, value+grad (K = 3, float32) =="
QUICK=$QUICK timeout 900 "$PYTHON" - <<'EOF' || echo "FAILED: section 1"
import os, time
import jax, jax.numpy as jnp, numpy as np
import coromix.distributions as tfd

K = 3
sizes = {"1": [100_000, 1_000_000], "smoke": [1000]}.get(
    os.environ["QUICK"], [100_000, 1_000_000, 10_000_000]
)


def problem(T):
    rng = np.random.default_rng(0)
    A = np.full((K, K), 0.05) + 0.85 * np.eye(K)
    z = np.zeros(T, np.int64)
    u = rng.random(T)
    cum = np.cumsum(A, 1)
    # vectorized-enough simulation: a Python loop over 1e7 steps is slow, so draw the chain in
    # NumPy blocks of stays (sticky chain: the state changes with probability 0.1 per step)
    change = u < 0.1
    new = rng.integers(0, K - 1, T)
    state = 0
    idx = np.flatnonzero(change)
    last = 0
    for i in idx:
        z[last:i] = state
        state = (state + 1 + new[i]) % K
        last = i
    z[last:] = state
    y = np.array([-5.0, 0.0, 5.0])[z] + rng.normal(size=T)
    params = {
        "loc": jnp.array([-4.0, 0.5, 4.0], jnp.float32),
        "log_scale": jnp.zeros(K, jnp.float32),
        "logits": jnp.asarray(np.log(A), jnp.float32),
    }
    return params, jnp.asarray(y, jnp.float32)


def fn(T, parallel):
    def log_lik(p, y):
        return tfd.HiddenMarkovModel(
            tfd.Categorical(logits=jnp.zeros(K, y.dtype)),
            tfd.Categorical(logits=p["logits"]),
            tfd.Normal(p["loc"], jnp.exp(p["log_scale"])),
            num_steps=T,
            parallel=parallel,
            validate_args=False,
        ).log_prob(y)

    return jax.jit(jax.value_and_grad(log_lik))


def best(f, *a, n=5):
    t0 = time.perf_counter(); jax.block_until_ready(f(*a)); first = time.perf_counter() - t0
    ts = []
    for _ in range(n):
        t0 = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t0)
    return first, min(ts)


print(f"{'T':>10} {'parallel ms':>12} {'sequential ms':>14} {'seq/par':>8} {'|dvalue|':>9} {'1st call s (par, seq)':>22}")
for T in sizes:
    p, y = problem(T)
    fp, fs = fn(T, True), fn(T, False)
    vp, vs = float(fp(p, y)[0]), float(fs(p, y)[0])
    (cp, tp), (cs, ts) = best(fp, p, y), best(fs, p, y, n=2 if T >= 10_000_000 else 5)
    print(f"{T:>10} {1e3*tp:>12.2f} {1e3*ts:>14.2f} {ts/tp:>8.1f} {abs(vp-vs):>9.2e} {cp:>10.1f} {cs:>10.1f}", flush=True)
EOF

echo
echo "== 2. plated GMM value+grad (K = 3, float32) against the hand-fused reference =="
timeout 600 "$PYTHON" benchmarks/gmm.py --value-grad --sizes $GMM_SIZES --repeats 10 \
  || echo "FAILED: section 2"

echo
echo "== 3. cm.nuts on the GMM at N = 1e6, 4 x (300 + 300), chains x data mesh =="
QUICK=$QUICK timeout 900 "$PYTHON" - <<'EOF' || echo "FAILED: section 3"
import os, time
import arviz as az
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import coromix as cm

tfd = cm.distributions
N, K = (1000 if os.environ["QUICK"] == "smoke" else 1_000_000), 3
DRAWS = 50 if os.environ["QUICK"] == "smoke" else 300
rng = np.random.default_rng(0)
z = rng.choice(K, size=N, p=[0.3, 0.45, 0.25])
y = (np.array([-4.0, 0.0, 5.0])[z] + np.array([1.0, 1.5, 0.8])[z] * rng.normal(size=N)).astype(np.float32)


def gmm():
    w = yield tfd.Dirichlet(jnp.ones(K))
    mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(K), 10.0))
    sigma = yield tfd.HalfNormal(5.0 * jnp.ones(K))
    z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (N, K)))
    y = yield tfd.Normal(mu[z], sigma[z])


start = {"w": np.full(K, 1 / K, np.float32), "mu": np.quantile(y, [1 / 6, 1 / 2, 5 / 6]).astype(np.float32),
         "sigma": np.full(K, y.std() / 3, np.float32)}
devices = jax.devices()
n = len(devices)
layouts = [("one device", None)]
if n >= 2:
    shape = (2, n // 2) if n % 2 == 0 else (1, n)
    layouts.append((f"mesh chains x data {shape}", Mesh(np.array(devices[: shape[0] * shape[1]]).reshape(shape), ("chains", "data"))))
print(f"{'layout':<28} {'call s':>7} {'compile s':>9} {'sampling s':>10} {'min ESS':>8} {'ESS/s':>7}")
for label, mesh in layouts:
    data = jnp.asarray(y) if mesh is None else jax.device_put(y, NamedSharding(mesh, P("data")))
    t0 = time.perf_counter()
    post = cm.nuts(gmm, observed={"y": data}, num_chains=4, num_warmup=DRAWS, num_samples=DRAWS,
                   seed=0, progress=False, init=start)
    call = time.perf_counter() - t0
    ess = az.ess({k: np.asarray(v) for k, v in post.samples.items()}, method="bulk")
    m = min(float(np.nanmin(ess[k].values)) for k in post.samples)
    print(f"{label:<28} {call:>7.1f} {post.attrs['compile_time']:>9.1f} {post.attrs['sampling_time']:>10.1f} {m:>8.0f} {m/call:>7.1f}", flush=True)
EOF
echo
echo "== done ($(date -u +%FT%TZ)) =="
