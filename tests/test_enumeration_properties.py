"""Property tests: random small models mixing a path choice, a scalar tensor choice, nested plates
and terms on several plate levels; ``log_prob`` and ``discrete_posterior`` against brute force
over every joint value (float64, 1e-10).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import logsumexp

import coromix.distributions as tfd


@st.composite
def cases(draw, max_n=3):
    g = draw(st.integers(1, 2))
    n = draw(st.integers(1, max_n))
    kc = draw(st.integers(2, 3))
    kz = draw(st.integers(2, 3))
    seed = draw(st.integers(0, 2**16))
    branch = draw(st.booleans())  # a Python `if` on a scalar choice (paths)
    group_term = draw(st.booleans())  # an observed term per group depending on c
    rng = np.random.default_rng(seed)
    return {
        "g": g,
        "n": n,
        "w": rng.dirichlet(np.ones(kc)),
        "theta": rng.dirichlet(np.ones(kz), size=kc),
        "mu": rng.normal(0, 2, kz),
        "nu": rng.normal(0, 2, kc),
        "y": rng.normal(0, 2, (g, n)),
        "h": rng.normal(0, 2, (g, 1)),
        "branch": branch,
        "group_term": group_term,
    }


def make_model(case):
    g, n = case["g"], case["n"]
    w, theta = jnp.asarray(case["w"]), jnp.asarray(case["theta"])
    mu, nu = jnp.asarray(case["mu"]), jnp.asarray(case["nu"])

    def model():
        s = yield tfd.Bernoulli(probs=0.3, name="s")  # summed out as a tensor dim or as paths
        scale = (2.0 if s == 1 else 1.0) if case["branch"] else jnp.where(s == 1, 2.0, 1.0)
        c = yield tfd.Categorical(probs=jnp.broadcast_to(w, (g, 1, len(case["w"]))), name="c")
        z = yield tfd.Categorical(probs=theta[c] * jnp.ones((n, 1)), name="z")
        yield tfd.Normal(mu[z], scale, name="y")
        if case["group_term"]:
            yield tfd.Normal(nu[c], 1.0, name="h")

    return model


def brute_force(case):
    g, n = case["g"], case["n"]
    kc, kz = len(case["w"]), len(case["mu"])
    table = {}
    for s in (0, 1):
        scale = 2.0 if s == 1 else 1.0
        for c in itertools.product(range(kc), repeat=g):
            for z in itertools.product(range(kz), repeat=g * n):
                zz = np.reshape(z, (g, n))
                lp = np.log(0.3 if s else 0.7) + np.log(case["w"][list(c)]).sum()
                lp += sum(np.log(case["theta"][c[i], zz[i, j]]) for i in range(g) for j in range(n))
                lp += stats.norm(case["mu"][zz], scale).logpdf(case["y"]).sum()
                if case["group_term"]:
                    lp += stats.norm(case["nu"][list(c)], 1.0).logpdf(case["h"][:, 0]).sum()
                table[(s, c, z)] = lp
    return table


def check_against_brute_force(case):
    table = brute_force(case)
    keys = list(table)
    lp = np.array([table[k] for k in keys])
    p = np.exp(lp - logsumexp(lp))
    g, n = case["g"], case["n"]
    with jax.enable_x64(True):
        values = {"y": jnp.asarray(case["y"])}
        if case["group_term"]:
            values["h"] = jnp.asarray(case["h"])
        jd = tfd.JointDistributionCoroutine(make_model(case))
        np.testing.assert_allclose(jd.log_prob(values), logsumexp(lp), rtol=0, atol=1e-10)
        post = jd.discrete_posterior(values)
    ref_s = sum(w for (s, _, _), w in zip(keys, p) if s == 1)
    np.testing.assert_allclose(post["s"][1], ref_s, atol=1e-10)
    ref_c = np.zeros((g, len(case["w"])))
    ref_z = np.zeros((g * n, len(case["mu"])))
    for (_, c, z), w in zip(keys, p):
        ref_c[np.arange(g), c] += w
        ref_z[np.arange(g * n), z] += w
    np.testing.assert_allclose(np.reshape(post["c"], ref_c.shape), ref_c, atol=1e-10)
    np.testing.assert_allclose(np.reshape(post["z"], ref_z.shape), ref_z, atol=1e-10)


@settings(max_examples=3, deadline=None)
@given(cases(max_n=2))
def test_random_nested_models_equal_brute_force(case):
    check_against_brute_force(case)


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(cases(max_n=3))
def test_more_random_nested_models_equal_brute_force(case):
    check_against_brute_force(case)
