"""MarkovChain: HiddenMarkovModel and RegimeSwitching share one implementation of log_prob and
the posterior methods (same types, one forward pass for posterior + mode, parallel == sequential).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import coromix.markov.parallel
import coromix.markov.sequential
from coromix.distributions import (
    Categorical,
    HiddenMarkovModel,
    MarkovChain,
    Normal,
    RegimeSwitching,
)
from coromix.markov import MarkovPosterior

P = np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])
P0 = np.array([0.5, 0.3, 0.2])
MU = np.array([-2.0, 0.0, 2.5])
SIGMA = np.array([1.0, 0.7, 1.2])


def series(T, seed=0):
    rng = np.random.default_rng(seed)
    z = [rng.choice(3, p=P0)]
    for _ in range(1, T):
        z.append(rng.choice(3, p=P[z[-1]]))
    z = np.array(z)
    return rng.normal(MU[z], SIGMA[z])


def hmm(T, parallel=None):
    return HiddenMarkovModel(
        Categorical(probs=jnp.asarray(P0)),
        Categorical(probs=jnp.asarray(P)),
        Normal(jnp.asarray(MU), jnp.asarray(SIGMA)),
        num_steps=T,
        parallel=parallel,
    )


def regime_switching(T, parallel=None):
    def step(prev, inputs):
        p, mu, sigma = jnp.asarray(P), jnp.asarray(MU), jnp.asarray(SIGMA)
        s = yield Categorical(probs=jnp.asarray(P0) if prev is None else p[prev.s])
        y = yield Normal(mu[s], sigma[s])

    return RegimeSwitching(step, num_steps=T, parallel=parallel)


BOTH = [hmm, regime_switching]


@pytest.mark.slow
def test_same_types_from_the_same_methods():
    T = 12
    y = jnp.asarray(series(T, seed=1), jnp.float32)
    h, r = hmm(T), regime_switching(T)
    assert isinstance(h, MarkovChain) and isinstance(r, MarkovChain)
    assert (h.latent_name, r.latent_name) == ("states", "s")
    assert h.num_states == r.num_states == 3
    for d in (h, r):
        lp = d.log_prob(y)
        assert isinstance(lp, jax.Array) and lp.shape == ()
        post = d.posterior(y)
        assert type(post) is MarkovPosterior
        assert post._fields == ("log_likelihood", "marginals", "filtered")
        assert post.log_likelihood.shape == () and post.marginals.shape == (T, 3)
        assert post.filtered.shape == (T, 3)
        marg = d.posterior_marginals(y)
        assert isinstance(marg, Categorical) and marg.probs.shape == (T, 3)
        mode = d.posterior_mode(y)
        assert isinstance(mode, jax.Array) and mode.dtype == jnp.int32 and mode.shape == (T,)
        draws = d.posterior_sample(y, (4, 2), seed=0)
        assert draws.dtype == jnp.int32 and draws.shape == (4, 2, T)
    # the same chain written both ways gives the same numbers
    np.testing.assert_allclose(float(h.log_prob(y)), float(r.log_prob(y)), rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(h.posterior_marginals(y).probs),
        np.asarray(r.posterior_marginals(y).probs),
        atol=1e-5,
    )
    np.testing.assert_array_equal(np.asarray(h.posterior_mode(y)), np.asarray(r.posterior_mode(y)))
    np.testing.assert_array_equal(
        np.asarray(h.posterior_sample(y, 5, seed=3)), np.asarray(r.posterior_sample(y, 5, seed=3))
    )


def _counting(monkeypatch, module):
    calls = []
    original = module.forward_filter

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "forward_filter", counted)
    return calls


@pytest.mark.parametrize("make", BOTH)
# the parallel kernels' count (about 10 s on a CPU) in the slow suite
@pytest.mark.parametrize("parallel", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_posterior_and_mode_run_the_forward_filter_once(monkeypatch, make, parallel):
    T = 6
    y = jnp.asarray(series(T, seed=2), jnp.float32)
    d = make(T, parallel=parallel)
    expected_lp = float(d.log_prob(y))  # before counting
    seq_calls = _counting(monkeypatch, coromix.markov.sequential)
    par_calls = _counting(monkeypatch, coromix.markov.parallel)
    with jax.disable_jit():  # eager: every kernel call runs the Python function
        post = d.posterior(y)
        mode = d.posterior_mode(y)
    assert (len(seq_calls), len(par_calls)) == ((0, 1) if parallel else (1, 0))
    np.testing.assert_allclose(float(post.log_likelihood), expected_lp, rtol=1e-5)
    assert post.marginals.shape == (T, 3) and mode.shape == (T,)
    # (the marginals and filtered probabilities agree at the last step, where both condition on y)
    np.testing.assert_allclose(
        np.asarray(post.filtered[-1]), np.asarray(post.marginals[-1]), atol=1e-6
    )


@pytest.mark.parametrize("make", BOTH)
def test_parallel_equals_sequential(precision, make):
    T = 40
    tol = 1e-10 if precision == "float64" else 1e-5
    y = jnp.asarray(series(T, seed=3))
    seq, par = make(T, parallel=False), make(T, parallel=True)
    lp_seq, lp_par = seq.log_prob(y), par.log_prob(y)
    assert lp_seq.dtype == lp_par.dtype == jnp.dtype(precision)
    np.testing.assert_allclose(float(lp_par), float(lp_seq), rtol=tol, atol=tol)
    post_seq, post_par = seq.posterior(y), par.posterior(y)
    for post, lp in ((post_seq, lp_seq), (post_par, lp_par)):
        np.testing.assert_allclose(float(post.log_likelihood), float(lp), rtol=tol, atol=tol)
        np.testing.assert_allclose(np.asarray(post.marginals).sum(-1), 1.0, atol=tol)
        np.testing.assert_allclose(np.asarray(post.filtered).sum(-1), 1.0, atol=tol)
    np.testing.assert_allclose(
        np.asarray(post_par.marginals), np.asarray(post_seq.marginals), atol=tol
    )
    np.testing.assert_allclose(
        np.asarray(post_par.filtered), np.asarray(post_seq.filtered), atol=tol
    )
    np.testing.assert_allclose(
        np.asarray(par.posterior_marginals(y).probs),
        np.asarray(seq.posterior_marginals(y).probs),
        atol=tol,
    )
    np.testing.assert_array_equal(
        np.asarray(par.posterior_mode(y)), np.asarray(seq.posterior_mode(y))
    )


def test_batched_posterior_fields_carry_the_batch(precision):
    """A batch of series through the HMM: every MarkovPosterior field gets the batch in front."""
    T = 10
    y = jnp.stack([jnp.asarray(series(T, seed=s)) for s in range(4)])
    d = hmm(T, parallel=False)
    post = d.posterior(y)
    assert post.log_likelihood.shape == (4,)
    assert post.marginals.shape == post.filtered.shape == (4, T, 3)
    tol = 1e-10 if precision == "float64" else 1e-5
    np.testing.assert_allclose(
        np.asarray(post.log_likelihood), np.asarray(d.log_prob(y)), rtol=tol, atol=tol
    )
    one = d.posterior(y[2])
    np.testing.assert_allclose(np.asarray(post.marginals[2]), np.asarray(one.marginals), atol=tol)


def test_parallel_setting_survives_a_pytree_round_trip():
    d = hmm(5, parallel=True)
    leaves, tree = jax.tree_util.tree_flatten(d)
    d2 = jax.tree_util.tree_unflatten(tree, leaves)
    assert d2.parallel is True and d2._use_parallel()
    assert hmm(5)._use_parallel() == coromix.markov.default_parallel()
