"""Observed values sharded over devices keep their layout through pinning and NUTS.

A subprocess with 4 host CPU devices (``--xla_force_host_platform_device_count=4``) puts the
observations of a plated mixture on a 1-D ``("data",)`` mesh and on a 2-D ``("chains", "data")``
mesh, and checks that

* the log density and its gradient equal the unsharded ones (1e-5 relative);
* the compiled gradient is partitioned: its HLO has an all-reduce, and its output is replicated;
* ``cm.nuts`` on sharded data gives the unsharded posterior (the same seed: the draws agree to
  the float32 rounding of a reordered sum, which NUTS amplifies, so the means are compared: within
  4 MCSE of the unsharded fit's), on the 1-D mesh and on the 2-D mesh.
"""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, warnings
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import coromix as cm

tfd = cm.distributions
rng = np.random.default_rng(0)
N = 400
y = np.where(rng.random(N) < 0.4, rng.normal(-2, 1, N), rng.normal(2, 1, N)).astype(np.float32)

def model():
    mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 5.0))  # one labelling
    w = yield tfd.Dirichlet(jnp.ones(2))
    z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (N, 2)))
    obs = yield tfd.Normal(mu[z], 1.0)

jd = tfd.JointDistributionCoroutine(model)
out = {"devices": jax.device_count()}
mesh1 = Mesh(np.array(jax.devices()), ("data",))
y1 = jax.device_put(y, NamedSharding(mesh1, P("data")))
u = {"mu": jnp.array([-1.0, 1.5]), "w": jnp.array([0.3])}
plain = jd.pin(obs=y)
sharded = jd.pin(obs=y1)
out["observed_sharding"] = str(sharded.observed["obs"].sharding.spec)

def value_and_grad(observed, u):
    return jax.value_and_grad(jd.pin(obs=observed).unconstrained_log_prob)(u)

lp0, g0 = jax.jit(value_and_grad)(y, u)
compiled = jax.jit(value_and_grad).lower(y1, u).compile()
lp1, g1 = compiled(y1, u)
out["lp"] = [float(lp0), float(lp1)]
out["grad_err"] = max(float(jnp.max(jnp.abs(g0[k] - g1[k]) / (jnp.abs(g0[k]) + 1e-6))) for k in u)
hlo = compiled.as_text()
out["all_reduce"] = "all-reduce" in hlo
out["grad_replicated"] = bool(g1["mu"].sharding.is_fully_replicated)

settings = dict(num_warmup=300, num_samples=300, seed=0, progress=False)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ref = cm.nuts(jd, {"obs": y}, **settings)
    fit1 = cm.nuts(jd, {"obs": y1}, **settings)
    mesh2 = Mesh(np.array(jax.devices()).reshape(2, 2), ("chains", "data"))
    y2 = jax.device_put(y, NamedSharding(mesh2, P("data")))
    fit2 = cm.nuts(jd, {"obs": y2}, **settings)

def summary(post):
    mu = np.asarray(post.samples["mu"])
    return {"mean": mu.mean(axis=(0, 1)).tolist(), "method": post.attrs["chain_method"]}

out["ref"], out["fit1"], out["fit2"] = summary(ref), summary(fit1), summary(fit2)
import arviz as az
out["ess"] = np.asarray(az.ess(ref.to_arviz())["mu"].values).tolist()
out["sd"] = np.asarray(ref.samples["mu"]).std(axis=(0, 1)).tolist()
out["max_draw_diff"] = [
    float(np.max(np.abs(np.asarray(f.samples["mu"]) - np.asarray(ref.samples["mu"]))))
    for f in (fit1, fit2)
]
print(json.dumps(out))
"""


@pytest.mark.slow  # three NUTS fits compiled in a subprocess (about 40 s)
def test_sharded_observations_give_the_unsharded_density_gradient_and_posterior():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4 and out["observed_sharding"] == "P('data',)"
    lp0, lp1 = out["lp"]
    assert abs(lp1 - lp0) <= 1e-5 * abs(lp0) and out["grad_err"] < 1e-5, out
    assert out["all_reduce"] and out["grad_replicated"], out
    for fit in ("fit1", "fit2"):
        assert out[fit]["method"] == "vectorized"
        for mean, ref, sd, ess in zip(
            out[fit]["mean"], out["ref"]["mean"], out["sd"], out["ess"], strict=True
        ):
            mcse = sd / ess**0.5
            assert abs(mean - ref) < 4 * mcse * 2**0.5, out
