"""Whole-process NUTS timing: coromix vs NumPyro vs a hand-written JAX reference, in the same run.

Every fit runs in a fresh Python process (this file with ``--worker``), so the time the parent
measures (``time.perf_counter`` around the subprocess) includes interpreter start, imports, tracing,
XLA compilation, warmup, sampling and the ESS computation.  NumPyro and the reference run their
4 chains vectorized in one process (``chain_method="vectorized"``, ``jax.vmap``); coromix runs them
as ``cm.nuts`` does by default (``chain_method="auto"``: on a CPU with 2 cores and a model with at
most 20 000 observed numbers, two vmapped groups of 2 chains on two threads, else vectorized;
``--chain-method vectorized`` gives the vectorized layout to all).  Float32, NUTS with its
default settings (target acceptance 0.8, max tree depth 10,
diagonal mass matrix, Stan-style windowed adaptation); progress bars off (the output is a pipe).

The third "library", ``jax_reference``, is what one would write by hand without a modelling layer:
a JAX log density on unconstrained space for each model (:func:`jax_reference_model`: a flat
parameter vector, Stan's transforms with their log-Jacobians, ordered mu as ``mu_0`` and
``log(mu_k - mu_{k-1})``, stick-breaking for the simplexes, exp for sigma, sigmoid for theta; the
mixture's component summed out with ``logsumexp``, the HMM's chain with a plain log-space forward
algorithm in ``jax.lax.scan``), sampled by BlackJAX directly: ``blackjax.window_adaptation(
blackjax.nuts, ...)`` then ``blackjax.nuts`` steps in a ``jax.lax.scan``, warmup and sampling of
all chains in one ``jax.jit(jax.vmap(...))``.  Its density equals coromix's up to the constant
``log(K!)`` that coromix's ``Ordered`` includes (the reference uses Stan's unnormalized
``ordered[K] mu; mu ~ normal(0, s)``, as the NumPyro models do).  It starts where the others do.

Models (the same density in all three):

(a) posteriordb ``low_dim_gauss_mix`` (N = 1000): mu ordered with Normal(0, 2) priors,
    sigma_k ~ HalfNormal(2), theta ~ Beta(5, 5),
    y_n ~ theta N(mu_1, sigma_1) + (1 - theta) N(mu_2, sigma_2).
    coromix: the natural model, a batch-shaped Categorical for the components, summed out.
    NumPyro: the component ``z`` enumerated (``infer={"enumerate": "parallel"}`` in a plate; NUTS
    sums it out through funsor); the ordered prior as ``ImproperUniform(ordered_vector)`` plus a
    ``factor`` with the Normal(0, 2) density (Stan's ``ordered[2] mu; mu ~ normal(0, 2)``).
(b) a 3-state Gaussian HMM on posteriordb ``hmm_gaussian_simulated`` (T = 500), priors chosen here:
    pi1 ~ Dirichlet(1, 1, 1), each row of A ~ Dirichlet(1, 1, 1), mu ordered with Normal(0, 20)
    priors (the data lie in 8..34), sigma_k ~ HalfNormal(5).
    coromix: ``tfd.HiddenMarkovModel`` as the observed node (forward algorithm).
    NumPyro: the enumerated ``numpyro.contrib.control_flow.scan`` model, as in NumPyro's HMM
    examples (z_0 and every z_t enumerated; funsor sums the chain out).
    All three start every chain at the same data-derived point (:func:`hmm_init`: mu at the 1/6,
    1/2, 5/6 quantiles of y, sigma = sd(y)/3, uniform pi1 and rows of A; coromix ``init=``, NumPyro
    ``init_to_value``, the reference its image on unconstrained space).  From the default random
    starts (uniform in (-2, 2) on unconstrained space, i.e. every mu near 0) coromix and NumPyro
    leave most chains in local modes of this posterior (a state with sigma ~ 0.2 on the tight
    cluster at y ~ 8.9 and wide states elsewhere) at tree depth 10, with min ESS ~5 and R-hat ~2:
    a timing of that measures nothing useful.

Real sizes (issue 14; ``--models hmm_2000 hmm_10000 gmm_100000``; simulated data, 4 x (500 + 500)
unless ``--draws``):

(c) ``hmm_2000``, ``hmm_10000``: the HMM of (b) on T = 2000 (10 000) steps simulated with seed 0 from
    3 sticky states (``HMM_TRUTH``: A = 0.9 on the diagonal, mu = (-5, 0, 5), sigma = (1, 1.5, 1));
    all libraries start at :func:`hmm_init`.  Issue 14's target at T = 2000: coromix >= 5x
    NumPyro's min ESS/s (median of 2: ``--repeats 2``).
(d) ``gmm_100000``: a plated 3-component GMM on N = 1e5 points simulated with seed 0
    (``GMM_TRUTH``): w ~ Dirichlet(1, 1, 1), mu ordered with Normal(0, 10) priors, sigma_k ~
    HalfNormal(5), the component per point summed out (coromix: a batch-shaped Categorical;
    NumPyro: ``z`` enumerated in a plate).  All start at :func:`gmm_init`.  Target: >= 1.0x NumPyro.

ESS: the smallest bulk ESS (``arviz.ess``) over all parameter elements, on the constrained draws
under the same names and shapes in all three; "ESS/s" divides it by the whole-process seconds.  The
ratios printed at the end are coromix ESS/s over NumPyro ESS/s (> 1: coromix is faster per
effective draw) and coromix ESS/s over jax_reference ESS/s (the cost of coromix's model layer over
plain BlackJAX: 1 means none, < 1 an overhead).  ``coromix_uniform`` is coromix with
``init="uniform"`` (the start before the mode search): the line "default start over uniform start"
is what the default search for the dominant mode costs in whole-process time (on the mixture; the
HMM rows all start at ``hmm_init``).

Run (NumPyro's fits need numpyro and funsor: ``pip install -e '.[bench]'``, or point
``--numpyro-python`` at an interpreter that has them):

    .venv/bin/python benchmarks/nuts_whole_process.py [--quick] [--repeats N]
    python benchmarks/nuts_whole_process.py --models hmm_2000 hmm_10000 --repeats 2 \
        --libraries coromix numpyro jax_reference
    python benchmarks/nuts_whole_process.py --models gmm_100000 --libraries coromix numpyro
    python benchmarks/nuts_whole_process.py --models low_dim_gauss_mix --repeats 3 \
        --libraries coromix jax_reference            # the small model against the floor script

``--draws 100 100`` for a check that everything runs; ``--chain-method parallel`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=2`` for chains split over host devices
(``benchmarks/chain_layout.py`` compares the two).  On a loaded machine the absolute times
inflate; the ratios within one run (processes interleaved) are what to read.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "posteriordb"
MODELS = ("low_dim_gauss_mix", "hmm_gaussian", "hmm_2000", "hmm_10000", "gmm_10000", "gmm_100000")
DEFAULT_MODELS = ("low_dim_gauss_mix", "hmm_gaussian")
# real sizes (issue 14): simulated data, 4 x (500 + 500) unless --draws says otherwise
SIMULATED = {"hmm_2000": 2000, "hmm_10000": 10_000, "gmm_10000": 10_000, "gmm_100000": 100_000}
LIBRARIES = ("coromix", "numpyro", "jax_reference", "coromix_uniform")
NUM_CHAINS = 4
K_HMM = 3
MU_PRIOR_SCALE_HMM = 20.0
SIGMA_PRIOR_SCALE_HMM = 5.0
# the simulated HMM: 3 states, sticky transitions, well separated means (seed 0)
HMM_TRUTH = {
    "pi1": (1 / 3, 1 / 3, 1 / 3),
    "A": ((0.90, 0.05, 0.05), (0.05, 0.90, 0.05), (0.05, 0.05, 0.90)),
    "mu": (-5.0, 0.0, 5.0),
    "sigma": (1.0, 1.5, 1.0),
}
# the simulated GMM: 3 components, its own priors (seed 0)
K_GMM = 3
GMM_TRUTH = {"w": (0.3, 0.45, 0.25), "mu": (-4.0, 0.0, 5.0), "sigma": (1.0, 1.5, 0.8)}
MU_PRIOR_SCALE_GMM = 10.0
SIGMA_PRIOR_SCALE_GMM = 5.0


def family(model: str) -> str:
    """``"mix2"`` (low_dim_gauss_mix), ``"hmm"`` (any 3-state HMM) or ``"gmm"`` (3 components)."""
    if model.startswith("hmm"):
        return "hmm"
    return "gmm" if model.startswith("gmm") else "mix2"


def simulate(model: str):
    """The simulated data of a real-size model, from its known parameters with seed 0."""
    import numpy as np

    n = SIMULATED[model]
    rng = np.random.default_rng(0)
    if family(model) == "gmm":
        z = rng.choice(K_GMM, size=n, p=GMM_TRUTH["w"])
        y = rng.normal(np.take(GMM_TRUTH["mu"], z), np.take(GMM_TRUTH["sigma"], z))
        return y.astype(np.float32)
    A = np.asarray(HMM_TRUTH["A"])
    z = np.empty(n, np.int64)
    z[0] = rng.choice(K_HMM, p=HMM_TRUTH["pi1"])
    u = rng.random(n)
    cum = np.cumsum(A, axis=1)
    for t in range(1, n):
        z[t] = min(int(np.searchsorted(cum[z[t - 1]], u[t])), K_HMM - 1)
    y = rng.normal(np.take(HMM_TRUTH["mu"], z), np.take(HMM_TRUTH["sigma"], z))
    return y.astype(np.float32)


def gmm_init(y) -> dict:
    """The common start of the GMM fits: equal weights, mu at the 1/6, 1/2, 5/6 quantiles of y,
    sigma = sd(y)/3 (the HMM's rule)."""
    import numpy as np

    y = np.asarray(y, np.float64)
    return {
        "w": np.full(K_GMM, 1.0 / K_GMM, np.float32),
        "mu": np.quantile(y, (np.arange(K_GMM) + 0.5) / K_GMM).astype(np.float32),
        "sigma": np.full(K_GMM, y.std() / K_GMM, np.float32),
    }


def common_init(model: str, y):
    """The data-derived start shared by all libraries (None: each library's default)."""
    return {"hmm": hmm_init, "gmm": gmm_init}.get(family(model), lambda y: None)(y)


def hmm_init(y) -> dict:
    """The common starting point of the HMM fits (constrained values), derived from the data."""
    import numpy as np

    y = np.asarray(y, np.float64)
    return {
        "pi1": np.full(K_HMM, 1.0 / K_HMM, np.float32),
        "A": np.full((K_HMM, K_HMM), 1.0 / K_HMM, np.float32),
        "mu": np.quantile(y, (np.arange(K_HMM) + 0.5) / K_HMM).astype(np.float32),
        "sigma": np.full(K_HMM, y.std() / K_HMM, np.float32),
    }


def load_data(model: str):
    import numpy as np

    if model in SIMULATED:
        return simulate(model)
    name = {
        "low_dim_gauss_mix": "low_dim_gauss_mix.data.json",
        "hmm_gaussian": "hmm_gaussian_simulated.data.json",
    }[model]
    path = DATA / name
    if not path.exists():
        raise SystemExit(f"posteriordb data not found at {path} (../shared is absent)")
    return np.asarray(json.loads(path.read_text())["y"], dtype=np.float32)


# --- coromix models ---------------------------------------------------------------------------
def coromix_model(model: str, n: int):
    import jax.numpy as jnp

    import coromix as cm

    tfd = cm.distributions
    if model == "low_dim_gauss_mix":

        def gauss_mix():
            mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 2.0))
            sigma = yield tfd.HalfNormal(2.0 * jnp.ones(2))
            theta = yield tfd.Beta(5.0, 5.0)
            z = yield tfd.Categorical(probs=jnp.broadcast_to(jnp.stack([theta, 1 - theta]), (n, 2)))
            y = yield tfd.Normal(mu[z], sigma[z])

        return gauss_mix

    if family(model) == "gmm":

        def gmm():
            w = yield tfd.Dirichlet(jnp.ones(K_GMM))
            mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(K_GMM), MU_PRIOR_SCALE_GMM))
            sigma = yield tfd.HalfNormal(SIGMA_PRIOR_SCALE_GMM * jnp.ones(K_GMM))
            z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (n, K_GMM)))
            y = yield tfd.Normal(mu[z], sigma[z])

        return gmm

    def hmm_gaussian():
        pi1 = yield tfd.Dirichlet(jnp.ones(K_HMM))
        A = yield tfd.Dirichlet(jnp.ones((K_HMM, K_HMM)))
        mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(K_HMM), MU_PRIOR_SCALE_HMM))
        sigma = yield tfd.HalfNormal(SIGMA_PRIOR_SCALE_HMM * jnp.ones(K_HMM))
        y = yield tfd.HiddenMarkovModel(
            tfd.Categorical(probs=pi1), tfd.Categorical(probs=A), tfd.Normal(mu, sigma), num_steps=n
        )

    return hmm_gaussian


