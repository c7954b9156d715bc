r"""Hidden Markov model: a chain of discrete regimes over ``num_steps`` steps, summed out exactly.

TensorFlow Probability's ``tfd.HiddenMarkovModel`` semantics:

.. math::

    z_1 \sim \text{initial},\quad z_t \mid z_{t-1} \sim \text{transition}[z_{t-1}],\quad
    x_t \mid z_t \sim \text{observation}[z_t],

and ``log_prob(x)`` is :math:`\log p(x_{1:T}) = \log\sum_{z_{1:T}} p(z_{1:T})\,p(x_{1:T}\mid z_{1:T})`,
computed by :func:`coromix.markov.forward_log_likelihood` (``O(K^2 T)``, exact gradients by a custom
VJP).  With TFP's ``mask`` the masked steps' factors are left out of :math:`p(x_{1:T}\mid z_{1:T})`
(missing observations, series of unequal lengths); ``forecast`` looks past the data.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from coromix import constraints, markov
from coromix.distributions.categorical import Categorical
from coromix.distributions.distribution import Distribution, Shape
from coromix.distributions.markov_chain import Forecast, MarkovChain, check_missing
from coromix.utils import as_key


class StateObservations:
    r"""The observation side shared by the hidden (semi-)Markov models: ``x_t \sim
    \text{observation}[z_t]``, one component per state, and TFP's ``mask``.

    Used by :class:`HiddenMarkovModel` and
    :class:`~coromix.distributions.HiddenSemiMarkovModel`, which set
    ``observation_distribution`` (batch ``B_obs + [K]``, or ``B_obs + [num_steps, K]`` when
    ``time_varying_observation``), ``num_steps``, ``num_states`` and ``mask`` (``None`` or
    ``bool B_mask + [num_steps]``).  It gives the per-state log-likelihoods (:meth:`_log_obs`,
    masked steps' values replaced so that NaN there reaches neither values nor gradients), the
    NaN check on concrete observations, the event shape and the draws of observations given a
    state path.

    >>> from coromix.distributions import HiddenMarkovModel
    >>> issubclass(HiddenMarkovModel, StateObservations)
    True
    """

    observation_distribution: Distribution
    num_steps: int
    mask: Any = None
    time_varying_observation: bool = False
    num_states: int
    validate_args: bool

    def _check_mask(self, model_batch: Shape) -> None:
        """``mask`` is bool, ends in ``num_steps`` and its batch broadcasts with ``model_batch``
        (the batch shape of the parameters)."""
        label, mask, T = self._label(), self.mask, self.num_steps  # type: ignore[attr-defined]
        if mask.dtype != jnp.bool_:
            raise TypeError(
                f"{label}: `mask` must be a bool array (True = missing observation); got dtype "
                f"{mask.dtype} (e.g. mask=np.isnan(y), or mask.astype(bool))"
            )
        if mask.ndim < 1 or mask.shape[-1] != T:
            raise ValueError(
                f"{label}: `mask` must have shape [..., num_steps] = [..., {T}] (True = "
                f"missing); got {list(mask.shape)}"
            )
        try:
            jnp.broadcast_shapes(model_batch, mask.shape[:-1])
        except ValueError:
            raise ValueError(
                f"{label}: the batch dims of `mask` {list(mask.shape[:-1])} do not broadcast "
                f"with the model's batch shape {list(model_batch)}"
            ) from None

    def _obs_batch(self) -> Shape:
        ob = tuple(self.observation_distribution.batch_shape)
        return ob[: len(ob) - (2 if self.time_varying_observation else 1)]

    def _mask_batch(self) -> Shape:
        return () if self.mask is None else tuple(self.mask.shape[:-1])

    @property
    def event_shape(self) -> Shape:
        return (self.num_steps,) + tuple(self.observation_distribution.event_shape)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.Independent(self.observation_distribution.support, 1)

    @property
    def dtype(self) -> DTypeLike:
        return self.observation_distribution.dtype

    @property
    def is_discrete(self) -> bool:  # type: ignore[override]
        return self.observation_distribution.is_discrete

    def _log_obs_mask(self) -> jax.Array | None:
        return self.mask

    def _as_observations(self, observations: Any) -> jax.Array:
        value = jnp.asarray(observations)
        if self.validate_args:
            ev = len(self.observation_distribution.event_shape)
            check_missing(self._label(), value, self.mask, ev)
        return value

    def _missing_filled(self, value: jax.Array) -> jax.Array:
        """``value`` with its masked steps replaced by a point of the observation support (a fixed
        draw of state 0's observation, without gradient), so that NaN or out-of-support
        placeholders there reach neither ``log_obs`` nor its gradients (the double-``where``)."""
        obs = self.observation_distribution
        ev = len(obs.event_shape)
        fill = jax.lax.stop_gradient(obs.sample(seed=jax.random.key(0)))
        fill = jnp.take(fill, 0, axis=fill.ndim - 1 - ev)  # state 0's: B_obs (+ [T]) + event
        if not self.time_varying_observation:
            fill = jnp.expand_dims(fill, fill.ndim - ev)  # B_obs + [1] + event
        missing = jnp.reshape(self.mask, self.mask.shape + (1,) * ev)
        return jnp.where(missing, fill.astype(value.dtype), value)

    def _log_obs(self, value) -> jax.Array:
        """``log p(x_t | z_t = k)`` with shape ``batch(value) + [T, K]`` (masked steps' values
        replaced; :class:`MarkovChain` zeros their rows)."""
        value = jnp.asarray(value)
        obs = self.observation_distribution
        ev = len(obs.event_shape)
        lead = value.ndim - 1 - ev
        if lead < 0 or value.shape[lead:] != self.event_shape:
            raise ValueError(
                f"{self._label()}: observations must have shape [..., "
                f"{', '.join(map(str, self.event_shape))}] (num_steps + observation "
                f"event shape); got {list(value.shape)}"
            )
        if self.mask is not None:
            value = self._missing_filled(value)
            lead = value.ndim - 1 - ev
        if self.time_varying_observation:
            return obs.log_prob(jnp.expand_dims(value, lead + 1))  # [..., T, K]
        pad = max(0, len(self._obs_batch()) - lead)  # keep T out of the batch alignment
        value = jnp.reshape(value, (1,) * pad + value.shape)
        lead += pad
        x = jnp.expand_dims(jnp.moveaxis(value, lead, 0), lead + 1)  # [T, ..., 1, *ev]
        return jnp.moveaxis(obs.log_prob(x), 0, -2)  # [..., T, K]

    def _observations_given_states(self, key, z: jax.Array, shape: Shape) -> jax.Array:
        """One observation per step given the states ``z`` ``int [*shape, n]``: ``[*shape, n,
        *event]`` (``n = num_steps`` for a time-varying observation distribution)."""
        # Draws every state's component at every step (K times the observations needed, but it
        # works for any observation distribution), then picks the given state's one.
        K, n = self.num_states, z.shape[-1]
        obs = self.observation_distribution
        ev = tuple(obs.event_shape)
        if self.time_varying_observation:
            x = obs._sample(key, shape + (n, K))  # [*shape, T, K, *ev]
        else:
            x = obs._sample(key, (n,) + shape + (K,))  # [n, *shape, K, *ev]
            x = jnp.moveaxis(x, 0, len(shape))
        idx = z.reshape(z.shape + (1,) + (1,) * len(ev))
        idx = jnp.broadcast_to(idx, z.shape + (1,) + ev)
        picked = jnp.take_along_axis(x, idx, axis=len(shape) + 1)
        return jnp.squeeze(picked, axis=len(shape) + 1)


class HiddenMarkovModel(StateObservations, MarkovChain):
    r"""HiddenMarkovModel(initial_distribution, transition_distribution, observation_distribution,
    num_steps, time_varying_transition=False, time_varying_observation=False, *, mask=None,
    parallel=None).

    .. math::
        p(x_{1:T}) = \sum_{z_{1:T}} \pi(z_1) \prod_{t=2}^T A_t(z_{t-1}, z_t)
            \prod_{t=1}^T p(x_t\mid z_t)

    Args:
      initial_distribution: :class:`Categorical` over the ``K`` states, batch shape ``B_init``.
      transition_distribution: :class:`Categorical` with ``K`` categories and batch shape
        ``B_trans + [K]`` (row ``i`` is :math:`p(z_t \mid z_{t-1} = i)`), or
        ``B_trans + [num_steps - 1, K]`` when ``time_varying_transition`` is true (entry ``t-1``
        governs the move into step ``t``).
      observation_distribution: any coromix distribution whose batch shape ends in ``[K]`` (one
        component per state), or in ``[num_steps, K]`` when ``time_varying_observation`` is true;
        its event shape (e.g. ``[D]`` for a multivariate one) is the per-step event.
      num_steps: number of steps ``T`` (static).
      time_varying_transition: see ``transition_distribution`` (TFP's
        ``time_varying_transition_distribution``).
      time_varying_observation: see ``observation_distribution`` (TFP's
        ``time_varying_observation_distribution``).
      mask: TFP's ``mask``: ``None`` (default, every observation scored) or a bool array
        ``B_mask + [num_steps]``, ``True`` where the observation is missing. A missing
        observation is not scored (its term is left out of the likelihood) but its state still is
        (by the transitions), in ``log_prob`` and in every posterior (marginals, Viterbi, path
        draws). Missing entries may hold anything, NaN included (they are replaced before being
        scored, so neither values nor gradients see them). A batch of series of unequal lengths
        is a batch (``B_mask``) padded to ``num_steps`` with the tail masked. ``sample`` ignores
        the mask (it draws every step).
      parallel: ``None`` (default) = the sequential recursion on CPU and the parallel-in-time one
        on GPU/TPU (:func:`coromix.markov.default_parallel`); ``True``/``False`` force one.

    Shapes: ``event_shape = [num_steps] + observation event shape``; ``batch_shape`` is the
    broadcast of ``B_init``, ``B_trans``, the observation batch without its trailing ``[K]`` (or
    ``[num_steps, K]``) and ``B_mask``.

    With ``validate_args`` (the default), concrete observations holding NaN at steps the mask does
    not mark missing raise a ``ValueError`` naming the series and the steps.

    A :class:`~coromix.distributions.MarkovChain` (``latent_name = "states"``): ``log_prob``,
    ``posterior`` (a :class:`~coromix.markov.MarkovPosterior`), ``posterior_marginals`` (a
    :class:`Categorical` with ``probs`` of shape ``batch + [num_steps, K]`` like TFP),
    ``posterior_mode`` (the Viterbi path ``int32 batch + [T]``) and ``posterior_sample`` (exact
    path draws ``int32 sample_shape + batch + [T]``) come from there; :meth:`forecast` gives the
    regime probabilities and a predictive draw past the data.

    TFP's example (a "cold"/"hot" day model of temperatures):

    >>> import jax.numpy as jnp
    >>> from coromix.distributions import Categorical, HiddenMarkovModel, Normal
    >>> hmm = HiddenMarkovModel(Categorical(probs=[0.8, 0.2]),
    ...                         Categorical(probs=[[0.7, 0.3], [0.2, 0.8]]),
    ...                         Normal(loc=[0.0, 15.0], scale=[5.0, 10.0]), num_steps=7)
    >>> hmm.log_prob(jnp.zeros(7))
    Array(-19.8556, dtype=float32)
    >>> hmm.mean().tolist()
    [3.0, 6.0, 7.5, 8.25, 8.625, 8.8125, 8.90625]

    Missing days (NaN, masked) are left out; two series of 7 and 5 days as one padded batch:

    >>> x = jnp.array([[1.0, 2.0, jnp.nan, 4.0, 3.0, 2.0, 1.0],
    ...                [0.5, 1.5, 2.5, 3.5, 4.5, jnp.nan, jnp.nan]])
    >>> masked = HiddenMarkovModel(Categorical(probs=[0.8, 0.2]),
    ...                            Categorical(probs=[[0.7, 0.3], [0.2, 0.8]]),
    ...                            Normal(loc=[0.0, 15.0], scale=[5.0, 10.0]), num_steps=7,
    ...                            mask=jnp.isnan(x))
    >>> masked.batch_shape, masked.log_prob(x)
    ((2,), Array([-17.7470, -14.7529], dtype=float32))
    """

    parameter_names = (
        "initial_distribution",
        "transition_distribution",
        "observation_distribution",
        "mask",
    )
    static_names = ("num_steps", "time_varying_transition", "time_varying_observation", "parallel")

    def __init__(
        self,
        initial_distribution: Categorical,
        transition_distribution: Categorical,
        observation_distribution: Distribution,
        num_steps: int,
        time_varying_transition: bool = False,
        time_varying_observation: bool = False,
        *,
        mask: Any = None,
        parallel: bool | None = None,
        validate_args: bool = True,
        name: str | None = None,
    ):
        self.initial_distribution = initial_distribution
        self.transition_distribution = transition_distribution
        self.observation_distribution = observation_distribution
        self.mask = None if mask is None else jnp.asarray(mask)
        self.num_steps = int(num_steps)
        self.time_varying_transition = bool(time_varying_transition)
        self.time_varying_observation = bool(time_varying_observation)
        self.parallel = None if parallel is None else bool(parallel)
        self.name, self.validate_args = name, validate_args
        self._check_structure()
        self._init_common(name, validate_args)

    # --- structure --------------------------------------------------------------------------
    def _check_structure(self) -> None:
        label = self._label()
        init, trans, obs = (
            self.initial_distribution,
            self.transition_distribution,
            self.observation_distribution,
        )
        for what, d in (("initial_distribution", init), ("transition_distribution", trans)):
            if not (hasattr(d, "logits") and hasattr(d, "num_categories")):
                raise TypeError(f"{label}: `{what}` must be a Categorical; got {type(d).__name__}")
        if not isinstance(obs, Distribution):
            raise TypeError(
                f"{label}: `observation_distribution` must be a coromix Distribution; "
                f"got {type(obs).__name__}"
            )
        if self.num_steps < 1:
            raise ValueError(f"{label}: `num_steps` must be at least 1; got {self.num_steps}")
        K = init.num_categories
        T = self.num_steps
        if trans.num_categories != K:
            raise ValueError(
                f"{label}: transition_distribution has {trans.num_categories} "
                f"categories but initial_distribution has {K}"
            )
        tb = tuple(trans.batch_shape)
        want = (T - 1, K) if self.time_varying_transition else (K,)
        if tb[len(tb) - len(want) :] != want or len(tb) < len(want):
            raise ValueError(
                f"{label}: transition_distribution batch shape must end in "
                f"{list(want)} (rows of the transition matrix"
                f"{', per step' if self.time_varying_transition else ''}); got {list(tb)}"
            )
        ob = tuple(obs.batch_shape)
        want = (T, K) if self.time_varying_observation else (K,)
        if ob[len(ob) - len(want) :] != want or len(ob) < len(want):
            raise ValueError(
                f"{label}: observation_distribution batch shape must end in "
                f"{list(want)} (one component per state"
                f"{', per step' if self.time_varying_observation else ''}); got {list(ob)}"
            )
        if self.mask is not None:
            self._check_mask(
                tuple(
                    jnp.broadcast_shapes(self._init_batch(), self._trans_batch(), self._obs_batch())
                )
            )

    @property
    def latent_name(self) -> str:
        """``"states"``: a joint model reports the chain of a variable ``x`` as ``x_states``."""
        return "states"

    @property
    def num_states(self) -> int:
        """The number ``K`` of hidden states."""
        return self.initial_distribution.num_categories

    def _init_batch(self) -> Shape:
        return tuple(self.initial_distribution.batch_shape)

    def _trans_batch(self) -> Shape:
        tb = tuple(self.transition_distribution.batch_shape)
        return tb[: len(tb) - (2 if self.time_varying_transition else 1)]

    @property
    def batch_shape(self) -> Shape:
        return tuple(
            jnp.broadcast_shapes(
                self._init_batch(), self._trans_batch(), self._obs_batch(), self._mask_batch()
            )
        )

    # --- log-potentials ---------------------------------------------------------------------
    def _log_init(self) -> jax.Array:
        """``B_init + [K]`` normalized initial log-probabilities."""
        return jax.nn.log_softmax(self.initial_distribution.logits, axis=-1)

    def _log_trans(self) -> jax.Array:
        """``B_trans + [K, K]`` (or ``B_trans + [T-1, K, K]``) transition log-probabilities."""
        return jax.nn.log_softmax(self.transition_distribution.logits, axis=-1)

    def log_potentials(self, observations: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        r"""``(log_init, log_trans, log_obs)`` of the chain for ``observations``.

        ``log_init = log_softmax(initial logits)`` ``B_init + [K]``,
        ``log_trans = log_softmax(transition logits)`` ``B_trans + [K, K]`` (or
        ``B_trans + [T-1, K, K]``) and ``log_obs[..., t, k] = log p(x_t | z_t = k)``
        ``sample + batch + [T, K]``, the inputs of :mod:`coromix.markov` (the batch dims are
        broadcast, not materialized, by :class:`~coromix.distributions.MarkovChain`, which also
        sets the rows of masked steps to 0).

        >>> from coromix.distributions import Categorical, HiddenMarkovModel, Normal
        >>> hmm = HiddenMarkovModel(Categorical(probs=[0.5, 0.5]),
        ...                         Categorical(probs=[[0.9, 0.1], [0.2, 0.8]]),
        ...                         Normal(loc=[0.0, 3.0], scale=1.0), num_steps=4)
        >>> [x.shape for x in hmm.log_potentials(jnp.zeros((5, 4)))]
        [(2,), (2, 2), (5, 4, 2)]
        """
        observations = self._as_observations(observations)  # the NaN check, when concrete
        return self._log_init(), self._log_trans(), self._log_obs(observations)

    # --- sampling ---------------------------------------------------------------------------
    def _sample_states(self, key, shape: Shape) -> jax.Array:
        """Ancestral draws of the state path, ``int32 shape + [T]`` (``shape`` = sample + batch),
        by inverse-CDF sampling with all the uniforms drawn at once."""
        K, T = self.num_states, self.num_steps
        li = self._log_init()
        lt = self._log_trans()
        u = jax.random.uniform(key, (T,) + shape, li.dtype)
        z0 = markov.categorical_from_uniform(jnp.broadcast_to(li, shape + (K,)), u[0])
        if T == 1:
            return z0[..., None]

        def step(z, x):
            u_t, lt_t = x if self.time_varying_transition else (x, lt)
            rows = jnp.broadcast_to(lt_t, shape + (K, K))
            logits = jnp.take_along_axis(rows, z[..., None, None], axis=-2)[..., 0, :]
            z = markov.categorical_from_uniform(logits, u_t)
            return z, z

        xs = (u[1:], jnp.moveaxis(lt, -3, 0)) if self.time_varying_transition else u[1:]
        _, zs = jax.lax.scan(step, z0, xs)  # [T-1, *shape]
        return jnp.moveaxis(jnp.concatenate([z0[None], zs], axis=0), 0, -1)

    def _sample(self, key, shape: Shape) -> jax.Array:
        return _sample(self, key, tuple(shape))

    def _sample_impl(self, key, shape: Shape) -> jax.Array:
        k_z, k_x = jax.random.split(key)
        z = self._sample_states(k_z, shape)  # [*shape, T]
        return self._observations_given_states(k_x, z, shape)

    # --- forecasting ------------------------------------------------------------------------
    def forecast(self, value: Any, num_steps: int, seed: Any = None) -> Forecast:
        r"""Regime probabilities and one predictive draw for the ``num_steps`` steps after
        ``value``: a :class:`~coromix.distributions.Forecast`.

        With :math:`\hat\alpha_T = p(z_T\mid x_{1:T})` (the filtered probabilities at the last
        step, masked steps left out) and ``A`` the transition matrix,

        .. math::
            p(z_{T+h} = k\mid x_{1:T}) = (\hat\alpha_T A^h)_k,\qquad h = 1, \dots,
            \text{num\_steps},

        and one path :math:`z_T \sim \hat\alpha_T`, :math:`z_{T+h}\sim A(z_{T+h-1},\cdot)`,
        :math:`x_{T+h}\sim p(x\mid z_{T+h})`.  Fields ``probs`` ``B + [h, K]``, ``regimes``
        ``int32 B + [h]`` and ``observations`` ``B + [h] + event``, ``B`` the broadcast of the
        value's batch dims and ``batch_shape`` (a series padded with a masked tail is forecast
        from step ``num_steps``, after its padding).  One jitted function of the model, the
        value and the key: it works under :func:`jax.vmap` over parameters and keys.

        Time-varying transitions or observations describe the data's steps only, so they raise
        a ``ValueError`` (the future ones are unknown).

        >>> import jax.numpy as jnp
        >>> from coromix.distributions import Categorical, HiddenMarkovModel, Normal
        >>> hmm = HiddenMarkovModel(Categorical(probs=[0.5, 0.5]),
        ...                         Categorical(probs=[[0.9, 0.1], [0.2, 0.8]]),
        ...                         Normal(loc=[0.0, 3.0], scale=1.0), num_steps=4)
        >>> ahead = hmm.forecast(jnp.array([0.1, -0.3, 2.9, 3.2]), num_steps=3, seed=0)
        >>> ahead.probs     # p(z_4 | x) = (0.0024, 0.9976), times A, A^2, A^3
        Array([[0.2016..., 0.7983...],
               [0.3411..., 0.6588...],
               [0.4388..., 0.5611...]], dtype=float32)
        >>> ahead.regimes.shape, ahead.observations.shape
        ((3,), (3,))
        """
        label = self._label()
        if self.time_varying_transition or self.time_varying_observation:
            which = "transition" if self.time_varying_transition else "observation"
            raise ValueError(
                f"{label}: forecast needs the {which} distribution of the steps after the data, "
                f"but a time-varying {which}_distribution gives one per step of the data only "
                f"(the future ones are unknown); build a model with a time-invariant {which} "
                f"distribution for the future steps"
            )
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(
                f"{label}: forecast num_steps must be a positive int; got {num_steps!r}"
            )
        return _forecast(self, self._as_observations(value), as_key(seed), int(num_steps))

    # --- moments ----------------------------------------------------------------------------
    def _prior_marginals(self) -> jax.Array:
        """``p(z_t = k)`` under the prior, shape ``batch' + [T, K]``."""
        p0 = jnp.exp(self._log_init())
        A = jnp.exp(self._log_trans())
        if self.num_steps == 1:
            return p0[..., None, :]
        if self.time_varying_transition:
            A = jnp.moveaxis(A, -3, 0)
        batch = tuple(jnp.broadcast_shapes(p0.shape[:-1], self._trans_batch()))
        p0 = jnp.broadcast_to(p0, batch + p0.shape[-1:])

        def step(p, A_t):
            p = jnp.einsum("...i,...ij->...j", p, A_t)
            return p, p

        if self.time_varying_transition:
            _, ps = jax.lax.scan(step, p0, A)
        else:
            _, ps = jax.lax.scan(lambda p, _: step(p, A), p0, None, length=self.num_steps - 1)
        return jnp.moveaxis(jnp.concatenate([p0[None], ps], axis=0), 0, -2)

    def _component_moments(self, moment: Callable[[Distribution], jax.Array]):
        """Per-state moment with shape ``obs batch' + [T or 1, K] + event``."""
        m = moment(self.observation_distribution)
        if not self.time_varying_observation:
            ev = len(self.observation_distribution.event_shape)
            m = jnp.expand_dims(m, m.ndim - 1 - ev)
        return m

    def _mix(self, values, probs):
        ev = len(self.observation_distribution.event_shape)
        w = probs.reshape(probs.shape + (1,) * ev)
        return jnp.sum(w * values, axis=-1 - ev)

    def mean(self) -> jax.Array:
        """``E[x_t] = sum_k p(z_t = k) E[x_t | z_t = k]``; shape ``batch + event``."""
        out = self._mix(self._component_moments(lambda d: d.mean()), self._prior_marginals())
        return jnp.broadcast_to(out, self.batch_shape + self.event_shape)

    def variance(self) -> jax.Array:
        """Elementwise law of total variance ``E[Var(x_t|z_t)] + Var(E[x_t|z_t])``."""
        p = self._prior_marginals()
        mu = self._component_moments(lambda d: d.mean())
        var = self._component_moments(lambda d: d.variance())
        m = self._mix(mu, p)
        out = self._mix(var + mu**2, p) - m**2
        return jnp.broadcast_to(out, self.batch_shape + self.event_shape)


@partial(jax.jit, static_argnums=2)
def _sample(d: HiddenMarkovModel, key, shape: Shape):
    return d._sample_impl(key, shape)


@partial(jax.jit, static_argnums=3)
def _forecast(d: HiddenMarkovModel, value: jax.Array, key: jax.Array, horizon: int) -> Forecast:
    filtered = d.posterior(value).filtered[..., -1, :]  # B + [K]
    batch, K = filtered.shape[:-1], filtered.shape[-1]
    log_trans = d._log_trans()
    A = jnp.exp(log_trans)

    def propagate(p, _):
        p = jnp.einsum("...i,...ij->...j", p, A)
        return p, p

    _, probs = jax.lax.scan(propagate, filtered, None, length=horizon)  # [h] + B + [K]
    k_z, k_x = jax.random.split(key)
    u = jax.random.uniform(k_z, (horizon + 1,) + batch, filtered.dtype)
    z_T = markov.categorical_from_uniform(jnp.log(filtered), u[0])
    rows = jnp.broadcast_to(log_trans, batch + (K, K))

    def move(z, u_t):
        logits = jnp.take_along_axis(rows, z[..., None, None], axis=-2)[..., 0, :]
        z = markov.categorical_from_uniform(logits, u_t)
        return z, z

    _, regimes = jax.lax.scan(move, z_T, u[1:])  # [h] + B
    regimes = jnp.moveaxis(regimes, 0, -1)
    observations = d._observations_given_states(k_x, regimes, batch)
    return Forecast(jnp.moveaxis(probs, 0, -2), regimes, observations)
