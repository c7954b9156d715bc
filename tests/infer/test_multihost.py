"""Data sharded over two processes (``jax.distributed`` on 127.0.0.1, CPU collectives by gloo).

Each process holds half of the observations (``jax.make_array_from_process_local_data`` on a
``("data",)`` mesh of one CPU device per process).  The log density and gradient the two processes
compute together equal the single-process ones, and ``cm.nuts`` runs in both, SPMD, giving both
processes the same draws.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

MODEL = r"""
import jax.numpy as jnp
import numpy as np
import coromix as cm

tfd = cm.distributions
rng = np.random.default_rng(0)
N = 400
y = np.where(rng.random(N) < 0.4, rng.normal(-2, 1, N), rng.normal(2, 1, N)).astype(np.float32)


def model():
    mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 5.0))
    w = yield tfd.Dirichlet(jnp.ones(2))
    z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (N, 2)))
    obs = yield tfd.Normal(mu[z], 1.0)
"""

WORKER = (
    r"""
import json, sys, warnings
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
pid, port = int(sys.argv[1]), sys.argv[2]
jax.distributed.initialize(
    coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid
)
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
"""
    + MODEL
    + r"""
jd = tfd.JointDistributionCoroutine(model)
mesh = Mesh(np.array(jax.devices()), ("data",))
local = y[pid * N // 2 : (pid + 1) * N // 2]
y_global = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local, (N,))
u = {"mu": jnp.array([-1.0, 1.5]), "w": jnp.array([0.3])}
def value_and_grad(observed, u):  # sharded data as an argument: never closed over
    return jax.value_and_grad(jd.pin(obs=observed).unconstrained_log_prob)(u)
lp, g = jax.jit(value_and_grad)(y_global, u)
print(json.dumps({"devices": jax.device_count(), "local": jax.local_device_count(),
                  "lp": float(lp), "g": {k: np.asarray(v).tolist() for k, v in g.items()}}))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    post = cm.nuts(jd, {"obs": y_global}, num_warmup=200, num_samples=200, seed=0,
                   progress=False)
print(json.dumps({"mean": np.asarray(post.samples["mu"]).mean(axis=(0, 1)).tolist()}),
      flush=True)
jax.distributed.shutdown()
"""
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two processes, each compiling a fit (about 30 s)
def test_two_processes_equal_one():
    port = str(free_port())
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(pid), port],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for pid in (0, 1)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    for w, (out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, err
    lines = [
        [json.loads(x) for x in out.strip().splitlines() if x.startswith("{")] for out, _ in outputs
    ]

    scope: dict = {}
    exec(MODEL, scope)  # noqa: S102 - the workers' model and data, here in one process
    jd = scope["tfd"].JointDistributionCoroutine(scope["model"])
    u = {"mu": jnp.array([-1.0, 1.5]), "w": jnp.array([0.3])}
    lp, grad = jax.jit(jax.value_and_grad(jd.pin(obs=scope["y"]).unconstrained_log_prob))(u)
    for density, fit in lines:
        assert density["devices"] == 2 and density["local"] == 1
        np.testing.assert_allclose(density["lp"], float(lp), rtol=1e-5)
        for k in u:
            np.testing.assert_allclose(density["g"][k], np.asarray(grad[k]), rtol=1e-5)
    assert lines[0][1]["mean"] == lines[1][1]["mean"]
    mu = np.asarray(lines[0][1]["mean"])
    assert np.all(np.abs(mu - np.array([-2.0, 2.0])) < 0.3), mu
