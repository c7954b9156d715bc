"""Property tests: random small models mixing a path choice (a Python ``if`` on a scalar choice), a
scalar choice enumerated as a tensor, nested plates (a choice per group, a choice per observation in
the group), a chain (``HiddenMarkovModel`` or ``RegimeSwitching`` whose transitions depend on the
tensor-enumerated choice) and group terms.  ``log_prob`` equals brute-force enumeration over every
joint value of every discrete variable (float64, 1e-10) and ``discrete_posterior`` equals the
brute-force marginals of the joint table (1e-10).

Speed: a structure (sizes and which features are present) is compiled once, with the example's
numbers (probabilities, means, data) as arguments of the jitted function; hypothesis draws the
structure from a small fixed menu, so that the default suite compiles each of the menu's models once
and runs hundreds of examples.  The brute force is one vectorized pass over the table of all joint
assignments (``np.indices``), with ``logsumexp`` once.
"""

import functools
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import logsumexp

import coromix.distributions as tfd

K_CHAIN = 2  # states of the chain node
SCALES = np.array([1.0, 2.0])  # observation scale given the path choice s


class Structure(NamedTuple):
    """The discrete settings of a model: what is compiled once."""

    g: int  # groups (plate of c)
    n: int  # observations per group (plate of z)
    kc: int  # categories of c (one per group)
    kz: int  # categories of z (one per observation)
    kr: int  # categories of r (a scalar choice enumerated as a tensor)
    branch: bool  # s enters through a Python `if` (a path) rather than `jnp.where` (a tensor)
    group_term: bool  # an observed term per group depending on c
    chain: str | None  # None, "hmm" (HiddenMarkovModel) or "rs" (RegimeSwitching)
    t: int  # chain length


S = Structure
# The default suite's menu: every feature in several combinations and sizes.
MENU = [
    S(g=1, n=1, kc=2, kz=2, kr=2, branch=False, group_term=False, chain=None, t=0),
    S(g=2, n=2, kc=3, kz=2, kr=2, branch=True, group_term=True, chain=None, t=0),
    S(g=2, n=1, kc=2, kz=3, kr=3, branch=False, group_term=True, chain="hmm", t=3),
    S(g=1, n=2, kc=3, kz=3, kr=2, branch=True, group_term=False, chain="hmm", t=2),
    S(g=2, n=2, kc=2, kz=2, kr=2, branch=True, group_term=True, chain="rs", t=3),
    S(g=1, n=3, kc=2, kz=2, kr=3, branch=False, group_term=False, chain="rs", t=2),
]


def _slow_menu(count=30, seed=0):
    """A larger menu for the slow suite: structures drawn from the whole product of settings."""
    rng = np.random.default_rng(seed)
    out = set()
    while len(out) < count:
        chain = [None, "hmm", "rs"][rng.integers(3)]
        out.add(
            S(
                g=int(rng.integers(1, 3)),
                n=int(rng.integers(1, 4)),
                kc=int(rng.integers(2, 4)),
                kz=int(rng.integers(2, 4)),
                kr=int(rng.integers(2, 4)),
                branch=bool(rng.integers(2)),
                group_term=bool(rng.integers(2)),
                chain=chain,
                t=0 if chain is None else int(rng.integers(1, 4)),
            )
        )
    return sorted(out, key=lambda s: tuple(str(x) for x in s))


SLOW_MENU = MENU + _slow_menu()


def make_model(sv, p):
    """The model of structure ``sv`` with numbers ``p`` (arrays, traced under ``jit``)."""

    def model():
        s = yield tfd.Bernoulli(probs=p["ps"], name="s")
        if sv.branch:  # a path choice: the model runs once per value of s
            scale = 2.0 if s == 1 else 1.0
        else:  # s enumerated along a tensor dim
            scale = jnp.where(s == 1, 2.0, 1.0)
        r = yield tfd.Categorical(probs=p["wr"], name="r")  # a tensor choice (indexing only)
        c = yield tfd.Categorical(probs=jnp.broadcast_to(p["w"], (sv.g, 1, sv.kc)), name="c")
        z = yield tfd.Categorical(probs=p["theta"][c] * jnp.ones((sv.n, 1)), name="z")
        yield tfd.Normal(p["mu"][z] + p["shift"][r], scale, name="y")
        if sv.group_term:
            yield tfd.Normal(p["nu"][c], 1.0, name="h")
        if sv.chain == "hmm":
            yield tfd.HiddenMarkovModel(
                tfd.Categorical(probs=p["init"]),
                tfd.Categorical(probs=p["P"][r]),
                tfd.Normal(p["m"] * scale, 1.0),
                num_steps=sv.t,
                name="x",
            )
        elif sv.chain == "rs":
            trans = p["P"][r]

            def step(prev, inputs):
                q = yield tfd.Categorical(
                    probs=p["init"] if prev is None else trans[prev.q], name="q"
                )
                yield tfd.Normal(p["m"][q] * scale, 1.0, name="v")

            yield tfd.RegimeSwitching(step, num_steps=sv.t, name="x")

    return model


CHAIN_KEY = {"hmm": "x_states", "rs": "x_q"}


@functools.cache
def compiled(sv):
    """``(params, values) -> (log_prob, discrete_posterior)`` for structure ``sv``, jitted once."""

    def both(p, values):
        jd = tfd.JointDistributionCoroutine(make_model(sv, p))
        return jd.log_prob(values), jd.discrete_posterior(values)

    # the graphs are tiny: XLA's optimizations cost more compile time than they save
    return jax.jit(both, compiler_options={"xla_backend_optimization_level": 0})