# --- NumPyro models ---------------------------------------------------------------------------
def numpyro_model(model: str):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    def ordered_normal(name, k, scale):
        """Stan's ``ordered[k] x; x ~ normal(0, scale)``: an ordered vector, Normal density."""
        x = numpyro.sample(name, dist.ImproperUniform(constraints.ordered_vector, (), (k,)))
        numpyro.factor(f"{name}_prior", dist.Normal(0.0, scale).log_prob(x).sum())
        return x

    if model == "low_dim_gauss_mix":

        def gauss_mix(y):
            mu = ordered_normal("mu", 2, 2.0)
            sigma = numpyro.sample("sigma", dist.HalfNormal(2.0 * jnp.ones(2)).to_event(1))
            theta = numpyro.sample("theta", dist.Beta(5.0, 5.0))
            with numpyro.plate("data", y.shape[0]):
                z = numpyro.sample(
                    "z",
                    dist.Categorical(probs=jnp.stack([theta, 1 - theta])),
                    infer={"enumerate": "parallel"},
                )
                numpyro.sample("y", dist.Normal(mu[z], sigma[z]), obs=y)

        return gauss_mix

    if family(model) == "gmm":

        def gmm(y):
            w = jnp.asarray(numpyro.sample("w", dist.Dirichlet(jnp.ones(K_GMM))))
            mu = jnp.asarray(ordered_normal("mu", K_GMM, MU_PRIOR_SCALE_GMM))
            sigma = jnp.asarray(
                numpyro.sample(
                    "sigma", dist.HalfNormal(SIGMA_PRIOR_SCALE_GMM * jnp.ones(K_GMM)).to_event(1)
                )
            )
            with numpyro.plate("data", y.shape[0]):
                z = numpyro.sample("z", dist.Categorical(w), infer={"enumerate": "parallel"})
                numpyro.sample("y", dist.Normal(mu[z], sigma[z]), obs=y)

        return gmm

    from numpyro.contrib.control_flow import scan

    def hmm_gaussian(y):
        K = K_HMM
        # jnp.asarray: init_to_value hands back NumPy arrays, which a traced index cannot take
        pi1 = jnp.asarray(numpyro.sample("pi1", dist.Dirichlet(jnp.ones(K))))
        A = jnp.asarray(numpyro.sample("A", dist.Dirichlet(jnp.ones((K, K))).to_event(1)))
        mu = jnp.asarray(ordered_normal("mu", K, MU_PRIOR_SCALE_HMM))
        sigma = jnp.asarray(
            numpyro.sample(
                "sigma", dist.HalfNormal(SIGMA_PRIOR_SCALE_HMM * jnp.ones(K)).to_event(1)
            )
        )

        def transition(z_prev, y_t):
            z = numpyro.sample("z", dist.Categorical(A[z_prev]), infer={"enumerate": "parallel"})
            numpyro.sample("y", dist.Normal(mu[z], sigma[z]), obs=y_t)
            return z, None

        z0 = numpyro.sample("z0", dist.Categorical(pi1), infer={"enumerate": "parallel"})
        numpyro.sample("y0", dist.Normal(mu[z0], sigma[z0]), obs=y[0])
        scan(transition, z0, y[1:])

    return hmm_gaussian


