"""Ctrl-C during ``cm.nuts``: the fit stops within seconds and keeps the draws made so far.

A subprocess fits a mixture whose run would take minutes; the test sends it SIGINT once the
progress output shows it is sampling (or, in the second case, still in warmup), and measures how
long it takes to come back.  During sampling ``cm.nuts`` returns a ``Posterior`` of the draws made
so far, marked ``attrs["partial"] = 1``; during warmup there are no draws and it raises
``KeyboardInterrupt`` saying so.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

SCRIPT = r"""
import json, sys, warnings
import jax.numpy as jnp
import numpy as np
import coromix as cm

tfd = cm.distributions
rng = np.random.default_rng(0)
y = np.concatenate([rng.normal(-2, 1, 10000), rng.normal(2, 1, 10000)]).astype(np.float32)

def model():
    mu = yield tfd.Normal(jnp.zeros(2), 5.0)
    w = yield tfd.Dirichlet(jnp.ones(2))
    z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (len(y), 2)))
    obs = yield tfd.Normal(mu[z], 1.0)

warmup, samples = int(sys.argv[1]), int(sys.argv[2])
try:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = cm.nuts(model, {"obs": y}, num_warmup=warmup, num_samples=samples, seed=0,
                       init="uniform")
except KeyboardInterrupt as err:
    print(json.dumps({"raised": str(err)}), flush=True)
    sys.exit(0)
print(json.dumps({
    "shape": list(post.samples["mu"].shape),
    "partial": post.attrs.get("partial", 0),
    "finite": bool(np.all(np.isfinite(post.samples["mu"]))),
    "lp_nonzero": bool(np.all(post.sample_stats["lp"] != 0)),
    "warned": [str(w.message) for w in caught if "interrupted" in str(w.message)],
}), flush=True)
"""


def interrupt_when(marker: str, warmup: int, samples: int, delay: float = 1.0):
    """Start the script, send SIGINT ``delay`` s after ``marker`` appears on its stderr; return
    (seconds from SIGINT to exit, the script's JSON line, its stderr)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(warmup), str(samples)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    err_lines = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = child.stderr.readline()
        if not line:
            break
        err_lines.append(line)
        if marker in line:
            break
    assert any(marker in line for line in err_lines), "".join(err_lines)
    time.sleep(delay)
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    took = time.monotonic() - sent
    assert child.returncode == 0, "".join(err_lines) + err
    return took, json.loads(out.strip().splitlines()[-1]), "".join(err_lines) + err


@pytest.mark.slow  # two subprocesses, each compiling a fit (about 40 s)
def test_ctrl_c_during_sampling_returns_the_draws_made_so_far():
    # 200 warmup steps, then 200000 draws: minutes of sampling, interrupted after a second
    took, result, err = interrupt_when("warmup   [", 200, 200_000)
    assert took < 3.0, (took, err)
    chains, draws = result["shape"][:2]
    assert chains == 4 and 0 < draws < 200_000, result
    assert result["partial"] == 1 and result["finite"] and result["lp_nonzero"], result
    assert result["warned"] and f"{draws} of 200000 draws" in result["warned"][0], result


@pytest.mark.slow
def test_ctrl_c_during_warmup_says_no_draws_were_kept():
    took, result, err = interrupt_when("compiled in", 200_000, 10, delay=1.5)
    assert took < 3.0, (took, err)
    assert "interrupted during warmup" in result["raised"], result
