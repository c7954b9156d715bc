r"""Exact sums over a Markov chain of discrete states: forward algorithm, smoothing, Viterbi, FFBS.

Everything here works on *log-potentials*, not on distribution objects.  With ``K`` states and
``T`` steps the inputs are

* ``log_init``  ``[K]``: :math:`\log \pi(z_1)`,
* ``log_trans`` ``[K, K]`` (homogeneous) or ``[T-1, K, K]`` (time-varying):
  :math:`\log A_t(i, j)`, the potential of moving from state ``i`` at step ``t-1`` to ``j`` at ``t``
  (entry ``t-1`` of a time-varying array is used for the move into step ``t``),
* ``log_obs``   ``[T, K]``: :math:`\log p(y_t \mid z_t = k)`,

and the quantity summed out is

.. math::

    \log p(y_{1:T}) = \log \sum_{z_1, \dots, z_T} \exp\Big(\log\pi(z_1) + \sum_{t=2}^{T} \log A_t(z_{t-1}, z_t)
        + \sum_{t=1}^{T} \log p(y_t \mid z_t)\Big),

computed in :math:`O(K^2 T)` work instead of :math:`K^T`.  The potentials need not be normalized
(the formulas hold for any non-negative weights), and ``-inf`` entries (zero probabilities) are
allowed.

Two evaluation strategies:

* **sequential** (default on CPU): a scaled forward recursion in probability space with
  :func:`jax.lax.scan`; per-step log normalizers are added with Kahan compensation, so the float32
  error does not grow like ``T`` (about 0.01 nats at ``T = 1e5``).
* **parallel** (default on GPU/TPU, ``parallel=True``): :func:`jax.lax.associative_scan` over
  max-normalized log-space ``K x K`` matrices, ``O(log T)`` depth and ``O(K^3 T)`` work.

``parallel=None`` picks parallel on ``gpu``/``tpu`` backends and sequential otherwise.

* **time-sharded** (:func:`sharded_log_likelihood`, the log-likelihood only): the steps split
  over the devices of a mesh axis, each device reducing its block to one ``K x K`` matrix, then
  one all-gather of those and a short product across devices; for one series longer than a
  device's memory, or several devices working on one series.

Gradients of :func:`forward_log_likelihood` come from a custom VJP that runs the backward
(smoothing) pass once, storing only ``O(T K)`` forward messages, and returns the exact posterior
expectations (see the function's docstring).

One forward pass per call: :func:`posterior` returns a :class:`MarkovPosterior` (log-likelihood,
smoothed and filtered marginals) from one forward filter and one backward pass, so the three never
need separate runs; :func:`posterior_mode` is a max-product (Viterbi) pass and
:func:`posterior_sample` one forward filter followed by backward sampling.

All functions take one unbatched series; use :func:`jax.vmap` for batches of series or parameters.

Layout: :mod:`coromix.markov.sequential` (scan kernels: filter, smoother, Viterbi, backward
sampling), :mod:`coromix.markov.parallel` (associative-scan kernels), :mod:`coromix.markov.common`
(shared helpers) and :mod:`coromix.markov.api` (the public functions re-exported here).
:mod:`coromix.markov.semi_markov` holds the kernels of explicit-duration (semi-Markov) chains, over
pairs (regime, time elapsed in it), used by ``HiddenSemiMarkovModel``.

>>> import jax.numpy as jnp
>>> from coromix import markov
>>> log_init = jnp.log(jnp.array([0.5, 0.5]))
>>> log_trans = jnp.log(jnp.array([[0.9, 0.1], [0.2, 0.8]]))
>>> log_obs = jnp.log(jnp.array([[0.9, 0.1], [0.8, 0.2], [0.05, 0.95]]))
>>> post = markov.posterior(log_init, log_trans, log_obs)
>>> post.log_likelihood, markov.posterior_mode(log_init, log_trans, log_obs)
(Array(-2.8206, dtype=float32), Array([0, 0, 1], dtype=int32))
"""

from coromix.markov.api import (
    MarkovPosterior,
    forward_log_likelihood,
    posterior,
    posterior_marginals,
    posterior_mode,
    posterior_sample,
)
from coromix.markov.common import categorical_from_uniform, default_parallel
from coromix.markov.parallel import sharded_log_likelihood

__all__ = [
    "MarkovPosterior",
    "categorical_from_uniform",
    "default_parallel",
    "forward_log_likelihood",
    "posterior",
    "posterior_marginals",
    "posterior_mode",
    "posterior_sample",
    "sharded_log_likelihood",
]