NUMPYRO_FORM = {
    "low_dim_gauss_mix": "z enumerated in a plate (infer enumerate=parallel)",
    "hmm_gaussian": "z enumerated inside contrib.control_flow.scan; both from hmm_init",
    "hmm_2000": "z enumerated inside contrib.control_flow.scan; both from hmm_init",
    "hmm_10000": "z enumerated inside contrib.control_flow.scan; both from hmm_init",
    "gmm_100000": "z enumerated in a plate; both from gmm_init",
}


# --- the JAX reference: hand-written log densities for plain BlackJAX --------------------------
# Each model is a flat float32 vector q on unconstrained space, a map q -> (constrained values,
# log|det dx/dq|), and the joint log density of the constrained values (normalized priors and
# likelihood, no log(K!) for the ordered vector: Stan's ``ordered[K] mu; mu ~ normal(0, s)``).
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _normal_lp(x, loc, scale):
    import jax.numpy as jnp

    z = (x - loc) / scale
    return -0.5 * z * z - jnp.log(scale) - HALF_LOG_2PI


def _half_normal_lp(x, scale):
    return 0.5 * math.log(2.0 / math.pi) - math.log(scale) - 0.5 * (x / scale) ** 2


def _ordered(v):
    """``x_0 = v_0``, ``x_k = x_{k-1} + exp(v_k)``; log-Jacobian ``sum_{k>0} v_k``."""
    import jax.numpy as jnp

    return jnp.cumsum(jnp.concatenate([v[:1], jnp.exp(v[1:])])), jnp.sum(v[1:])


