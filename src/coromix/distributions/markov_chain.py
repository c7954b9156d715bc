r"""`MarkovChain`: the base of distributions over a series whose hidden discrete chain is summed out.

A subclass describes its chain by *log-potentials* for a given observed series (the conventions of
:mod:`coromix.markov`):

* ``log_init`` ``B_init + [K]``: :math:`\log\pi(z_1)`,
* ``log_trans`` ``B_trans + [K, K]``, or ``B_trans + [T-1, K, K]`` when
  ``time_varying_transition`` is true (entry ``t-1`` moves into step ``t``),
* ``log_obs`` ``B_obs + [T, K]``: :math:`\log p(y_t\mid z_t = k)`,

with leading batch shapes that broadcast to one batch shape ``B``, so that

.. math::
    \log p(y_{1:T}) = \log\sum_{z_{1:T}}\exp\Big(\log\pi(z_1)
        + \sum_{t=2}^T \log A_t(z_{t-1}, z_t) + \sum_{t=1}^T \log p(y_t\mid z_t)\Big).

(Pairwise potentials :math:`\psi_t(i, j)` that also hold observation terms, as in
:class:`~coromix.distributions.RegimeSwitching`, go into a time-varying ``log_trans``.)  The base
then implements, once for every subclass, with one return convention:

* ``log_prob(value)`` ``B``: :func:`coromix.markov.forward_log_likelihood` (custom VJP);
* ``posterior(observations)``: a :class:`~coromix.markov.MarkovPosterior` whose fields carry ``B``
  in front (``log_likelihood`` ``B``, ``marginals`` and ``filtered`` probability arrays
  ``B + [T, K]``), from one forward and one backward pass;
* ``posterior_marginals(observations)``: a :class:`Categorical` with ``probs`` ``B + [T, K]``
  (TFP's convention);
* ``posterior_mode(observations)``: the Viterbi path, ``int32 B + [T]``;
* ``posterior_sample(observations, sample_shape, seed)``: exact path draws by forward filtering,
  backward sampling, ``int32 sample_shape + B + [T]``.

``parallel`` (``None`` = :func:`coromix.markov.default_parallel`) picks the sequential or the
parallel-in-time kernels for all of them (the Viterbi pass is always sequential).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from coromix import markov
from coromix.distributions.categorical import Categorical
from coromix.distributions.distribution import Distribution
from coromix.markov import MarkovPosterior
from coromix.utils import Shape, as_key, as_shape, is_concrete

__all__ = ["Forecast", "MarkovChain", "MarkovPosterior", "check_missing", "mask_log_obs"]

LogPotentials = tuple[jax.Array, jax.Array, jax.Array]


class Forecast(NamedTuple):
    r"""What a regime model says about the ``h`` steps after its data (``forecast`` methods).

    Fields, for one series (a batch of series or of parameters adds its dims in front of each):

    * ``probs`` ``[h, K]``: the regime probabilities
      :math:`p(z_{T+j} = k\mid y_{1:T})`, ``j = 1..h`` (row ``j-1``), exact given the
      parameters (for a homogeneous chain, :math:`\hat\alpha_T A^j` with :math:`\hat\alpha_T`
      the filtered probabilities at the last step);
    * ``regimes`` ``int32 [h]``: one regime path :math:`z_{T+1:T+h}` drawn forward from
      :math:`p(z_T\mid y_{1:T})` through the transitions;
    * ``observations`` ``[h, ...]``: one predictive draw of :math:`y_{T+1:T+h}` along that
      path (``...`` = the observation's event shape).

    ``regimes`` and ``observations`` are one joint draw from the predictive distribution;
    ``probs`` are its exact regime marginals (the draws' frequencies over many seeds).

    >>> from coromix.distributions import Forecast
    >>> Forecast._fields
    ('probs', 'regimes', 'observations')
    """

    probs: jax.Array
    regimes: jax.Array
    observations: Any


def map_over_batch(
    fn: Callable, args: Sequence[jax.Array], core_ndims: Sequence[int], batch_shape: Shape
) -> Any:
    """Apply ``fn`` (written for unbatched arguments) over leading batch dimensions.

    ``args[i]`` has shape ``b_i + core_i`` with ``len(core_i) == core_ndims[i]`` and ``b_i``
    broadcastable to ``batch_shape``.  Arguments are not materialized at the full batch shape: a
    dimension an argument lacks (or has as 1) is not mapped for it (``in_axes=None``).  ``fn`` may
    return a pytree (e.g. a :class:`~coromix.markov.MarkovPosterior`); every leaf gets
    ``batch_shape`` in front.

    >>> import jax.numpy as jnp
    >>> map_over_batch(lambda a, b: a @ b, [jnp.ones((4, 2)), jnp.ones((3, 1, 2))], [1, 1],
    ...                (3, 4)).shape
    (3, 4)
    """
    padded = []
    for a, c in zip(args, core_ndims):
        nb = jnp.ndim(a) - c
        if nb > len(batch_shape):
            raise ValueError(
                f"argument of shape {jnp.shape(a)} has more batch dims than {batch_shape}"
            )
        padded.append(jnp.reshape(a, (1,) * (len(batch_shape) - nb) + jnp.shape(a)))

    def rec(depth, *xs):
        if depth == len(batch_shape):
            return fn(*xs)
        n = batch_shape[depth]
        axes = tuple(0 if (x.shape[0] == n or n == 1) else None for x in xs)
        xs = tuple(x if ax == 0 else x[0] for x, ax in zip(xs, axes))
        return jax.vmap(lambda *ys: rec(depth + 1, *ys), in_axes=axes)(*xs)

    return rec(0, *padded)


def mask_log_obs(log_obs: jax.Array, mask: Any) -> jax.Array:
    r"""``log_obs`` ``B + [T, K]`` with the masked steps' rows set to 0 (``mask`` ``bool
    B_mask + [T]``, True = missing; the batch shapes broadcast).

    .. math::
        \log p(y_{1:T}) = \log\sum_{z_{1:T}} \pi(z_1)\prod_{t\ge 2} A_t(z_{t-1}, z_t)
            \prod_{t:\,\text{not masked}} p(y_t\mid z_t)

    ``jnp.where``, so nothing of the masked entries reaches the result or its gradients (as long
    as they are finite; :class:`HiddenMarkovModel` replaces missing values before scoring them).

    >>> import jax.numpy as jnp
    >>> mask_log_obs(jnp.full((3, 2), -1.0), jnp.array([False, True, False]))
    Array([[-1., -1.],
           [ 0.,  0.],
           [-1., -1.]], dtype=float32)
    """
    mask = jnp.asarray(mask)
    return jnp.where(mask[..., None], jnp.zeros((), log_obs.dtype), log_obs)


def check_missing(label: str, value: Any, mask: Any, event_ndims: int) -> None:
    """Raise a ``ValueError`` naming the series and steps where a concrete float ``value``
    (``batch + [T] + event``) holds NaN that ``mask`` (``bool B_mask + [T]`` or ``None``) does not
    mark as missing; nothing when the value or the mask is traced.

    >>> import numpy as np
    >>> check_missing("HiddenMarkovModel", np.array([[0.0, np.nan, 1.0], [np.nan, 0.0, 0.0]]),
    ...               None, 0)
    Traceback (most recent call last):
    ...
    ValueError: HiddenMarkovModel: the observations hold NaN at series 0: step 1; series 1: step 0
    (with no mask); ... pass mask= (bool, True = missing, e.g. mask=np.isnan(y)); ...
    """
    if not (is_concrete(value) and (mask is None or is_concrete(mask))):
        return
    value = np.asarray(value)
    if not np.issubdtype(value.dtype, np.inexact):
        return
    bad = np.isnan(value)
    if event_ndims:
        bad = bad.any(axis=tuple(range(-event_ndims, 0)))
    if mask is not None:
        bad, m = np.broadcast_arrays(bad, np.asarray(mask, bool))
        bad = bad & ~m
    if not bad.any():
        return
    series: dict[tuple[int, ...], list[int]] = {}
    for idx in np.argwhere(bad):
        series.setdefault(tuple(int(i) for i in idx[:-1]), []).append(int(idx[-1]))
    parts = []
    for key, steps in list(series.items())[:5]:
        shown = ", ".join(map(str, steps[:10])) + (", ..." if len(steps) > 10 else "")
        what = f"step{'s' if len(steps) > 1 else ''} {shown}"
        name = ", ".join(map(str, key))
        parts.append(f"series {name}: {what}" if key else what)
    more = f" (and {len(series) - 5} more series)" if len(series) > 5 else ""
    if mask is None:
        raise ValueError(
            f"{label}: the observations hold NaN at {'; '.join(parts)}{more} (with no mask); to "
            f"leave missing observations out of the likelihood, pass mask= (bool, True = "
            f"missing, e.g. mask=np.isnan(y)); their states are still summed over"
        )
    raise ValueError(
        f"{label}: the observations hold NaN at {'; '.join(parts)}{more} where mask= is False "
        f"(observed); set mask True there (True = missing), e.g. mask=np.isnan(y)"
    )


class MarkovChain(Distribution):
    r"""Base of the distributions over a series driven by a hidden Markov chain of ``K`` states.

    Subclasses (:class:`~coromix.distributions.HiddenMarkovModel`,
    :class:`~coromix.distributions.RegimeSwitching`) provide

    * :meth:`log_potentials` ``(observations) -> (log_init, log_trans, log_obs)`` (see the module
      docstring for the shapes),
    * ``latent_name`` (the name under which a joint model reports the hidden chain),
      ``num_states`` (``K``), ``time_varying_transition`` (which ``log_trans`` shape they give)
      and ``parallel`` (``None`` = automatic, ``True``/``False`` = parallel-in-time or sequential
      kernels),

    and inherit ``log_prob``, :meth:`posterior`, :meth:`posterior_marginals`,
    :meth:`posterior_mode` and :meth:`posterior_sample` from here.

    >>> from coromix.distributions import Categorical, HiddenMarkovModel, MarkovChain, Normal
    >>> hmm = HiddenMarkovModel(Categorical(probs=[0.5, 0.5]),
    ...                         Categorical(probs=[[0.9, 0.1], [0.2, 0.8]]),
    ...                         Normal(loc=[0.0, 3.0], scale=1.0), num_steps=4)
    >>> isinstance(hmm, MarkovChain), hmm.latent_name, hmm.num_states
    (True, 'states', 2)
    """

    parallel: bool | None = None
    time_varying_transition: bool = False
    # Whether the public methods run as jitted functions of the distribution (a pytree); off for
    # subclasses whose log-potentials run user code best left eager.
    _jit_methods: ClassVar[bool] = True

    # --- what a subclass provides -------------------------------------------------------------
    @property
    def latent_name(self) -> str:
        """Name of the hidden chain, e.g. ``"states"``; a joint model reports the chain of a
        variable ``y`` as ``f"{y}_{latent_name}"``."""
        raise NotImplementedError

    @property
    def num_states(self) -> int:
        """The number ``K`` of states of the hidden chain."""
        raise NotImplementedError

    def log_potentials(self, observations: Any) -> LogPotentials:
        """``(log_init, log_trans, log_obs)`` for the observed series (see the module docstring)."""
        raise NotImplementedError

    def _as_observations(self, observations: Any) -> Any:
        """The observed series as arrays (before it enters the jitted methods)."""
        return jnp.asarray(observations)

    def _log_obs_mask(self) -> jax.Array | None:
        """``bool B_mask + [T]``, True at the steps whose observation is missing, or ``None``.

        Where it is True the base sets ``log_obs`` to 0 (:func:`mask_log_obs`): the step's
        observation is not scored, its state still is (by the transitions).  ``None`` here;
        subclasses whose ``log_obs`` holds only the observation terms return their ``mask``.
        """
        return None

    # --- shared machinery ---------------------------------------------------------------------
    def _use_parallel(self) -> bool:
        return markov.default_parallel() if self.parallel is None else bool(self.parallel)

    def _chain_inputs(self, observations: Any) -> tuple[LogPotentials, tuple[int, ...], Shape]:
        """The log-potentials, their core ranks and the broadcast batch shape ``B``."""
        li, lt, lo = self.log_potentials(observations)
        mask = self._log_obs_mask()
        if mask is not None:
            lo = mask_log_obs(lo, mask)
        lt_core = 3 if self.time_varying_transition else 2
        batch = tuple(
            jnp.broadcast_shapes(li.shape[:-1], lt.shape[: lt.ndim - lt_core], lo.shape[:-2])
        )
        return (li, lt, lo), (1, lt_core, 2), batch

    def _call(self, name: str, observations: Any, *static: Any) -> Any:
        impl, jitted = _METHODS[name]
        fn = jitted if self._jit_methods else impl
        return fn(self, self._as_observations(observations), *static)

    # --- densities and posteriors -------------------------------------------------------------
    def log_prob(self, value: Any) -> jax.Array:
        r"""``log p(y_{1:T})`` with all state paths summed out; shape ``sample + batch``.

        :func:`coromix.markov.forward_log_likelihood` over the batch: ``O(K^2 T)`` work, exact
        gradients (the posterior expectations) by its custom VJP.

        >>> from coromix.distributions import Categorical, HiddenMarkovModel, Normal
        >>> hmm = HiddenMarkovModel(Categorical(probs=[0.5, 0.5]),
        ...                         Categorical(probs=[[0.9, 0.1], [0.2, 0.8]]),
        ...                         Normal(loc=[0.0, 3.0], scale=1.0), num_steps=4)
        >>> hmm.log_prob([0.1, -0.3, 2.9, 3.2])
        Array(-7.0481, dtype=float32)
        """
        return self._call("log_prob", value)

    def posterior(self, observations: Any) -> MarkovPosterior:
        r"""Log-likelihood, smoothed and filtered marginals from one forward and one backward pass.

        A :class:`~coromix.markov.MarkovPosterior` with ``log_likelihood`` (shape ``B``, equal to
        ``log_prob``), ``marginals`` :math:`p(z_t = k\mid y_{1:T})` and ``filtered``
        :math:`p(z_t = k\mid y_{1:t})` (probability ARRAYS of shape ``B + [T, K]``); see
        :func:`coromix.markov.posterior`.

        >>> from coromix.distributions import Categorical, HiddenMarkovModel, Normal
        >>> hmm = HiddenMarkovModel(Categorical(probs=[0.5, 0.5]),
        ...                         Categorical(probs=[[0.9, 0.1], [0.2, 0.8]]),
        ...                         Normal(loc=[0.0, 3.0], scale=1.0), num_steps=4)
        >>> post = hmm.posterior([0.1, -0.3, 2.9, 3.2])
        >>> post.log_likelihood
        Array(-7.0481, dtype=float32)
        >>> post.marginals
        Array([[1.00..., 0.00...],
               [1.00..., 0.00...],
               [0.02..., 0.98...],
               [0.00..., 1.00...]], dtype=float32)
        """
        return self._call("posterior", observations)

    def posterior_marginals(self, observations: Any) -> Categorical:
        r"""``p(z_t = k | y_{1:T})`` as a :class:`Categorical` with ``probs`` of shape
        ``B + [T, K]`` (TFP returns a Categorical too; ``.probs`` is the array, the same as
        ``posterior(observations).marginals``).

        .. math::
            p(z_t = k\mid y_{1:T}) \propto p(y_{1:t}, z_t = k)\, p(y_{t+1:T}\mid z_t = k)

        by forward-backward; every row sums to one (all zero if ``y`` has zero likelihood).

        >>> from coromix.distributions import Categorical, HiddenMarkovModel, Normal
        >>> hmm = HiddenMarkovModel(Categorical(probs=[0.5, 0.5]),
        ...                         Categorical(probs=[[0.9, 0.1], [0.2, 0.8]]),
        ...                         Normal(loc=[0.0, 3.0], scale=1.0), num_steps=4)
        >>> hmm.posterior_marginals([0.1, -0.3, 2.9, 3.2]).probs.shape
        (4, 2)
        """
        return Categorical(probs=self.posterior(observations).marginals, validate_args=False)

    def posterior_mode(self, observations: Any) -> jax.Array:
        r"""Most probable state path (Viterbi), ``int32 B + [T]``.

        .. math::
            \hat z_{1:T} = \arg\max_{z_{1:T}} p(z_{1:T}\mid y_{1:T})

        by a max-product pass (:func:`coromix.markov.posterior_mode`); ties go to the lowest index.

        >>> from coromix.distributions import Categorical, HiddenMarkovModel, Normal
        >>> hmm = HiddenMarkovModel(Categorical(probs=[0.5, 0.5]),
        ...                         Categorical(probs=[[0.9, 0.1], [0.2, 0.8]]),
        ...                         Normal(loc=[0.0, 3.0], scale=1.0), num_steps=4)
        >>> hmm.posterior_mode([0.1, -0.3, 2.9, 3.2])
        Array([0, 0, 1, 1], dtype=int32)
        """
        return self._call("posterior_mode", observations)

    def posterior_sample(
        self, observations: Any, sample_shape: int | Sequence[int] = (), seed: Any = None
    ) -> jax.Array:
        r"""Exact draws of state paths from :math:`p(z_{1:T}\mid y_{1:T})`, ``int32
        sample_shape + B + [T]``.

        Forward filtering, backward sampling: :math:`z_T \sim p(z_T\mid y_{1:T})`, then
        :math:`p(z_{t-1} = i\mid z_t, y) \propto p(z_{t-1} = i\mid y_{1:t-1})\,A_t(i, z_t)`
        (:func:`coromix.markov.posterior_sample`); one forward pass for all draws.

        >>> from coromix.distributions import Categorical, HiddenMarkovModel, Normal
        >>> hmm = HiddenMarkovModel(Categorical(probs=[0.5, 0.5]),
        ...                         Categorical(probs=[[0.9, 0.1], [0.2, 0.8]]),
        ...                         Normal(loc=[0.0, 30.0], scale=1.0), num_steps=4)
        >>> hmm.posterior_sample([0.1, -0.3, 29.9, 30.2], sample_shape=2, seed=0)
        Array([[0, 0, 1, 1],
               [0, 0, 1, 1]], dtype=int32)
        """
        return self._call("posterior_sample", observations, as_key(seed), as_shape(sample_shape))


# The public methods run these functions of (distribution, observations); for subclasses with
# ``_jit_methods`` they are jitted (the distribution is a pytree), so that eager calls compile
# once per shape instead of dispatching every operation separately.


def _log_prob(d: MarkovChain, observations: Any) -> jax.Array:
    args, cores, batch = d._chain_inputs(observations)
    kernel = partial(markov.forward_log_likelihood, parallel=d._use_parallel())
    return map_over_batch(kernel, args, cores, batch)


def _posterior(d: MarkovChain, observations: Any) -> MarkovPosterior:
    args, cores, batch = d._chain_inputs(observations)
    kernel = partial(markov.posterior, parallel=d._use_parallel())
    return map_over_batch(kernel, args, cores, batch)


def _posterior_mode(d: MarkovChain, observations: Any) -> jax.Array:
    args, cores, batch = d._chain_inputs(observations)
    return map_over_batch(markov.posterior_mode, args, cores, batch)


def _posterior_sample(
    d: MarkovChain, observations: Any, key: jax.Array, sample_shape: Shape
) -> jax.Array:
    args, cores, batch = d._chain_inputs(observations)
    n = int(np.prod(batch, dtype=np.int64))
    keys = jax.random.split(key, n).reshape(batch)
    parallel = d._use_parallel()
    draws = map_over_batch(
        lambda k, li, lt, lo: markov.posterior_sample(
            k, li, lt, lo, sample_shape, parallel=parallel
        ),
        (keys,) + args,
        (0,) + cores,
        batch,
    )  # batch + S + [T]
    nb, ns = len(batch), len(sample_shape)
    return jnp.moveaxis(draws, tuple(range(nb, nb + ns)), tuple(range(ns)))


_METHODS: dict[str, tuple[Callable, Callable]] = {
    "log_prob": (_log_prob, jax.jit(_log_prob)),
    "posterior": (_posterior, jax.jit(_posterior)),
    "posterior_mode": (_posterior_mode, jax.jit(_posterior_mode)),
    "posterior_sample": (_posterior_sample, jax.jit(_posterior_sample, static_argnums=3)),
}
