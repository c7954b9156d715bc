"""The time-sharded forward pass (``markov.sharded_log_likelihood``) on 4 host CPU devices.

A subprocess with ``--xla_force_host_platform_device_count=4`` checks, against the one-device
forward algorithm (``markov.forward_log_likelihood``):

* value and gradient (in ``log_init``, ``log_trans``, ``log_obs``) for homogeneous and
  time-varying transitions, ``T`` a multiple of 4 and not (the last block padded), ``T`` below
  the number of devices, float32 and float64;
* a series placed along time (``NamedSharding(mesh, P("time"))``) is taken as it is, and the
  compiled gradient communicates the blocks' matrices (an all-gather);
* ``cm.nuts`` on a model whose HMM term is the time-sharded log-likelihood
  (``cm.factor``) gives the posterior of the same model with the one-device forward pass (means
  within 4 MCSE; the same seed, but the float32 rounding of the reordered products moves the
  draws apart over the chain).  The chain programs are compiled for the carry's layout on the
  model's mesh.
"""

import json
import os
import subprocess
import sys

import pytest

# subprocesses with 4 host devices, each compiling its programs (about 18 and 40 s): the slow
# suite, as tests/infer/test_sharded_data.py; the default suite runs the one-device doctest
pytestmark = pytest.mark.slow

HEADER = r"""
import json, warnings
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import coromix as cm
from coromix import markov

tfd = cm.distributions
mesh = Mesh(np.array(jax.devices()), ("time",))
rng = np.random.default_rng(0)
out = {"devices": jax.device_count(), "cases": []}
"""

DENSITY = r"""
for T, varying, x64 in [(400, False, False), (403, True, False), (3, False, False),
                        (2, True, False), (1, False, False), (401, True, True)]:
    K = 3
    dtype = np.float64 if x64 else np.float32
    with jax.enable_x64(x64):
        li = jnp.asarray(np.log(rng.dirichlet(np.ones(K))), dtype)
        lt = jnp.asarray(np.log(rng.dirichlet(np.ones(K), (T - 1, K) if varying else K)), dtype)
        lo = jnp.asarray(rng.normal(size=(T, K)), dtype)
        grad_args = (0, 1, 2)
        one = jax.jit(jax.value_and_grad(markov.forward_log_likelihood, grad_args))
        split = jax.jit(jax.value_and_grad(
            lambda a, b, c: markov.sharded_log_likelihood(a, b, c, mesh, "time"), grad_args))
        v0, g0 = one(li, lt, lo)
        v1, g1 = split(li, lt, lo)
        err = max(float(jnp.max(jnp.abs(a - b) / (1.0 + jnp.abs(a)))) for a, b in zip(g0, g1))
        out["cases"].append({"T": T, "varying": varying, "x64": x64, "value": [float(v0), float(v1)],
                             "grad_err": err, "dtype": str(v1.dtype)})

T = 400
lo = jnp.asarray(rng.normal(size=(T, 2)), jnp.float32)
placed = jax.device_put(lo, NamedSharding(mesh, P("time")))
li, lt = jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([[0.9, 0.1], [0.2, 0.8]]))
f = jax.jit(jax.value_and_grad(lambda c: markov.sharded_log_likelihood(li, lt, c, mesh, "time")))
compiled = f.lower(placed).compile()
out["placed"] = [float(markov.forward_log_likelihood(li, lt, lo)), float(compiled(placed)[0])]
out["all_gather"] = "all-gather" in compiled.as_text()
print("RESULT " + json.dumps(out))
"""

NUTS = r"""
T = 400
z = np.zeros(T, int)
for t in range(1, T):
    z[t] = z[t - 1] if rng.random() < 0.95 else 1 - z[t - 1]
y = rng.normal(np.array([-1.0, 1.0])[z], 1.0).astype(np.float32)

def hmm(series, sharded):
    def model():
        mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 3.0), name="mu")
        stay = yield tfd.Beta(9.0 * jnp.ones(2), 1.0, name="stay")
        log_A = jnp.log(jnp.stack([jnp.stack([stay[0], 1 - stay[0]]),
                                   jnp.stack([1 - stay[1], stay[1]])]))
        log_obs = -0.5 * (series[:, None] - mu) ** 2 - 0.5 * np.log(2 * np.pi)
        log_init = jnp.log(jnp.array([0.5, 0.5]))
        if sharded:
            ll = markov.sharded_log_likelihood(log_init, log_A, log_obs, mesh, "time")
        else:
            ll = markov.forward_log_likelihood(log_init, log_A, log_obs)
        yield cm.factor(ll, name="hmm")
    return model

means = []
for sharded, series in [(False, jnp.asarray(y)), (True, jax.device_put(y, NamedSharding(mesh, P("time"))))]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = cm.nuts(hmm(series, sharded), num_warmup=300, num_samples=300, seed=0,
                       progress=False, chain_method="vectorized")
    means.append({k: np.asarray(v).mean((0, 1)).tolist() for k, v in post.samples.items()})
    if not sharded:
        import arviz as az
        ess = az.ess(post.to_arviz())
        out["mcse"] = {k: (np.asarray(post.samples[k]).std((0, 1))
                           / np.sqrt(np.asarray(ess[k].values))).tolist() for k in post.samples}
out["means"] = means
print("RESULT " + json.dumps(out))
"""


def run(script):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", HEADER + script],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


@pytest.fixture(scope="module")
def result():
    return run(DENSITY)


def test_value_and_gradient_equal_the_one_device_forward_pass(result):
    assert result["devices"] == 4
    for case in result["cases"]:
        v0, v1 = case["value"]
        tol = 1e-12 if case["x64"] else 1e-5
        assert abs(v0 - v1) <= tol * max(1.0, abs(v0)), case
        assert case["grad_err"] <= (1e-10 if case["x64"] else 1e-5), case
        assert case["dtype"] == ("float64" if case["x64"] else "float32")


def test_a_series_placed_along_time_is_reduced_block_by_block(result):
    v0, v1 = result["placed"]
    assert abs(v0 - v1) <= 1e-5 * abs(v0)
    assert result["all_gather"]


def test_nuts_on_the_time_sharded_likelihood_matches_one_device():
    result = run(NUTS)
    one, split = result["means"]
    for name in one:
        for a, b, mcse in zip(one[name], split[name], result["mcse"][name], strict=True):
            assert abs(a - b) < 4 * mcse * 2**0.5, (name, one[name], split[name], mcse)