def _stick_breaking(v):
    """K-1 reals (last axis) onto the K-simplex: ``z_k = sigmoid(v_k - log(K-1-k))`` is the
    fraction of the stick left after pieces ``< k`` that piece k takes (``v = 0``: the uniform
    simplex).  Returns the simplex and the log-Jacobian summed over all rows."""
    import jax
    import jax.numpy as jnp

    km1 = v.shape[-1]
    t = v - jnp.log(jnp.arange(km1, 0, -1, dtype=v.dtype))
    log_z, log_1mz = jax.nn.log_sigmoid(t), jax.nn.log_sigmoid(-t)
    log_left = jnp.cumsum(log_1mz, axis=-1)  # log of the stick left after piece k
    log_before = jnp.concatenate([jnp.zeros_like(log_left[..., :1]), log_left[..., :-1]], -1)
    log_x = jnp.concatenate([log_z + log_before, log_left[..., -1:]], axis=-1)
    return jnp.exp(log_x), jnp.sum(log_z + log_1mz + log_before)


def _stick_breaking_inverse(x):
    """NumPy inverse of :func:`_stick_breaking` (for the HMM's common start)."""
    import numpy as np

    x = np.asarray(x, np.float64)
    k = x.shape[-1]
    rest = np.cumsum(x[..., ::-1], axis=-1)[..., ::-1]  # rest[j] = sum_{i >= j} x_i
    return np.log(x[..., :-1]) - np.log(rest[..., 1:]) + np.log(np.arange(k - 1, 0, -1))