def draw_numbers(sv, seed, spread, conc):
    rng = np.random.default_rng(seed)
    p = {
        "ps": rng.uniform(0.05, 0.95),
        "wr": rng.dirichlet(np.full(sv.kr, conc)),
        "w": rng.dirichlet(np.full(sv.kc, conc)),
        "theta": rng.dirichlet(np.full(sv.kz, conc), size=sv.kc),
        "mu": rng.normal(0, spread, sv.kz),
        "shift": rng.normal(0, 1, sv.kr),
        "nu": rng.normal(0, spread, sv.kc),
        "init": rng.dirichlet(np.full(K_CHAIN, conc)),
        "P": rng.dirichlet(np.full(K_CHAIN, conc), size=(sv.kr, K_CHAIN)),
        "m": rng.normal(0, spread, K_CHAIN),
    }
    # keep every probability away from 0 (a log of 0 has no 1e-10 comparison)
    for k in ("wr", "w", "theta", "init", "P"):
        p[k] = np.maximum(p[k], 1e-6)
        p[k] = p[k] / p[k].sum(-1, keepdims=True)
    values = {"y": rng.normal(0, spread, (sv.g, sv.n))}
    if sv.group_term:
        values["h"] = rng.normal(0, spread, (sv.g, 1))
    if sv.chain:
        values["x"] = rng.normal(0, spread, sv.t)
    return p, values


def brute_force(sv, p, values):
    """The log density of every joint assignment of (s, r, c_1.., z_11.., x_1..), as a table."""
    g, n, t = sv.g, sv.n, sv.t if sv.chain else 0
    dims = (2, sv.kr) + (sv.kc,) * g + (sv.kz,) * (g * n) + (K_CHAIN,) * t
    a = np.indices(dims).reshape(len(dims), -1)  # one column per joint assignment
    s, r = a[0], a[1]
    c = a[2 : 2 + g].T  # (N, g)
    z = a[2 + g : 2 + g + g * n].T.reshape(-1, g, n)  # (N, g, n)
    x = a[2 + g + g * n :].T  # (N, t)
    scale = SCALES[s]
    lp = np.log(np.where(s == 1, p["ps"], 1 - p["ps"])) + np.log(p["wr"][r])
    lp += np.log(p["w"][c]).sum(1)
    lp += np.log(p["theta"][c[:, :, None], z]).sum((1, 2))
    loc = p["mu"][z] + p["shift"][r][:, None, None]
    lp += stats.norm.logpdf(values["y"], loc, scale[:, None, None]).sum((1, 2))
    if sv.group_term:
        lp += stats.norm.logpdf(values["h"][:, 0], p["nu"][c], 1.0).sum(1)
    if t:
        lp += np.log(p["init"][x[:, 0]])
        lp += np.log(p["P"][r[:, None], x[:, :-1], x[:, 1:]]).sum(1)
        lp += stats.norm.logpdf(values["x"], p["m"][x] * scale[:, None], 1.0).sum(1)
    return lp.reshape(dims)


def marginals(table):
    """``p(axis k = j | data)`` for each axis of a log table: a list of vectors."""
    post = np.exp(table - logsumexp(table))
    axes = range(table.ndim)
    return [post.sum(tuple(a for a in axes if a != k)) for k in axes]


def check_against_brute_force(sv, seed, spread, conc):
    event(f"chain={sv.chain} branch={sv.branch} group_term={sv.group_term}")
    p, values = draw_numbers(sv, seed, spread, conc)
    table = brute_force(sv, p, values)
    lp, post = compiled(sv)(
        jax.tree_util.tree_map(jnp.asarray, p), {k: jnp.asarray(v) for k, v in values.items()}
    )
    np.testing.assert_allclose(lp, logsumexp(table), rtol=0, atol=1e-10)
    m = marginals(table)
    g, n = sv.g, sv.n
    expected = {
        "s": m[0],
        "r": m[1],
        "c": np.reshape(m[2 : 2 + g], (g, 1, sv.kc)),
        "z": np.reshape(m[2 + g : 2 + g + g * n], (g, n, sv.kz)),
    }
    if sv.chain:
        expected[CHAIN_KEY[sv.chain]] = np.stack(m[2 + g + g * n :])
    assert sorted(post) == sorted(expected)
    for k, ref in expected.items():
        np.testing.assert_allclose(post[k], ref, rtol=0, atol=1e-10, err_msg=k)


def cases(menu):
    return st.tuples(
        st.sampled_from(menu),
        st.integers(0, 2**32 - 1),
        st.sampled_from([0.5, 2.0, 5.0]),  # spread of means and data
        st.sampled_from([0.3, 1.0, 5.0]),  # Dirichlet concentration of the probabilities
    )


SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}


@settings(max_examples=240, **SETTINGS)
@given(cases(MENU))
def test_random_models_equal_brute_force(x64, case):
    check_against_brute_force(*case)


@pytest.mark.slow
@settings(max_examples=1000, **SETTINGS)
@given(cases(SLOW_MENU))
def test_more_random_models_equal_brute_force(x64, case):
    check_against_brute_force(*case)


def test_the_menus_cover_every_feature():
    for menu in (MENU, SLOW_MENU):
        assert {(sv.branch, sv.chain) for sv in menu} == set(
            itertools.product([False, True], [None, "hmm", "rs"])
        )
        assert {sv.group_term for sv in menu} == {False, True}
        assert max(sv.g for sv in menu) == 2 and max(sv.n for sv in menu) >= 2
