r"""Hidden semi-Markov model: regimes with explicit durations, summed out exactly in ``O(T K D)``.

.. math::
    z^{(1)} \sim \pi,\quad d^{(s)} \sim p_{z^{(s)}}(\cdot) \text{ on } 1..D,\quad
    z^{(s+1)} \sim A(z^{(s)}, \cdot),\ A(k, k) = 0,\quad x_t \mid z_t \sim \text{observation}[z_t]:

a sequence of segments, segment ``s`` in regime :math:`z^{(s)}` for :math:`d^{(s)}` steps.  Where a
hidden Markov model's time in a regime is geometric, here it is any law on ``1..D`` (a recession
that lasts two to six quarters, a gene of a typical length).  The kernels are in
:mod:`coromix.markov.semi_markov` (the forward algorithm over pairs (regime, elapsed time)).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from coromix.distributions.categorical import Categorical
from coromix.distributions.distribution import Distribution, Shape
from coromix.distributions.hidden_markov_model import StateObservations
from coromix.distributions.markov_chain import (
    Forecast,
    MarkovChain,
    MarkovPosterior,
    map_over_batch,
    mask_log_obs,
)
from coromix.markov import categorical_from_uniform
from coromix.markov import semi_markov as kernels
from coromix.utils import as_key, is_concrete


class HiddenSemiMarkovModel(StateObservations, MarkovChain):
    r"""HiddenSemiMarkovModel(initial_distribution, transition_distribution,
    duration_distribution, observation_distribution, num_steps, *, max_duration=None, mask=None).

    .. math::
        p(x_{1:T}) = \sum_{\text{segmentations}}\ \pi(k_1)
            \prod_{s=1}^{S-1} p_{k_s}(d_s)\,A(k_s, k_{s+1})\cdot P_{k_S}(d \ge d_S)
            \prod_{t=1}^T p(x_t\mid z_t)

    over all ways of cutting ``1..T`` into segments ``s = 1..S`` of lengths :math:`d_s` with
    regimes :math:`k_s` (:math:`k_{s+1}\ne k_s`).  The **last segment is right-censored**: the data
    end while it may go on, so it contributes the probability that its duration is *at least* the
    steps it has (the survivor), not that it is exactly that.  The first segment starts at step 1.

    Args:
      initial_distribution: :class:`Categorical` over the ``K`` regimes of the first segment,
        batch shape ``B_init``.
      transition_distribution: :class:`Categorical` with ``K`` categories and batch shape
        ``B_trans + [K]``: row ``k`` is the law of the regime that follows a segment in ``k``.
        Its **diagonal must be zero** (a regime never follows itself; time spent in a regime is
        the duration law's): a concrete nonzero diagonal raises a ``ValueError``; traced rows
        (inside ``jit``/``grad``) have their diagonal dropped and are renormalized over the other
        regimes.
      duration_distribution: the law of a segment's duration in each regime, batch shape
        ``B_dur + [K]``. Either a :class:`Categorical` with ``D`` categories, category ``j``
        meaning a duration of ``j + 1`` steps (so ``D`` = the longest duration), or any discrete
        distribution with an integer support (``Poisson``, ``NegativeBinomial``, ...) with
        ``max_duration = D`` given: its probabilities of ``1..D`` renormalized (the law truncated
        to ``1..D``; zero is not a duration).
      observation_distribution: any coromix distribution whose batch shape ends in ``[K]`` (one
        component per regime), as in :class:`~coromix.distributions.HiddenMarkovModel`.
      num_steps: number of steps ``T`` (static).
      max_duration: ``D``: required for a non-Categorical duration law, optional (equal to its
        number of categories) for a Categorical.
      mask: ``None`` or bool ``B_mask + [num_steps]``, True where the observation is missing
        (not scored; its regime still is), as in
        :class:`~coromix.distributions.HiddenMarkovModel`.

    Shapes as for the hidden Markov model: ``event_shape = [num_steps] + observation event``,
    ``batch_shape`` the broadcast of ``B_init``, ``B_trans``, ``B_dur``, ``B_obs`` and
    ``B_mask``.

    A :class:`~coromix.distributions.MarkovChain` over the ``K`` regimes
    (``latent_name = "regimes"``), so a joint model sums it out and reports its posterior like a
    hidden Markov model's: ``log_prob``, ``posterior`` (smoothed and filtered regime marginals
    ``batch + [T, K]``), ``posterior_marginals`` (a :class:`Categorical`), ``posterior_mode``
    (the most probable regime path, ``int32 batch + [T]``), ``posterior_sample`` (exact regime
    paths) and ``forecast``.  All run the structured kernels of
    :mod:`coromix.markov.semi_markov` over the pairs (regime, time elapsed in its segment):
    ``O(T K min(D, T) + T K^2)`` work, jit/grad/vmap-able, sequential in time (``parallel`` is
    not used).

    A regime that lasts 1 or 2 steps, then one that lasts 3:

    >>> import jax.numpy as jnp
    >>> from coromix.distributions import (Categorical, HiddenSemiMarkovModel, Normal)
    >>> hsmm = HiddenSemiMarkovModel(
    ...     Categorical(probs=[1.0, 0.0]),
    ...     Categorical(probs=[[0.0, 1.0], [1.0, 0.0]]),
    ...     Categorical(probs=[[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]),
    ...     Normal(loc=[0.0, 5.0], scale=1.0), num_steps=6)
    >>> hsmm.sample(seed=1) > 2.5       # in regime 1: 1 step of regime 0, then 3 of regime 1
    Array([False,  True,  True,  True, False, False], dtype=bool)
    >>> y = jnp.array([0.1, 0.2, 5.1, 4.9, 5.0, 0.3])
    >>> hsmm.posterior_mode(y)
    Array([0, 0, 1, 1, 1, 0], dtype=int32)
    >>> hsmm.log_prob(y)
    Array(-6.2868, dtype=float32)
    >>> hsmm.mean()        # e.g. step 6: regime 1 only after 1 + 3 steps of regimes 0, 1
    Array([0.  , 2.5 , 5.  , 5.  , 2.5 , 1.25], dtype=float32)
    """

    parameter_names = (
        "initial_distribution",
        "transition_distribution",
        "duration_distribution",
        "observation_distribution",
        "mask",
    )
    static_names = ("num_steps", "max_duration")
    time_varying_observation = False

    def __init__(
        self,
        initial_distribution: Categorical,
        transition_distribution: Categorical,
        duration_distribution: Distribution,
        observation_distribution: Distribution,
        num_steps: int,
        *,
        max_duration: int | None = None,
        mask: Any = None,
        validate_args: bool = True,
        name: str | None = None,
    ):
        self.initial_distribution = initial_distribution
        self.transition_distribution = transition_distribution
        self.duration_distribution = duration_distribution
        self.observation_distribution = observation_distribution
        self.num_steps = int(num_steps)
        self.mask = None if mask is None else jnp.asarray(mask)
        self.name, self.validate_args = name, validate_args
        self.max_duration = self._check_structure(max_duration)
        self._init_common(name, validate_args)

    # --- structure --------------------------------------------------------------------------
    def _check_structure(self, max_duration: int | None) -> int:
        label = self._label()
        init, trans, dur, obs = (
            self.initial_distribution,
            self.transition_distribution,
            self.duration_distribution,
            self.observation_distribution,
        )
        for what, d in (("initial_distribution", init), ("transition_distribution", trans)):
            if not isinstance(d, Categorical):
                raise TypeError(f"{label}: `{what}` must be a Categorical; got {type(d).__name__}")
        for what, d in (("duration_distribution", dur), ("observation_distribution", obs)):
            if not isinstance(d, Distribution):
                raise TypeError(
                    f"{label}: `{what}` must be a coromix Distribution; got {type(d).__name__}"
                )
        if self.num_steps < 1:
            raise ValueError(f"{label}: `num_steps` must be at least 1; got {self.num_steps}")
        K = init.num_categories
        if trans.num_categories != K or tuple(trans.batch_shape)[-1:] != (K,):
            raise ValueError(
                f"{label}: transition_distribution must have {K} categories and a batch shape "
                f"ending in [{K}] (one row per regime, as initial_distribution has {K}); got "
                f"{trans.num_categories} categories, batch shape {list(trans.batch_shape)}"
            )
        for what, d in (("duration_distribution", dur), ("observation_distribution", obs)):
            if tuple(d.batch_shape)[-1:] != (K,):
                raise ValueError(
                    f"{label}: {what} batch shape must end in [{K}] (one law per regime); got "
                    f"{list(d.batch_shape)}"
                )
        if isinstance(dur, Categorical):
            D = dur.num_categories
            if max_duration is not None and int(max_duration) != D:
                raise ValueError(
                    f"{label}: max_duration={max_duration} but the Categorical "
                    f"duration_distribution has {D} categories (durations 1..{D}); leave "
                    f"max_duration out or make them agree"
                )
            max_duration = D
        else:
            if not dur.is_discrete or tuple(dur.event_shape) != ():
                raise TypeError(
                    f"{label}: duration_distribution must be a Categorical (category j = "
                    f"duration j + 1) or a scalar discrete distribution on the integers; got "
                    f"{type(dur).__name__} with event shape {list(dur.event_shape)}"
                )
            if max_duration is None:
                raise ValueError(
                    f"{label}: max_duration is required with a {type(dur).__name__} "
                    f"duration_distribution: durations are its law on 1..max_duration, "
                    f"renormalized"
                )
        if isinstance(max_duration, bool) or int(max_duration) != max_duration or max_duration < 1:
            raise ValueError(f"{label}: max_duration must be a positive int; got {max_duration!r}")
        if self.mask is not None:
            self._check_mask(self._param_batch())
        return int(max_duration)

    def _validate(self) -> None:
        logits = self.transition_distribution.logits
        if not is_concrete(logits):
            return  # traced rows: the diagonal is dropped (see _log_trans)
        diag = np.diagonal(np.exp(np.asarray(jax.nn.log_softmax(logits, axis=-1))), 0, -2, -1)
        if np.any(diag > 0):
            raise ValueError(
                f"{self._label()}: `transition_distribution` must have a zero diagonal (a regime "
                f"never follows itself; the time spent in a regime is the duration law's); got "
                f"the diagonal {np.round(diag.astype(np.float64), 6).tolist()}: put 0 there and "
                f"renormalize the rows"
            )

    @property
    def latent_name(self) -> str:
        """``"regimes"``: a joint model reports the chain of a variable ``x`` as ``x_regimes``."""
        return "regimes"

    @property
    def num_states(self) -> int:
        """The number ``K`` of regimes."""
        return self.initial_distribution.num_categories

    def _param_batch(self) -> Shape:
        return tuple(
            jnp.broadcast_shapes(
                tuple(self.initial_distribution.batch_shape),
                tuple(self.transition_distribution.batch_shape)[:-1],
                tuple(self.duration_distribution.batch_shape)[:-1],
                self._obs_batch(),
            )
        )

    @property
    def batch_shape(self) -> Shape:
        return tuple(jnp.broadcast_shapes(self._param_batch(), self._mask_batch()))

    # --- the kernels' inputs ----------------------------------------------------------------
    def _log_init(self) -> jax.Array:
        return jax.nn.log_softmax(self.initial_distribution.logits, axis=-1)

    def _log_trans(self) -> jax.Array:
        """``B_trans + [K, K]``: the rows with their diagonal dropped, renormalized (the same
        rows when the diagonal is zero, as validated)."""
        logits = self.transition_distribution.logits
        K = self.num_states
        off = jnp.where(jnp.eye(K, dtype=bool), -jnp.inf, logits)
        return jax.nn.log_softmax(off, axis=-1)

    def log_durations(self) -> jax.Array:
        r""":math:`\log p_k(d)` for ``d = 1..max_duration``, ``B_dur + [K, D]``, normalized over
        ``1..D`` (column ``d - 1`` is duration ``d``).

        >>> from coromix.distributions import (Categorical, HiddenSemiMarkovModel, Normal,
        ...                                    Poisson)
        >>> hsmm = HiddenSemiMarkovModel(
        ...     Categorical(probs=[0.5, 0.5]), Categorical(probs=[[0.0, 1.0], [1.0, 0.0]]),
        ...     Poisson(rate=[2.0, 6.0]), Normal(loc=[0.0, 1.0], scale=1.0), num_steps=10,
        ...     max_duration=4)
        >>> jnp.exp(hsmm.log_durations()).tolist()   # Poisson(2) and (6) on 1..4, renormalized
        [[0.333, 0.333, 0.222, 0.111], [0.053, 0.158, 0.316, 0.474]]
        """
        dur = self.duration_distribution
        if isinstance(dur, Categorical):
            return jax.nn.log_softmax(dur.logits, axis=-1)
        D = self.max_duration
        nb = len(dur.batch_shape)
        d = jnp.arange(1, D + 1).reshape((D,) + (1,) * nb)
        return jax.nn.log_softmax(jnp.moveaxis(dur.log_prob(d), 0, -1), axis=-1)

    def _kernel_inputs(self, log_obs: jax.Array, num_steps: int | None = None):
        """``(log_init, log_trans, log_stay, log_end, log_obs)``, their core ranks and the batch
        shape (``num_steps``: how many steps the elapsed times must cover, default ``T``)."""
        log_stay, log_end = kernels.duration_potentials(
            self.log_durations(), self.num_steps if num_steps is None else num_steps
        )
        args = (self._log_init(), self._log_trans(), log_stay, log_end, log_obs)
        cores = (1, 2, 2, 2, 2)
        batch = tuple(jnp.broadcast_shapes(*(a.shape[: a.ndim - c] for a, c in zip(args, cores))))
        return args, cores, batch

    def _observed_inputs(self, observations: jax.Array, num_steps: int | None = None):
        """:meth:`_kernel_inputs` for an observed series (masked steps' rows set to 0)."""
        log_obs = self._log_obs(observations)
        if self.mask is not None:
            log_obs = mask_log_obs(log_obs, self.mask)
        return self._kernel_inputs(log_obs, num_steps)

    def log_potentials(self, observations: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Not available: the chain over regimes alone is not Markov (see
        :meth:`expanded_log_potentials` for the Markov chain over (regime, elapsed))."""
        raise NotImplementedError(
            f"{self._label()}: a semi-Markov chain has no (log_init, log_trans, log_obs) over "
            f"its regimes; use expanded_log_potentials for the chain over (regime, elapsed)"
        )

    def expanded_log_potentials(self, observations: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        r"""The dense hidden Markov chain over the ``K E`` pairs (regime ``k``, elapsed ``e``),
        state index ``k E + e - 1``: ``(log_init [K E], log_trans [K E, K E], log_obs [T, K E])``
        for one unbatched model, usable with :mod:`coromix.markov` (``O(T (K E)^2)``: a reference
        for small models; the methods of this class use the sparse kernels).

        >>> from coromix import markov
        >>> from coromix.distributions import Categorical, HiddenSemiMarkovModel, Normal
        >>> hsmm = HiddenSemiMarkovModel(
        ...     Categorical(probs=[0.5, 0.5]), Categorical(probs=[[0.0, 1.0], [1.0, 0.0]]),
        ...     Categorical(probs=[[0.2, 0.8], [0.6, 0.4]]), Normal(loc=[0.0, 1.0], scale=1.0),
        ...     num_steps=5)
        >>> y = jnp.array([0.1, 0.3, 1.2, 0.9, -0.2])
        >>> bool(jnp.allclose(markov.forward_log_likelihood(*hsmm.expanded_log_potentials(y)),
        ...                   hsmm.log_prob(y)))
        True
        """
        (li, lt, ls, le, lo), _, batch = self._observed_inputs(self._as_observations(observations))
        if batch != ():
            raise ValueError(f"{self._label()}: expanded_log_potentials needs batch shape ()")
        K, E = ls.shape
        log_init = jnp.full((K, E), -jnp.inf, li.dtype).at[:, 0].set(li).reshape(-1)
        stay = jnp.full((K, E, K, E), -jnp.inf, li.dtype)
        k, e = np.meshgrid(np.arange(K), np.arange(E - 1), indexing="ij")
        stay = stay.at[k, e, k, e + 1].set(ls[:, :-1])
        switch = le[:, :, None] + lt[:, None, :]  # [K, E, K']
        log_trans = stay.at[:, :, :, 0].set(switch).reshape(K * E, K * E)
        return log_init, log_trans, jnp.repeat(lo, E, axis=-1)

    # --- MarkovChain methods, on the semi-Markov kernels ------------------------------------
    def _call(self, name: str, observations: Any, *static: Any) -> Any:
        return _METHODS[name](self, self._as_observations(observations), *static)

    # --- sampling ---------------------------------------------------------------------------
    def _sample(self, key, shape: Shape) -> jax.Array:
        return _sample(self, key, tuple(shape))

    def _simulate_regimes(
        self, u_end: jax.Array, u_next: jax.Array, state: tuple, log_stay, log_end
    ) -> jax.Array:
        """Regimes forward from the pairs ``state = (k, e)`` (arrays of one batch shape ``S``,
        ``e`` 0-based) with the uniforms ``u_end``, ``u_next`` ``[n] + S``: ``int32 S + [n]``,
        the regimes of the ``n`` steps after ``state``."""
        log_trans = self._log_trans()
        S = state[0].shape

        def row(table, k):  # table B + [K, X] -> S + [X]: row k of each batch member
            full = jnp.broadcast_to(table, S + table.shape[-2:])
            return jnp.take_along_axis(full, k[..., None, None], axis=-2)[..., 0, :]

        def step(carry, u):
            k, e = carry
            u_e, u_k = u
            h = jnp.exp(jnp.take_along_axis(row(log_end, k), e[..., None], axis=-1)[..., 0])
            ends = u_e < h
            k_new = categorical_from_uniform(row(log_trans, k), u_k)
            k = jnp.where(ends, k_new, k)
            e = jnp.where(ends, 0, e + 1)
            return (k, e), k

        _, ks = jax.lax.scan(step, state, (u_end, u_next))
        return jnp.moveaxis(ks, 0, -1).astype(jnp.int32)

    def _sample_regimes(self, key, shape: Shape) -> jax.Array:
        """Regime paths ``int32 shape + [T]`` from the prior (``shape`` = sample + batch)."""
        T, K = self.num_steps, self.num_states
        log_stay, log_end = kernels.duration_potentials(self.log_durations(), T)
        li = self._log_init()
        u = jax.random.uniform(key, (2 * T - 1,) + shape, li.dtype)
        k0 = categorical_from_uniform(jnp.broadcast_to(li, shape + (K,)), u[0])
        if T == 1:
            return k0[..., None]
        e0 = jnp.zeros(shape, jnp.int32)
        rest = self._simulate_regimes(u[1:T], u[T:], (k0, e0), log_stay, log_end)
        return jnp.concatenate([k0[..., None], rest], axis=-1)

    # --- forecasting ------------------------------------------------------------------------
    def forecast(self, value: Any, num_steps: int, seed: Any = None) -> Forecast:
        r"""Regime probabilities and one predictive draw for the ``num_steps`` steps after
        ``value``: a :class:`~coromix.distributions.Forecast`.

        From the filtered pairs :math:`p(z_T = k, e_T = e\mid x_{1:T})` (regime and time already
        spent in it), ``probs[h-1]`` is :math:`p(z_{T+h}\mid x_{1:T})` by the expanded chain
        without observations (:func:`coromix.markov.semi_markov.predict`: a segment under way
        ends with its hazard :math:`p_k(e)/S_k(e)`, so the forecast knows how long the current
        regime has lasted); ``regimes`` is one path drawn forward from a filtered pair and
        ``observations`` one draw along it.  Shapes as for
        :meth:`HiddenMarkovModel.forecast <coromix.distributions.HiddenMarkovModel.forecast>`.

        >>> import jax.numpy as jnp
        >>> from coromix.distributions import Categorical, HiddenSemiMarkovModel, Normal
        >>> hsmm = HiddenSemiMarkovModel(
        ...     Categorical(probs=[1.0, 0.0]), Categorical(probs=[[0.0, 1.0], [1.0, 0.0]]),
        ...     Categorical(probs=[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]),   # always 3 steps
        ...     Normal(loc=[0.0, 5.0], scale=1.0), num_steps=4)
        >>> hsmm.forecast(jnp.array([0.1, -0.2, 0.3, 5.2]), 3, seed=0).probs
        Array([[0., 1.],
               [0., 1.],
               [1., 0.]], dtype=float32)
        """
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(
                f"{self._label()}: forecast num_steps must be a positive int; got {num_steps!r}"
            )
        return _forecast(self, self._as_observations(value), as_key(seed), int(num_steps))

    # --- moments ----------------------------------------------------------------------------
    def _prior_marginals(self) -> jax.Array:
        """``p(z_t = k)`` under the prior, ``batch' + [T, K]`` (the filter with no data)."""
        no_data = jnp.zeros((self.num_steps, self.num_states))
        args, cores, batch = self._kernel_inputs(no_data)
        return map_over_batch(lambda *a: kernels.forward_filter(*a)[1].sum(-1), args, cores, batch)

    def _mix(self, values, probs):
        ev = len(self.observation_distribution.event_shape)
        w = probs.reshape(probs.shape + (1,) * ev)
        return jnp.sum(w * values, axis=-1 - ev)

    def _component(self, moment):
        m = moment(self.observation_distribution)
        ev = len(self.observation_distribution.event_shape)
        return jnp.expand_dims(m, m.ndim - 1 - ev)  # [..., 1, K, *ev]

    def mean(self) -> jax.Array:
        """``E[x_t] = sum_k p(z_t = k) E[x_t | z_t = k]``; shape ``batch + event``."""
        out = self._mix(self._component(lambda d: d.mean()), self._prior_marginals())
        return jnp.broadcast_to(out, self.batch_shape + self.event_shape)

    def variance(self) -> jax.Array:
        """Elementwise law of total variance ``E[Var(x_t|z_t)] + Var(E[x_t|z_t])``."""
        p = self._prior_marginals()
        mu = self._component(lambda d: d.mean())
        var = self._component(lambda d: d.variance())
        m = self._mix(mu, p)
        out = self._mix(var + mu**2, p) - m**2
        return jnp.broadcast_to(out, self.batch_shape + self.event_shape)


# --- the MarkovChain methods (jitted functions of the distribution, a pytree) ------------------


@jax.jit
def _log_prob(d: HiddenSemiMarkovModel, observations: jax.Array) -> jax.Array:
    args, cores, batch = d._observed_inputs(observations)
    return map_over_batch(kernels.log_likelihood, args, cores, batch)


@jax.jit
def _posterior(d: HiddenSemiMarkovModel, observations: jax.Array) -> MarkovPosterior:
    args, cores, batch = d._observed_inputs(observations)
    return map_over_batch(kernels.posterior, args, cores, batch)


@jax.jit
def _posterior_mode(d: HiddenSemiMarkovModel, observations: jax.Array) -> jax.Array:
    args, cores, batch = d._observed_inputs(observations)
    return map_over_batch(kernels.posterior_mode, args, cores, batch)


@partial(jax.jit, static_argnums=3)
def _posterior_sample(
    d: HiddenSemiMarkovModel, observations: jax.Array, key: jax.Array, sample_shape: Shape
) -> jax.Array:
    args, cores, batch = d._observed_inputs(observations)
    n = int(np.prod(batch, dtype=np.int64))
    keys = jax.random.split(key, n).reshape(batch)
    draws = map_over_batch(
        lambda k, *a: kernels.posterior_sample(k, *a, sample_shape),
        (keys,) + args,
        (0,) + cores,
        batch,
    )  # batch + S + [T]
    nb, ns = len(batch), len(sample_shape)
    return jnp.moveaxis(draws, tuple(range(nb, nb + ns)), tuple(range(ns)))


_METHODS = {
    "log_prob": _log_prob,
    "posterior": _posterior,
    "posterior_mode": _posterior_mode,
    "posterior_sample": _posterior_sample,
}


@partial(jax.jit, static_argnums=2)
def _sample(d: HiddenSemiMarkovModel, key, shape: Shape):
    k_z, k_x = jax.random.split(key)
    z = d._sample_regimes(k_z, shape)
    return d._observations_given_states(k_x, z, shape)


@partial(jax.jit, static_argnums=3)
def _forecast(d: HiddenSemiMarkovModel, value: jax.Array, key: jax.Array, horizon: int):
    T = d.num_steps
    args, cores, batch = d._observed_inputs(value, num_steps=T + horizon)
    li, lt, ls, le, _ = args
    E, E_data = ls.shape[-1], min(d.max_duration, T)

    def filtered_pairs(*a):  # the filter tracks E_data elapsed times; pad to E
        _, alpha = kernels.forward_filter(*a[:2], a[2][:, :E_data], a[3][:, :E_data], a[4])
        return jnp.pad(alpha[-1], ((0, 0), (0, E - E_data)))

    alpha_T = map_over_batch(filtered_pairs, args, cores, batch)  # batch + [K, E]
    pairs = map_over_batch(
        lambda a, t, s, e: kernels.predict(a, t, s, e, horizon),
        (alpha_T, lt, ls, le),
        (2, 2, 2, 2),
        batch,
    )  # batch + [h, K, E]
    probs = pairs.sum(-1)
    K = d.num_states
    k_0, k_1, k_x = jax.random.split(key, 3)
    flat = categorical_from_uniform(
        jnp.log(alpha_T.reshape(batch + (K * E,))), jax.random.uniform(k_0, batch, li.dtype)
    )
    u = jax.random.uniform(k_1, (2, horizon) + batch, li.dtype)
    regimes = d._simulate_regimes(u[0], u[1], (flat // E, flat % E), ls, le)
    observations = d._observations_given_states(k_x, regimes, batch)
    return Forecast(probs, regimes, observations)