def jax_reference_model(model: str, y):
    """``(log_density(q), constrain(q) -> (values, log_jac), log_joint(values), init(key))`` for
    :func:`fit_jax_reference`: ``log_density = log_joint(constrain(q)) + log_jac``.  ``init`` gives
    4 starting points: uniform(-2, 2) for the mixture, :func:`hmm_init` (:func:`gmm_init`) mapped
    to q for the HMMs (the GMM)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    y = jnp.asarray(y, jnp.float32)
    if model == "low_dim_gauss_mix":

        def constrain(q):  # q = (mu_0, log(mu_1 - mu_0), log sigma_1, log sigma_2, logit theta)
            mu, jac_mu = _ordered(q[0:2])
            sigma = jnp.exp(q[2:4])
            theta = jax.nn.sigmoid(q[4])
            jac = jac_mu + jnp.sum(q[2:4]) + jax.nn.log_sigmoid(q[4]) + jax.nn.log_sigmoid(-q[4])
            return {"mu": mu, "sigma": sigma, "theta": theta}, jac

        log_beta_5_5 = 2 * math.lgamma(5.0) - math.lgamma(10.0)

        def log_joint(v):
            mu, sigma, theta = v["mu"], v["sigma"], v["theta"]
            log_w = jnp.stack([jnp.log(theta), jnp.log1p(-theta)])
            prior = (
                jnp.sum(_normal_lp(mu, 0.0, 2.0))
                + jnp.sum(_half_normal_lp(sigma, 2.0))
                + 4.0 * jnp.sum(log_w)
                - log_beta_5_5
            )
            like = jax.nn.logsumexp(log_w + _normal_lp(y[:, None], mu, sigma), axis=-1)
            return prior + jnp.sum(like)

        def init(key):
            return jax.random.uniform(key, (NUM_CHAINS, 5), jnp.float32, -2.0, 2.0)
    elif family(model) == "gmm":
        K = K_GMM

        def constrain(q):  # q = (w: K-1 stick-breaking, mu: K ordered, log sigma: K)
            w, jac_w = _stick_breaking(q[: K - 1])
            mu, jac_mu = _ordered(q[K - 1 : 2 * K - 1])
            sigma = jnp.exp(q[2 * K - 1 :])
            return {"w": w, "mu": mu, "sigma": sigma}, jac_w + jac_mu + jnp.sum(q[2 * K - 1 :])

        def log_joint(v):
            mu, sigma = v["mu"], v["sigma"]
            prior = (
                math.lgamma(K)
                + jnp.sum(_normal_lp(mu, 0.0, MU_PRIOR_SCALE_GMM))
                + jnp.sum(_half_normal_lp(sigma, SIGMA_PRIOR_SCALE_GMM))
            )
            like = jax.nn.logsumexp(jnp.log(v["w"]) + _normal_lp(y[:, None], mu, sigma), axis=-1)
            return prior + jnp.sum(like)

        start = gmm_init(np.asarray(y))
        q0 = np.concatenate(
            [
                _stick_breaking_inverse(start["w"]),
                start["mu"][:1],
                np.log(np.diff(start["mu"])),
                np.log(start["sigma"]),
            ]
        ).astype(np.float32)

        def init(key):
            return jnp.broadcast_to(jnp.asarray(q0), (NUM_CHAINS, q0.size))
    else:
        K = K_HMM

        def constrain(q):  # q = (pi1: K-1, A: K(K-1) row by row, mu: K ordered, log sigma: K)
            pi1, jac_pi1 = _stick_breaking(q[: K - 1])
            A, jac_A = _stick_breaking(q[K - 1 : K * K - 1].reshape(K, K - 1))
            mu, jac_mu = _ordered(q[K * K - 1 : K * K - 1 + K])
            sigma = jnp.exp(q[K * K - 1 + K :])
            jac = jac_pi1 + jac_A + jac_mu + jnp.sum(q[K * K - 1 + K :])
            return {"pi1": pi1, "A": A, "mu": mu, "sigma": sigma}, jac

        log_dirichlet_1 = math.lgamma(K)  # Dirichlet(1, ..., 1): constant density (K-1)!

        def log_joint(v):
            mu, sigma = v["mu"], v["sigma"]
            prior = (
                (K + 1) * log_dirichlet_1
                + jnp.sum(_normal_lp(mu, 0.0, MU_PRIOR_SCALE_HMM))
                + jnp.sum(_half_normal_lp(sigma, SIGMA_PRIOR_SCALE_HMM))
            )
            log_A = jnp.log(v["A"])
            log_emit = _normal_lp(y[:, None], mu, sigma)  # (T, K)

            def forward(alpha, e_t):  # alpha_t(k) = log p(y_0..t, z_t = k)
                return jax.nn.logsumexp(alpha[:, None] + log_A, axis=0) + e_t, None

            alpha, _ = jax.lax.scan(forward, jnp.log(v["pi1"]) + log_emit[0], log_emit[1:])
            return prior + jax.nn.logsumexp(alpha)

        start = hmm_init(np.asarray(y))
        q0 = np.concatenate(
            [
                _stick_breaking_inverse(start["pi1"]),
                _stick_breaking_inverse(start["A"]).reshape(-1),
                start["mu"][:1],
                np.log(np.diff(start["mu"])),
                np.log(start["sigma"]),
            ]
        ).astype(np.float32)

        def init(key):
            return jnp.broadcast_to(jnp.asarray(q0), (NUM_CHAINS, q0.size))

    def log_density(q):
        values, jac = constrain(q)
        return log_joint(values) + jac

    return log_density, constrain, log_joint, init


# --- one fit per process ----------------------------------------------------------------------
def fit_coromix(
    model: str,
    y,
    num_warmup: int,
    num_samples: int,
    seed: int,
    start_method: str | None = None,
    chain_method: str = "vectorized",
):
    import jax.numpy as jnp

    import coromix as cm

    start = time.perf_counter()
    init = common_init(model, y)
    init = start_method if init is None else init
    post = cm.nuts(
        coromix_model(model, len(y)),
        observed={"y": jnp.asarray(y)},
        num_chains=NUM_CHAINS,
        num_warmup=num_warmup,
        num_samples=num_samples,
        seed=seed,
        progress=False,
        chain_method=chain_method,
        init=init,
    )
    samples = {k: v for k, v in post.samples.items()}
    fit = time.perf_counter() - start
    phases = {k: float(post.attrs[k]) for k in ("compile_time", "sampling_time")}
    return fit, samples, post.num_divergences, {"coromix": cm.__version__}, phases


def fit_numpyro(
    model: str, y, num_warmup: int, num_samples: int, seed: int, chain_method: str = "vectorized"
):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import numpyro
    from numpyro.infer import MCMC, NUTS, init_to_uniform, init_to_value

    start = time.perf_counter()
    values = common_init(model, y)
    init = init_to_uniform if values is None else init_to_value(values=values)
    mcmc = MCMC(
        NUTS(numpyro_model(model), init_strategy=init),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=NUM_CHAINS,
        chain_method=chain_method,
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(seed), jnp.asarray(y), extra_fields=("diverging",))
    samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    diverging = mcmc.get_extra_fields(group_by_chain=True)["diverging"]
    fit = time.perf_counter() - start
    samples = {k: np.asarray(v) for k, v in samples.items()}
    versions = {"numpyro": numpyro.__version__}
    return fit, samples, int(np.sum(np.asarray(diverging))), versions, {}


def fit_jax_reference(
    model: str, y, num_warmup: int, num_samples: int, seed: int, chain_method: str = "vectorized"
):
    if chain_method != "vectorized":
        raise SystemExit("jax_reference runs its chains vectorized only")
    import blackjax
    import jax
    import numpy as np
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    start = time.perf_counter()
    log_density, constrain, _, init = jax_reference_model(model, y)

    def run_chain(key, q0):
        warmup_key, sample_key = jax.random.split(key)
        warmup = blackjax.window_adaptation(
            blackjax.nuts,
            log_density,
            target_acceptance_rate=0.8,
            adaptation_info_fn=get_filter_adapt_info_fn(),
        )
        (state, parameters), _ = warmup.run(warmup_key, q0, num_warmup)
        sampler = blackjax.nuts(log_density, **parameters)

        def one_draw(state, key):
            state, info = sampler.step(key, state)
            return state, (constrain(state.position)[0], info.is_divergent)

        _, (draws, diverging) = jax.lax.scan(
            one_draw, state, jax.random.split(sample_key, num_samples)
        )
        return draws, diverging

    init_key, chain_key = jax.random.split(jax.random.key(seed))
    draws, diverging = jax.jit(jax.vmap(run_chain))(
        jax.random.split(chain_key, NUM_CHAINS), init(init_key)
    )
    draws = jax.block_until_ready(draws)
    fit = time.perf_counter() - start
    samples = {k: np.asarray(v) for k, v in draws.items()}
    versions = {"blackjax": blackjax.__version__}
    return fit, samples, int(np.sum(np.asarray(diverging))), versions, {}


def worker(args) -> None:
    import numpy as np

    y = load_data(args.model)
    fit = {
        "coromix": fit_coromix,
        "numpyro": fit_numpyro,
        "jax_reference": fit_jax_reference,
        "coromix_uniform": lambda *a, **k: fit_coromix(*a, start_method="uniform", **k),
    }[args.library]
    method = args.chain_method
    if not args.library.startswith("coromix") and method in ("threads", "auto"):
        method = "vectorized"  # coromix's layouts; the others run their chains vmapped
    fit_seconds, samples, divergences, versions, phases = fit(
        args.model, y, args.warmup, args.samples, args.seed, chain_method=method
    )
    import arviz as az
    import jax

    ess = az.ess({k: np.asarray(v) for k, v in samples.items()}, method="bulk")
    min_ess = min(float(np.nanmin(ess[k].values)) for k in samples)
    print(
        json.dumps(
            {
                "model": args.model,
                "library": args.library,
                "fit_seconds": fit_seconds,
                **phases,
                "min_bulk_ess": min_ess,
                "divergences": divergences,
                "means": {
                    k: np.asarray(v, np.float64).mean(axis=(0, 1)).tolist()
                    for k, v in samples.items()
                },
                "versions": {**versions, "jax": jax.__version__},
                "backend": jax.default_backend(),
                "devices": jax.local_device_count(),
            }
        )
    )


# --- the parent: spawn, time, tabulate --------------------------------------------------------
def run_one(
    model: str,
    library: str,
    warmup: int,
    samples: int,
    seed: int,
    *,
    python: str | None = None,
    chain_method: str = "vectorized",
    host_devices: int | None = None,
) -> dict:
    """One fit in a fresh process (``python``, default this interpreter), timed from outside.

    ``host_devices``: run it with ``XLA_FLAGS=--xla_force_host_platform_device_count=n``."""
    env = dict(os.environ)
    if host_devices is not None:
        flags = env.get("XLA_FLAGS", "")
        env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={host_devices}".strip()
    command = [
        python or sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--model",
        model,
        "--library",
        library,
        "--warmup",
        str(warmup),
        "--samples",
        str(samples),
        "--seed",
        str(seed),
        "--chain-method",
        chain_method,
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    total = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"{library} on {model} failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
        )
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1]
    result = json.loads(line)
    result["total_seconds"] = total
    return result


def flat_means(means: dict) -> dict[str, float]:
    import numpy as np

    out = {}
    for name, value in means.items():
        arr = np.asarray(value)
        if arr.ndim == 0:
            out[name] = float(arr)
        else:
            for index in np.ndindex(arr.shape):
                out[f"{name}[{','.join(map(str, index))}]"] = float(arr[index])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 warmup + 500 draws per chain")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="processes per (model, library); the table shows the median",
    )
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), choices=MODELS)
    parser.add_argument(
        "--draws",
        nargs=2,
        type=int,
        metavar=("WARMUP", "SAMPLES"),
        help="per chain, for every model (default: 1000 + 1000, or 500 + 500 with --quick and "
        "for the real-size models hmm_2000, hmm_10000, gmm_100000)",
    )
    parser.add_argument(
        "--numpyro-python",
        default=sys.executable,
        help="the interpreter for the NumPyro fits (one with numpyro and funsor installed)",
    )
    parser.add_argument(
        "--chain-method",
        default="auto",
        choices=("vectorized", "parallel", "threads", "auto"),
        help="coromix's chain_method (default: its default, 'auto'); NumPyro and the plain "
        "BlackJAX script run their chains vectorized unless 'parallel' is given",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--library", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, default=1000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    import statistics

    def draws_of(model):
        if args.draws:
            return tuple(args.draws)
        return (500, 500) if args.quick or model in SIMULATED else (1000, 1000)

    load_before = os.getloadavg()
    print(
        f"{NUM_CHAINS} chains x (warmup + draws): "
        + ", ".join(f"{m} {'+'.join(map(str, draws_of(m)))}" for m in args.models)
        + f"; chain_method {args.chain_method}; each fit a fresh process; {args.repeats} "
        f"process(es) per cell"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}; load average before: "
        + " ".join(f"{x:.2f}" for x in load_before)
    )
    results: dict[tuple[str, str], list[dict]] = {}
    for model in args.models:
        for r in range(args.repeats):
            order = args.libraries if r % 2 == 0 else args.libraries[::-1]
            for library in order:
                python = args.numpyro_python if library == "numpyro" else None
                res = run_one(
                    model,
                    library,
                    *draws_of(model),
                    args.seed + r,
                    python=python,
                    chain_method=args.chain_method,
                )
                results.setdefault((model, library), []).append(res)
                print(
                    f"  done: {model:<18} {library:<13} {res['total_seconds']:7.1f} s "
                    f"(load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
    load_after = os.getloadavg()
    first = next(iter(results.values()))[0]
    versions = {}
    for rs in results.values():
        versions.update(rs[0]["versions"])
    print(f"versions: {versions}; backend {first['backend']}")
    print("load average after: " + " ".join(f"{x:.2f}" for x in load_after))
    print()

    def median(rs, key):
        return statistics.median(r[key] for r in rs)

    header = (
        f"{'model':<18} {'library':<13} {'process s':>9} {'fit s':>7} {'min ESS':>8} "
        f"{'ESS/s':>7} {'diverg.':>7}"
    )
    print(header)
    print("-" * len(header))
    rates = {}
    for (model, library), rs in results.items():
        total, fit = median(rs, "total_seconds"), median(rs, "fit_seconds")
        ess = median(rs, "min_bulk_ess")
        rate = statistics.median(r["min_bulk_ess"] / r["total_seconds"] for r in rs)
        rates[(model, library)] = rate
        div = ",".join(str(r["divergences"]) for r in rs)
        print(
            f"{model:<18} {library:<13} {total:>9.1f} {fit:>7.1f} {ess:>8.0f} {rate:>7.1f} {div:>7}"
        )
    print()
    for model in args.models:
        if (model, "coromix") in rates and (model, "numpyro") in rates:
            ratio = rates[(model, "coromix")] / rates[(model, "numpyro")]
            print(
                f"{model}: coromix/NumPyro min ESS per whole-process second = {ratio:.2f}  "
                f"(NumPyro form: {NUMPYRO_FORM[model]})"
            )
        if (model, "coromix") in rates and (model, "jax_reference") in rates:
            ratio = rates[(model, "coromix")] / rates[(model, "jax_reference")]
            print(
                f"{model}: coromix/jax_reference min ESS per whole-process second = "
                f"{ratio:.2f}  (hand-written log density, plain BlackJAX)"
            )
        if (model, "coromix") in rates and (model, "coromix_uniform") in rates:
            ratio = median(results[(model, "coromix")], "total_seconds") / median(
                results[(model, "coromix_uniform")], "total_seconds"
            )
            print(
                f"{model}: coromix whole-process time, default start (init='mode') over "
                f"uniform start = {ratio:.2f}"
            )
    print()
    columns = {
        "coromix": "coromix",
        "numpyro": "NumPyro",
        "jax_reference": "jax_ref",
        "coromix_uniform": "uniform",
    }
    for model in args.models:
        means = {lib: flat_means(results[(model, lib)][0]["means"]) for lib in args.libraries}
        print(f"posterior means, {model}:")
        print(f"  {'parameter':<12} " + " ".join(f"{columns[lib]:>10}" for lib in args.libraries))
        for name in means[args.libraries[0]]:
            print(
                f"  {name:<12} "
                + " ".join(f"{means[lib].get(name, float('nan')):>10.4f}" for lib in args.libraries)
            )


if __name__ == "__main__":
    main()
