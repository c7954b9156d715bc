"""`RegimeSwitching`: a Markov-switching series written as ONE step of a coroutine.

The step is a generator function ``step(prev, inputs)`` describing one time step: it first yields the
regime (a scalar finite discrete distribution, e.g. ``Categorical``), then the observation
distribution(s).  ``inputs`` is this step's row of ``inputs`` (covariates), or ``None``.  Regimes
are concrete integers on every run, so Python ``if`` on them is legal, as in
:class:`~coromix.distributions.JointDistributionCoroutine`.

``prev`` says what came before, as ``history`` asks:

* ``history=1`` (default): ``None`` at the first step, then the previous step's values
  (``prev.<regime name>``, ``prev.<observation name>``);
* ``history=p``: a tuple of the last ``min(t, p)`` steps' values, most recent first
  (``prev[0].s``, ``prev[0].y``, ..., ``prev[p-1].s``), ``()`` at the first step.

A step may yield only its regime: its observation is then conditioned on, not scored, and still
readable by later steps as ``prev[k].y``.  Hamilton's MS-AR(p), conditional on its first ``p``
observations as statsmodels fits it, is::

    def step(prev, inputs):
        s = yield tfd.Categorical(probs=pi if not prev else P[prev[0].s])
        if len(prev) == 4:
            ar = sum(phi[k] * (prev[k].y - mu[prev[k].s]) for k in range(4))
            y = yield tfd.Normal(mu[s] + ar, sigma)

The regimes are summed out by the forward algorithm over the expanded states
``e_t = (s_t, ..., s_{t-p+1})`` (``K^p`` of them; ``K`` with ``history=1``).  With ``y_t`` the
observations::

    log p(y) = log sum_s exp( phi_0(s_0) + sum_{t>=1} psi_t(s_{t-p..t-1}, s_t) )
    phi_0(j)   = log p(s_0 = j | inputs_0) + log p(y_0 | s_0 = j, inputs_0)
    psi_t(., j) = log p(s_t = j | prev, inputs_t) + log p(y_t | s_t = j, prev, inputs_t)

Each ``psi_t`` depends on ``(s_{t-p}, ..., s_t)`` only: it is computed for all ``t >= p`` and all
``K^(p+1)`` such combinations by ONE run of the step vmapped over both (the regimes traced), or,
when the step needs concrete regimes (Python ``if`` on them), by one run per combination vmapped
over time; the first ``p`` steps (shorter ``prev``) likewise over the regimes they see.  A move from
``e_{t-1}`` to ``e_t`` is possible only when they agree on ``s_{t-1}, ..., s_{t-p+1}``: each
expanded state has ``K`` successors.  ``log_prob`` uses that (``O(K^(p+1) T)``); the posterior,
Viterbi and FFBS run on the dense ``K^p x K^p`` chain with ``-inf`` for impossible moves.

``mask`` (bool, rightmost dim ``num_steps``, ``True`` = missing) leaves a step's observation terms
out of the likelihood; its regime is still scored.  A later step that reads a masked observation
(``prev.y``) reads the stored value, with non-finite entries (e.g. NaN placeholders) read as 0.
Leading batch dims on the observed value (and on ``inputs`` and ``mask``) are a panel of series
sharing the step: ``log_prob`` gives one value per series; unequal lengths by masking the tail.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from coromix import constraints, runner
from coromix.distributions.distribution import Distribution, is_scalar_choice
from coromix.distributions.markov_chain import Forecast, MarkovChain, check_missing
from coromix.markov import MarkovPosterior
from coromix.markov.history import history_log_likelihood
from coromix.runner import Values
from coromix.utils import Shape, as_key, as_shape, default_float


class _StepScorer:
    """Handler for one step run: regime fixed to a concrete value, observations given.

    ``regime_lp`` holds the regime's log-probability and the step's factor terms (always
    scored), ``obs_lp`` the observations' (left out at masked steps).  With ``observed=None``
    (structure discovery) observations get zero placeholders of their shapes.
    """

    def __init__(self, regime: Any, observed: dict[str, Any] | None):
        self.regime, self.observed = regime, observed
        self.regime_lp: Any = 0.0
        self.obs_lp: Any = 0.0
        self.names: list[str] = []
        self.regime_name: str | None = None
        self.num_regimes = 0
        self.shapes: dict[str, Any] = {}

    def __call__(self, name: str, dist: Distribution):
        if self.regime_name is None:
            if not is_scalar_choice(dist):
                raise ValueError(
                    f"RegimeSwitching: the step's first yield must be the regime, a scalar finite "
                    f"discrete distribution such as Categorical; got {dist!r} for {name!r}"
                )
            self.regime_name = name
            support = np.asarray(dist.enumerate_support())
            self.num_regimes = len(support)
            if isinstance(self.regime, (int, np.integer)):
                value = support[self.regime]
            else:  # a traced regime (one run for all regimes)
                value = jnp.asarray(support)[self.regime]
            self.regime_lp = self.regime_lp + dist.log_prob(value)
            return value
        if dist.is_factor:  # a term of this step, not an observation
            self.regime_lp = self.regime_lp + jnp.sum(dist.log_prob(None))
            return jnp.zeros(dist.batch_shape, dist.dtype)
        if is_scalar_choice(dist) and self.observed is not None and name not in self.observed:
            raise ValueError(
                f"RegimeSwitching: only one regime per step; {name!r} is a second discrete choice"
            )
        self.names.append(name)
        if self.observed is None:  # structure discovery: a placeholder of the right shape
            value = jnp.zeros(tuple(dist.batch_shape) + tuple(dist.event_shape), dist.dtype)
        else:
            if name not in self.observed:
                raise ValueError(
                    f"RegimeSwitching: no observed series for {name!r}; the observed value has "
                    f"{list(self.observed)}"
                )
            value = self.observed[name]
            self.obs_lp = self.obs_lp + jnp.sum(dist.log_prob(value))
        self.shapes[name] = jax.ShapeDtypeStruct(jnp.shape(value), jnp.result_type(value))
        return value


class _StepSampler:
    """Handler for sampling one step with the regime fixed to ``j``: records the regime's log
    probabilities over its support and draws the observations (or, with ``observed``, sends
    those back instead)."""

    def __init__(self, regime: Any, obs_key: jax.Array, observed: dict[str, Any] | None = None):
        self.regime, self.obs_key, self.observed = regime, obs_key, observed
        self.regime_log_probs: jax.Array | None = None
        self.observations: dict[str, jax.Array] = {}

    def __call__(self, name: str, dist: Distribution):
        if self.regime_log_probs is None:
            self.regime_log_probs = dist.enumerate_log_prob()
            support = np.asarray(dist.enumerate_support())
            if isinstance(self.regime, (int, np.integer)):
                return support[self.regime]
            return jnp.asarray(support)[self.regime]  # a traced regime (one run for all)
        if dist.is_factor:  # sampling ignores factors
            return jnp.zeros(dist.batch_shape, dist.dtype)
        if self.observed is not None:
            return self.observed[name]
        value = dist.sample(seed=jax.random.fold_in(self.obs_key, len(self.observations)))
        self.observations[name] = value
        return value


class _Lenient(Values):
    """A step's values during structure discovery: names not known yet read as a scalar 0."""

    def __missing__(self, key: str) -> jax.Array:
        return jnp.zeros((), default_float())


def _readable(y: dict[str, jax.Array], mask: Any) -> dict[str, jax.Array]:
    """One series' observations as the steps see them: at masked steps (``mask`` ``[T]``)
    non-finite float entries (missing-value placeholders) read as 0; the rest as given."""
    if mask is None:
        return y
    out = {}
    for k, x in y.items():
        if jnp.issubdtype(x.dtype, jnp.inexact):
            missing = jnp.reshape(mask, mask.shape + (1,) * (x.ndim - 1)) & ~jnp.isfinite(x)
            x = jnp.where(missing, jnp.zeros((), x.dtype), x)
        out[k] = x
    return out


def _missing_like(struct: Any) -> jax.Array:
    """What ``sample`` gives for an observation a step does not model: NaN (0 for integers)."""
    fill = jnp.nan if jnp.issubdtype(struct.dtype, jnp.inexact) else 0
    return jnp.full(struct.shape, fill, struct.dtype)


# What a step that needs concrete regimes raises when run with traced ones (Python ``if`` or
# ``int()`` on a regime, NumPy or list indexing by it): it then runs once per regime instead.
_NEEDS_CONCRETE = (TypeError, ValueError, IndexError)


def _possible_moves(K: int, p: int) -> np.ndarray:
    """``[K^p, K^p]`` bool: whether expanded state ``e'`` (previous) can move to ``e``, i.e. the
    older ``p - 1`` regimes of ``e`` are the newer ``p - 1`` of ``e'``."""
    S, W = K**p, K ** (p - 1)
    return (np.arange(S)[None, :] % W) == (np.arange(S)[:, None] // K)


def _to_expanded(x: jax.Array, W: int) -> jax.Array:
    """``x[..., j]`` over regimes as ``[..., K * W]`` over expanded states ``e = j * W + r``
    (a broadcast, so that its gradient is a sum, not a scatter)."""
    return jnp.broadcast_to(x[..., None], x.shape + (W,)).reshape(x.shape[:-1] + (x.shape[-1] * W,))


def _dense_potentials(
    log_init: jax.Array, psi: jax.Array, K: int, p: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """:class:`~coromix.distributions.MarkovChain`'s ``(log_init, log_trans, log_obs)`` over the
    expanded states from :meth:`RegimeSwitching._terms` (batch dims in front): a move
    ``e' -> e`` is possible when ``e``'s older regimes are ``e'``'s newer ones, and each column
    is shifted by its best entry into ``log_obs``, so that transitions are ``<= 0``."""
    S = log_init.shape[-1]
    dense = jnp.where(_possible_moves(K, p), _to_expanded(psi, S // K), -jnp.inf)
    best = jnp.max(dense, axis=-2)
    best = jnp.where(jnp.isfinite(best), best, 0.0)
    first = jnp.zeros(best.shape[:-2] + (1, S), dense.dtype)
    return log_init, dense - best[..., None, :], jnp.concatenate([first, best], -2)


class RegimeSwitching(MarkovChain):
    r"""A Markov-switching series given by one step; see the module docstring for the semantics.

    Args:
      step: generator function ``step(prev, inputs)`` yielding the regime, then the observations
        (or only the regime: that step's observation is conditioned on).
      num_steps: the series length ``T``.
      inputs: optional array (or pytree of arrays) with time axis ``T``: covariates per step,
        ``[T, ...]`` shared by all series, or ``B + [T, ...]`` for a panel (the time axis is the
        first axis of length ``T`` after the mask's batch dims, else the first of length ``T``).
      history: how many previous steps ``prev`` holds (see the module docstring).
      mask: optional bool array ``B + [T]``, ``True`` where a step's observation is missing.
      parallel: ``None`` (default) = :func:`coromix.markov.default_parallel`; ``True``/``False``
        force the parallel-in-time or the sequential kernels (see
        :func:`coromix.markov.forward_log_likelihood`).

    The value is the observed series: an array ``[T, ...]`` when the step yields one observation,
    else a mapping name -> ``[T, ...]``; leading batch dims make a panel.

    A :class:`~coromix.distributions.MarkovChain` over the expanded states
    :math:`(s_t, \dots, s_{t-p+1})` whose pairwise potentials go into a time-varying
    ``log_trans`` (:meth:`log_potentials`); ``log_prob``, :meth:`posterior`,
    ``posterior_marginals`` (a ``Categorical`` with ``probs`` ``B + [T, K]`` over the current
    regime, whatever ``history``), :meth:`posterior_mode` and :meth:`posterior_sample` (current
    regime paths ``int32 B + [T]``) come from there.  The batch shape is that of ``inputs`` and
    ``mask`` (``()`` without panels).  These methods are compiled (the step is static in the
    distribution's pytree): run op by op, the vmapped runs of the step took seconds per call.

    A switching mean, the same chain as the ``HiddenMarkovModel`` examples:

    >>> import jax.numpy as jnp
    >>> from coromix.distributions import Categorical, Normal, RegimeSwitching
    >>> P = jnp.array([[0.9, 0.1], [0.2, 0.8]])
    >>> def step(prev, inputs):
    ...     s = yield Categorical(probs=jnp.array([0.5, 0.5]) if prev is None else P[prev.s])
    ...     y = yield Normal(jnp.array([0.0, 3.0])[s], 1.0)
    >>> d = RegimeSwitching(step, num_steps=4)
    >>> d.latent_name, d.num_states, d.event_shape
    ('s', 2, (4,))
    >>> y = jnp.array([0.1, -0.3, 2.9, 3.2])
    >>> d.log_prob(y)
    Array(-7.0481, dtype=float32)
    >>> d.posterior_mode(y)
    Array([0, 0, 1, 1], dtype=int32)

    The same chain with ``history=2``, a mean that also remembers the regime before (the
    current regime's marginals come back, ``[T, K]``), and the third observation missing:

    >>> def step2(prev, inputs):
    ...     s = yield Categorical(probs=jnp.array([0.5, 0.5]) if not prev else P[prev[0].s])
    ...     lag = 0.0 if len(prev) < 2 else 0.5 * prev[1].s
    ...     y = yield Normal(jnp.array([0.0, 3.0])[s] + lag, 1.0)
    >>> d2 = RegimeSwitching(step2, 4, history=2, mask=jnp.array([False, False, True, False]))
    >>> d2.posterior_marginals(y).probs.shape
    (4, 2)
    """

    parameter_names = ("inputs", "mask")
    static_names = ("step", "num_steps", "history", "parallel")
    time_varying_transition: ClassVar[bool] = True  # psi_t(i, j) differs per step
    _jit_methods: ClassVar[bool] = True  # eager, a padded panel's log_prob took 24.6 s, jitted 5.2

    def __init__(
        self,
        step: Callable[..., Any],
        num_steps: int,
        inputs: Any = None,
        *,
        history: int = 1,
        mask: Any = None,
        parallel: bool | None = None,
        validate_args: bool = True,
        name: str | None = None,
    ):
        if not callable(step):
            raise TypeError(f"RegimeSwitching needs a step generator function; got {step!r}")
        self.step, self.num_steps, self.parallel = step, int(num_steps), parallel
        if self.num_steps < 1:
            raise ValueError(f"RegimeSwitching: num_steps must be >= 1; got {num_steps}")
        if isinstance(history, bool) or not isinstance(history, (int, np.integer)) or history < 1:
            raise ValueError(f"RegimeSwitching: history must be an int >= 1; got {history!r}")
        self.history = int(history)
        if mask is not None:
            mask = jnp.asarray(mask)
            if mask.dtype != jnp.bool_ or mask.shape[-1:] != (self.num_steps,):
                raise ValueError(
                    f"RegimeSwitching: mask must be a bool array with rightmost dim num_steps="
                    f"{self.num_steps} (True = missing); got {mask.dtype} of shape {mask.shape}"
                )
        self.mask = mask
        self.inputs = inputs
        if inputs is not None:
            for leaf in jax.tree_util.tree_leaves(inputs):
                self._time_axis(jnp.shape(leaf))  # raises if there is none
        _ = self.batch_shape  # raises if the panel's batch shapes do not broadcast
        self._init_common(name, validate_args)
        self._structure = None

    # --- inputs, mask and panels --------------------------------------------------------------
    def _mask_batch(self) -> Shape:
        return () if self.mask is None else tuple(jnp.shape(self.mask)[:-1])

    def _time_axis(self, shape: Shape) -> int:
        """The time axis of an ``inputs`` array: after the mask's batch dims when its leading
        dims are those, else the first axis of length ``num_steps``."""
        T, mb = self.num_steps, self._mask_batch()
        if mb and len(shape) > len(mb) and tuple(shape[: len(mb)]) == mb and shape[len(mb)] == T:
            return len(mb)
        for axis, n in enumerate(shape):
            if n == T:
                return axis
        raise ValueError(
            f"RegimeSwitching: inputs must have a time axis of length num_steps={T} ([T, ...], "
            f"or batch + [T, ...] for a panel); got an array of shape {tuple(shape)}"
        )

    @property
    def batch_shape(self) -> Shape:
        """The panel's batch shape: the broadcast leading dims of ``inputs`` and ``mask``."""
        shapes = [self._mask_batch()]
        for leaf in jax.tree_util.tree_leaves(self.inputs):
            shape = jnp.shape(leaf)
            shapes.append(tuple(shape[: self._time_axis(shape)]))
        try:
            return tuple(jnp.broadcast_shapes(*shapes))
        except ValueError:
            raise ValueError(
                f"RegimeSwitching: the batch dims of inputs and mask (a panel of series) do not "
                f"broadcast: {shapes}"
            ) from None

    def _series_inputs(self, batch: Shape) -> tuple[Any, Any]:
        """``inputs`` and ``mask`` broadcast to ``batch`` and flattened: leaves ``[n, T, ...]``."""
        n = int(np.prod(batch, dtype=np.int64))

        def flat(x, axis):
            core = tuple(jnp.shape(x)[axis:])
            return jnp.broadcast_to(x, tuple(batch) + core).reshape((n,) + core)

        inputs = jax.tree_util.tree_map(
            lambda x: flat(x, self._time_axis(jnp.shape(x))), self.inputs
        )
        mask = None if self.mask is None else flat(self.mask, self.mask.ndim - 1)
        return inputs, mask

    def _first_series_input(self, t: int) -> Any:
        """Row ``t`` of the first series' inputs (for structure discovery)."""

        def row(x):
            axis = self._time_axis(jnp.shape(x))
            return x[(0,) * axis + (t,)]

        return jax.tree_util.tree_map(row, self.inputs)

    # --- structure of one step ----------------------------------------------------------------
    def _run(self, prev, inputs, regime: int, observed) -> _StepScorer:
        handler = _StepScorer(regime, observed)
        runner.run(lambda: self.step(prev, inputs), handler)
        return handler

    def _prev(self, records: list[Values]) -> Any:
        """``prev`` from the previous steps' values, most recent first."""
        if self.history == 1:
            return records[0] if records else None
        return tuple(records)

    def structure(self) -> tuple[str, int, dict[str, Any]]:
        """(regime name, number of regimes K, observation shapes), found by running the first
        steps (regime 0) up to the first one that yields an observation."""
        if getattr(self, "_structure", None) is None:  # (absent after a pytree round trip)
            self._structure = self._discover()
        return self._structure

    def _discover(self) -> tuple[str, int, dict[str, Any]]:
        last = min(self.history, self.num_steps - 1)
        shapes: dict[str, Any] = {}
        # a first pass with lenient placeholders finds the observations' names and shapes; when
        # steps before them yield only the regime, a strict pass with those shapes checks them
        for strict in (False, True):
            records: list[Values] = []
            for t in range(last + 1):
                h = self._run(self._prev(records), self._first_series_input(t), 0, None)
                if h.shapes:
                    break
                fill = {k: jnp.zeros(s.shape, s.dtype) for k, s in shapes.items()}
                record = {h.regime_name: np.int32(0), **fill}
                records.insert(0, Values(record) if strict else _Lenient(record))
                records = records[: self.history]
            if not h.shapes:
                raise ValueError(
                    f"RegimeSwitching: the step yields no observation in its first {last + 1} "
                    f"steps; after its regime it must yield the observation(s) at least from "
                    f"step history={self.history} on"
                )
            if strict and {k: (s.shape, s.dtype) for k, s in h.shapes.items()} != {
                k: (s.shape, s.dtype) for k, s in shapes.items()
            }:
                raise ValueError(
                    f"RegimeSwitching: the step's observations changed shape once earlier steps' "
                    f"observations had their shapes: {shapes} then {h.shapes}"
                )
            shapes = h.shapes
            if t == 0:
                break
        return h.regime_name, h.num_regimes, shapes

    @property
    def latent_name(self) -> str:
        """The regime's name in the step (used to report its posterior in a joint model)."""
        return self.structure()[0]

    @property
    def num_regimes(self) -> int:
        """The number ``K`` of regimes (the regime distribution's support size)."""
        return self.structure()[1]

    @property
    def num_states(self) -> int:
        """``num_regimes``: the states reported (the forward pass runs over ``K^history``)."""
        return self.structure()[1]

    @property
    def event_shape(self) -> Shape:
        _, _, shapes = self.structure()
        if len(shapes) == 1:
            return (self.num_steps,) + tuple(next(iter(shapes.values())).shape)
        raise ValueError(
            "RegimeSwitching with several observations has a mapping value; see structure()"
        )

    @property
    def support(self) -> constraints.Constraint:
        return constraints.real

    @property
    def dtype(self) -> DTypeLike:
        _, _, shapes = self.structure()
        return next(iter(shapes.values())).dtype

    def _as_observations(self, observations: Any) -> dict[str, jax.Array]:
        y = self._as_mapping(observations)
        if self.validate_args:
            _, _, shapes = self.structure()
            for name, v in y.items():
                check_missing(
                    f"RegimeSwitching: observation {name!r}", v, self.mask, len(shapes[name].shape)
                )
        return y

    def _as_mapping(self, value) -> dict[str, jax.Array]:
        _, _, shapes = self.structure()
        if isinstance(value, dict):
            if set(value) != set(shapes):
                raise ValueError(
                    f"RegimeSwitching: the observed value must have the series {list(shapes)} "
                    f"(the step's observations); got {list(value)}"
                )
            y = {k: jnp.asarray(value[k]) for k in shapes}
        elif len(shapes) == 1:
            y = {next(iter(shapes)): jnp.asarray(value)}
        else:
            raise ValueError(
                f"RegimeSwitching: the step yields several observations {list(shapes)}; the "
                f"value must be a mapping name -> [T, ...]; got {type(value).__name__}"
            )
        for k, v in y.items():
            core = (self.num_steps,) + tuple(shapes[k].shape)
            if v.ndim < len(core) or tuple(v.shape[v.ndim - len(core) :]) != core:
                raise ValueError(
                    f"RegimeSwitching: observed series {k!r} must have shape [..., T] + event = "
                    f"[..., {', '.join(map(str, core))}]; got {v.shape}"
                )
        return y

    def _value_batch(self, y: dict[str, jax.Array]) -> Shape:
        _, _, shapes = self.structure()
        leads = [v.shape[: v.ndim - 1 - len(shapes[k].shape)] for k, v in y.items()]
        return tuple(jnp.broadcast_shapes(*leads, self.batch_shape))

    # --- the forward algorithm's potentials ---------------------------------------------------
    def log_potentials(self, value: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        r"""``(log_init [S], log_trans [T-1, S, S], log_obs [T, S])`` over the ``S = K^p``
        expanded states :math:`e_t = (s_t, \dots, s_{t-p+1})` (index
        :math:`\sum_k s_{t-k} K^{p-1-k}`; before step ``p-1`` the missing regimes are 0), with a
        panel's batch dims in front.

        With :math:`\phi_0(j)` and :math:`\psi_t` of the module docstring,

        .. math::
            \text{log\_init}(e) + \text{log\_obs}[0] = \phi_0(s_0),\qquad
            \text{log\_trans}[t-1](e', e) + \text{log\_obs}[t, e] = \psi_t(e', s_t),\qquad
            \text{log\_obs}[t, e] = \max_{e'} \psi_t(e', s_t),

        where :math:`e` extends :math:`e'` (else ``log_trans`` is ``-inf``), so every
        transition entry is ``<= 0`` (``log_obs[0] = 0``; ``log_trans`` is ``[0, S, S]`` when
        ``T = 1``).  ``value`` is the observed series (an array, or a mapping
        name -> ``[..., T, ...]``).

        >>> import jax.numpy as jnp
        >>> from coromix.distributions import Categorical, Normal, RegimeSwitching
        >>> def step(prev, inputs):
        ...     s = yield Categorical(probs=jnp.array([0.5, 0.5]) if prev is None
        ...                           else jnp.array([[0.9, 0.1], [0.2, 0.8]])[prev.s])
        ...     y = yield Normal(jnp.array([0.0, 3.0])[s], 1.0)
        >>> log_init, log_trans, log_obs = RegimeSwitching(step, 4).log_potentials(jnp.zeros(4))
        >>> log_init.shape, log_trans.shape, log_obs.shape
        ((2,), (3, 2, 2), (4, 2))
        """
        terms = self._terms(self._as_mapping(value))
        return _dense_potentials(*terms, self.num_regimes, self.history)

    def _terms(self, y: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
        r"""``(log_init B + [S], psi B + [T-1, S, K])``: the first step's terms over the expanded
        states and :math:`\psi_t(e', j)` from each expanded state ``e'`` to each regime ``j``
        (``-inf`` where ``e'`` is unreachable), for the observed series ``y`` (a panel's batch
        dims ``B`` in front)."""
        batch = self._value_batch(y)
        if batch == ():
            return self._series_terms(y, self.inputs, self.mask)
        n = int(np.prod(batch, dtype=np.int64))
        _, _, shapes = self.structure()
        ys = {}
        for k, v in y.items():
            core = v.shape[v.ndim - 1 - len(shapes[k].shape) :]
            ys[k] = jnp.broadcast_to(v, batch + core).reshape((n,) + core)
        inputs, mask = self._series_inputs(batch)
        out = jax.vmap(self._series_terms)(ys, inputs, mask)
        return tuple(x.reshape(batch + x.shape[1:]) for x in out)

    def log_prob(self, value: Any) -> jax.Array:
        r"""``log p(y)`` with all regime paths summed out; one value per series of a panel.

        With ``history=1``, or the parallel-in-time kernels, the forward algorithm of
        :class:`~coromix.distributions.MarkovChain` (custom VJP); otherwise a forward filter
        over the expanded states that uses their sparsity, :math:`O(K^{p+1} T)` work
        (:func:`coromix.markov.history.history_log_likelihood`, gradient by one backward pass).

        >>> import jax.numpy as jnp
        >>> from coromix.distributions import Categorical, Normal, RegimeSwitching
        >>> def step(prev, inputs):
        ...     s = yield Categorical(probs=jnp.array([0.5, 0.5]) if not prev
        ...                           else jnp.array([[0.9, 0.1], [0.2, 0.8]])[prev[0].s])
        ...     y = yield Normal(jnp.array([0.0, 3.0])[s], 1.0)
        >>> RegimeSwitching(step, 4, history=2).log_prob(jnp.array([0.1, -0.3, 2.9, 3.2]))
        Array(-7.0481, dtype=float32)
        """
        if self.history == 1 or self._use_parallel():
            return super().log_prob(value)
        log_init, psi = self._terms(self._as_observations(value))
        batch = log_init.shape[:-1]
        fn = partial(history_log_likelihood, num_regimes=self.num_regimes)
        for _ in batch:
            fn = jax.vmap(fn)
        return fn(log_init, psi)

    def _check_regimes(self, k: int, m: int) -> None:
        regime_name, K, _ = self.structure()
        if k != K:
            raise ValueError(
                f"RegimeSwitching: the regime {regime_name!r} has {K} values at the first step "
                f"but {k} at a step with {m} previous steps; every step's regime must have the "
                f"same number of values"
            )

    def _step_terms(self, m: int, lags, obs, inp, masked, over_time: bool) -> jax.Array:
        r"""The step's log-potential :math:`\psi` after ``m`` previous steps, for every
        combination of their regimes (row :math:`\sum_k s_{t-1-k} K^{m-1-k}`) and this step's
        regime: ``[K^m, K]``, with a leading time dim when ``over_time`` (``lags``, ``obs``,
        ``inp``, ``masked`` then have one too).

        First tried as ONE run of the step vmapped over the combinations (regimes traced: fast
        to differentiate); a step that needs concrete regimes (Python ``if`` on them, NumPy
        indexing, ...) fails there and runs once per combination, with concrete regimes.
        """
        regime_name, K, _ = self.structure()
        combos = list(itertools.product(range(K), repeat=m))  # combo[k]: regime at t-1-k

        def one(combo, j, lag_rows, obs_t, inp_t, masked_t):
            prev = self._prev([Values({regime_name: combo[k], **lag_rows[k]}) for k in range(m)])
            h = self._run(prev, inp_t, j, obs_t)
            self._check_regimes(h.num_regimes, m)
            if masked_t is None:
                return h.regime_lp + h.obs_lp
            return h.regime_lp + jnp.where(masked_t, jnp.zeros_like(h.obs_lp), h.obs_lp)

        def mapped(fn):
            return jax.vmap(fn, in_axes=(None, None, 0, 0, 0, 0)) if over_time else fn

        if getattr(self, "_vectorized", None) is not False:
            try:
                f = jax.vmap(mapped(one), in_axes=(None, 0, None, None, None, None))
                f = jax.vmap(f, in_axes=(0, None, None, None, None, None))
                table = jnp.asarray(np.array(combos, np.int32).reshape(len(combos), m))
                out = f(table, jnp.arange(K, dtype=jnp.int32), lags, obs, inp, masked)
                self._vectorized = True
                return jnp.moveaxis(out, (0, 1), (-2, -1)) if over_time else out
            except _NEEDS_CONCRETE:  # the step needs concrete regimes: run it once each
                self._vectorized = False
        rows = []
        for combo in combos:
            concrete = tuple(np.int32(c) for c in combo)
            row = [mapped(one)(concrete, j, lags, obs, inp, masked) for j in range(K)]
            rows.append(jnp.stack(jnp.broadcast_arrays(*row), -1))
        return jnp.stack(rows, -2)

    def _series_terms(self, y: dict[str, jax.Array], inputs: Any, mask: Any):
        """``(log_init [S], psi [T-1, S, K])`` of one series: ``y`` name -> ``[T, ...]``, ``inputs`` leaves
        ``[T, ...]``, ``mask`` ``[T]`` or ``None``."""
        _, K, _ = self.structure()
        T, p = self.num_steps, self.history
        S, W = K**p, K ** (p - 1)
        y = _readable(y, mask)

        def at(t):
            """The lags, observation, inputs and mask of step t (sliced: time dims)."""
            if isinstance(t, slice):
                lag = [(t.start - 1 - k, T - 1 - k) for k in range(p)]
                lags = tuple({n: v[a:b] for n, v in y.items()} for a, b in lag)
            else:
                lags = tuple({n: v[t - 1 - k] for n, v in y.items()} for k in range(min(t, p)))

            def sub(x):
                return x[t]

            return (
                lags,
                {n: sub(v) for n, v in y.items()},
                None if inputs is None else jax.tree_util.tree_map(sub, inputs),
                None if mask is None else sub(mask),
            )

        phi0 = self._step_terms(0, *at(0), over_time=False)[0]  # [K]
        impossible = jnp.full((), -jnp.inf, phi0.dtype)
        # expanded state e = sum_k s_{t-k} K^(p-1-k); before step p-1 the missing regimes are 0
        log_init = jnp.concatenate(
            [phi0[:, None], jnp.broadcast_to(impossible, (K, W - 1))], 1
        ).reshape(S)
        if T == 1:
            return log_init, jnp.zeros((0, S, K), phi0.dtype)

        psi = []
        for t in range(1, min(p, T)):  # the first steps see fewer than p previous regimes
            terms = self._step_terms(t, *at(t), over_time=False).astype(phi0.dtype)
            pad = jnp.broadcast_to(impossible, (K**t, K ** (p - t) - 1, K))
            psi.append(jnp.concatenate([terms[:, None], pad], 1).reshape(1, S, K))
        if T > p:  # steps p..T-1: vmapped over time
            psi.append(self._step_terms(p, *at(slice(p, T)), over_time=True).astype(phi0.dtype))
        return log_init, jnp.concatenate(psi)  # [T-1, S, K]: from e_{t-1}, to regime s_t

    # --- posteriors of the current regime -----------------------------------------------------
    def _current(self, probs: jax.Array) -> jax.Array:
        """Probabilities over expanded states ``[..., K^p]`` summed to the current regime's."""
        K = self.num_regimes
        return jnp.sum(probs.reshape(probs.shape[:-1] + (K, K ** (self.history - 1))), -1)

    def posterior(self, observations: Any) -> MarkovPosterior:
        r"""Log-likelihood, smoothed and filtered marginals of the current regime ``B + [T, K]``
        (summed over the expanded states' older regimes), from one forward and one backward pass;
        see :meth:`MarkovChain.posterior <coromix.distributions.MarkovChain.posterior>`.

        >>> import jax.numpy as jnp
        >>> from coromix.distributions import Categorical, Normal, RegimeSwitching
        >>> def step(prev, inputs):
        ...     s = yield Categorical(probs=jnp.array([0.5, 0.5]) if not prev
        ...                           else jnp.array([[0.9, 0.1], [0.2, 0.8]])[prev[0].s])
        ...     y = yield Normal(jnp.array([0.0, 3.0])[s], 1.0)
        >>> post = RegimeSwitching(step, 4, history=3).posterior(jnp.array([0.1, -0.3, 2.9, 3.2]))
        >>> post.log_likelihood   # the same chain as the class example: history changes nothing
        Array(-7.0481, dtype=float32)
        >>> post.marginals.shape
        (4, 2)
        """
        post = super().posterior(observations)
        if self.history == 1:
            return post
        return MarkovPosterior(
            post.log_likelihood, self._current(post.marginals), self._current(post.filtered)
        )

    def posterior_mode(self, observations: Any) -> jax.Array:
        r"""Most probable regime path (Viterbi over the expanded states), ``int32 B + [T]``.

        >>> import jax.numpy as jnp
        >>> from coromix.distributions import Categorical, Normal, RegimeSwitching
        >>> def step(prev, inputs):
        ...     s = yield Categorical(probs=jnp.array([0.5, 0.5]) if not prev
        ...                           else jnp.array([[0.9, 0.1], [0.2, 0.8]])[prev[0].s])
        ...     y = yield Normal(jnp.array([0.0, 3.0])[s], 1.0)
        >>> RegimeSwitching(step, 4, history=2).posterior_mode(jnp.array([0.1, -0.3, 2.9, 3.2]))
        Array([0, 0, 1, 1], dtype=int32)
        """
        path = super().posterior_mode(observations)
        return (path // self.num_regimes ** (self.history - 1)).astype(jnp.int32)

    def posterior_sample(
        self, observations: Any, sample_shape: int | tuple[int, ...] = (), seed: Any = None
    ) -> jax.Array:
        r"""Exact draws of regime paths from :math:`p(s_{1:T}\mid y_{1:T})` (forward filtering,
        backward sampling over the expanded states), ``int32 sample_shape + B + [T]``.

        >>> import jax.numpy as jnp
        >>> from coromix.distributions import Categorical, Normal, RegimeSwitching
        >>> def step(prev, inputs):
        ...     s = yield Categorical(probs=jnp.array([0.5, 0.5]) if not prev
        ...                           else jnp.array([[0.9, 0.1], [0.2, 0.8]])[prev[0].s])
        ...     y = yield Normal(jnp.array([0.0, 30.0])[s], 1.0)
        >>> d = RegimeSwitching(step, 4, history=2)
        >>> d.posterior_sample(jnp.array([0.1, -0.3, 29.9, 30.2]), sample_shape=2, seed=0)
        Array([[0, 0, 1, 1],
               [0, 0, 1, 1]], dtype=int32)
        """
        paths = super().posterior_sample(observations, as_shape(sample_shape), seed)
        return (paths // self.num_regimes ** (self.history - 1)).astype(jnp.int32)

    # --- sampling and forecasting -------------------------------------------------------------
    def _draw(self, key, prev_regimes, prev_obs, inp):
        r"""One step drawn after ``m = len(prev_regimes)`` (traced) previous steps.

        The step runs for every combination of the previous regimes (``K^m``) and regime (one
        run vmapped over them, or one run each when the step needs concrete regimes, as in
        :meth:`_step_terms`); the drawn combination's results are selected.  Returns the regime,
        the observations and the regime log-probabilities of every combination ``[K^m, K]`` (row
        :math:`\sum_k s_{t-1-k} K^{m-1-k}`).
        """
        regime_name, K, shapes = self.structure()
        m = len(prev_regimes)
        regime_key, obs_key = jax.random.split(key)
        combos = list(itertools.product(range(K), repeat=m))

        def one(combo, j):
            prev = self._prev(
                [
                    Values({regime_name: combo[k], **{n: v[k] for n, v in prev_obs.items()}})
                    for k in range(m)
                ]
            )
            sampler = _StepSampler(j, obs_key)
            runner.run(lambda: self.step(prev, inp), sampler)
            self._check_regimes(sampler.regime_log_probs.shape[0], m)
            obs = {n: sampler.observations.get(n, _missing_like(st)) for n, st in shapes.items()}
            return sampler.regime_log_probs, obs

        log_probs, candidates = None, None
        if getattr(self, "_vectorized", None) is not False:
            try:
                f = jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))
                table = jnp.asarray(np.array(combos, np.int32).reshape(len(combos), m))
                log_probs, candidates = f(table, jnp.arange(K, dtype=jnp.int32))
                log_probs = log_probs[:, 0]  # the regime's distribution does not depend on it
                self._vectorized = True
            except _NEEDS_CONCRETE:  # the step needs concrete regimes: run it once each
                self._vectorized = False
        if log_probs is None:
            runs = [
                [one(tuple(np.int32(c) for c in combo), j) for j in range(K)] for combo in combos
            ]
            log_probs = jnp.stack([row[0][0] for row in runs])
            candidates = {
                n: jnp.stack([jnp.stack([r[1][n] for r in row]) for row in runs]) for n in shapes
            }
        e = sum(prev_regimes[k] * K ** (m - 1 - k) for k in range(m)) if m else 0
        s = jax.random.categorical(regime_key, log_probs[e]).astype(jnp.int32)
        return s, {n: v[e, s] for n, v in candidates.items()}, log_probs

    def _simulate(self, key, regimes, obs, inputs, num_steps, pi=None):
        """Draw ``num_steps`` steps after the ``history`` previous ones (``regimes`` ``[p]`` and
        ``obs`` name -> ``[p, ...]``, most recent first), with ``inputs`` leaves ``[num_steps,
        ...]``; with ``pi`` (expanded-state probabilities ``[K^p]``) also propagate them through
        the transitions evaluated along the drawn path."""
        K = self.num_regimes
        W = K ** (self.history - 1)
        possible = _possible_moves(K, self.history)

        def body(carry, xs):
            regimes, obs, pi = carry
            k, inp = xs
            s, y, log_probs = self._draw(k, regimes, obs, inp)
            regimes = jnp.concatenate([s[None], regimes[:-1]])
            obs = {n: jnp.concatenate([y[n][None], v[:-1]]) for n, v in obs.items()}
            if pi is not None:
                A = jnp.where(possible, _to_expanded(jnp.exp(log_probs), W), 0.0)
                pi = pi @ A.astype(pi.dtype)
            out = (s, y) if pi is None else (s, y, self._current(pi))
            return (regimes, obs, pi), out

        keys = jax.random.split(key, num_steps)
        return jax.lax.scan(body, (regimes, obs, pi), (keys, inputs))[1]

    def _sample(self, key, shape):
        batch = self.batch_shape
        if shape == () and batch == ():
            return self._sample_path(key, self.inputs)[0]
        n = int(np.prod(shape, dtype=np.int64))
        inputs, _ = self._series_inputs(batch)
        if batch != shape:  # sample dims in front of the panel's: repeat the panel's inputs
            reps = n // int(np.prod(batch, dtype=np.int64))
            inputs = jax.tree_util.tree_map(
                lambda x: jnp.tile(x, (reps,) + (1,) * (x.ndim - 1)), inputs
            )
        draws = jax.vmap(lambda k, inp: self._sample_path(k, inp)[0])(
            jax.random.split(key, n), inputs
        )
        return jax.tree_util.tree_map(lambda x: x.reshape(shape + x.shape[1:]), draws)

    def sample_with_regimes(self, seed: Any = None) -> tuple[Any, jax.Array]:
        """One series and its regime path ``int32 [T]`` (no panels).

        Steps that yield only their regime model no observation: their rows are NaN (0 for
        integer series), and so is what reads them; :meth:`forecast` continues observed data.
        """
        if self.batch_shape != ():
            raise ValueError(
                f"RegimeSwitching.sample_with_regimes draws one series; this panel has batch "
                f"shape {self.batch_shape} (use sample)"
            )
        return self._sample_path(as_key(seed), self.inputs)

    def _sample_path(self, key, inputs):
        _, _, shapes = self.structure()
        T, p = self.num_steps, self.history
        keys = jax.random.split(key, 2)
        start = jax.random.split(keys[0], min(p, T))

        def inp(t):
            return None if inputs is None else jax.tree_util.tree_map(lambda x: x[t], inputs)

        regimes, obs = [], {n: [] for n in shapes}  # most recent first
        for t in range(min(p, T)):
            stacked = {n: jnp.stack(v) if v else None for n, v in obs.items()}
            s, y, _ = self._draw(start[t], regimes, stacked, inp(t))
            regimes.insert(0, s)
            for n in shapes:
                obs[n].insert(0, y[n])
        series_s = regimes[::-1]
        series_y = {n: v[::-1] for n, v in obs.items()}
        series_s = jnp.stack(series_s)
        series_y = {n: jnp.stack(v) for n, v in series_y.items()}
        if T > p:
            rest = None if inputs is None else jax.tree_util.tree_map(lambda x: x[p:], inputs)
            ss, ys = self._simulate(
                keys[1], jnp.stack(regimes), {n: jnp.stack(v) for n, v in obs.items()}, rest, T - p
            )
            series_s = jnp.concatenate([series_s, ss])
            series_y = {n: jnp.concatenate([series_y[n], ys[n]]) for n in shapes}
        value = next(iter(series_y.values())) if len(shapes) == 1 else series_y
        return value, series_s.astype(jnp.int32)

    def forecast(
        self, value: Any, num_steps: int, inputs: Any = None, seed: Any = None
    ) -> Forecast:
        r"""One forecast path of ``num_steps = h`` steps after the observed series ``value``.

        The expanded state at the last step :math:`e_T = (s_T, \dots, s_{T-p+1})` is drawn from
        its filtered distribution :math:`\hat\alpha_T`, then the step itself runs forward
        (regime, then observations; AR terms read the observed and then the drawn values,
        ``inputs`` are the future steps' covariates).  ``probs`` propagates
        :math:`\pi_0 = \hat\alpha_T` through the transitions evaluated along the drawn path,
        :math:`\pi_j = \pi_{j-1} A_j` with :math:`A_j(e', e) = p(s_{T+j} = s(e)\mid e',
        y_{\text{drawn}})`, and reports the current regime's marginal; when the transitions do not
        depend on the observations this is the exact :math:`p(s_{T+j}\mid y_{1:T})`.

        Args:
          value: the observed series (one series; ``mask`` applies as in ``log_prob``).
          num_steps: the horizon ``h >= 1``.
          inputs: the future steps' inputs, leaves ``[h, ...]``; required when the distribution
            has ``inputs``.
          seed: an int or a JAX PRNG key (``jax.vmap`` over keys and parameters works).

        Returns:
          A :class:`~coromix.distributions.Forecast` (``probs [h, K]``, ``regimes int32 [h]``,
          ``observations [h, ...]`` or a mapping name -> ``[h, ...]``).

        >>> import jax.numpy as jnp
        >>> from coromix.distributions import Categorical, Normal, RegimeSwitching
        >>> P = jnp.array([[0.9, 0.1], [0.2, 0.8]])
        >>> def step(prev, inputs):
        ...     s = yield Categorical(probs=jnp.array([0.5, 0.5]) if prev is None else P[prev.s])
        ...     ar = 0.0 if prev is None else 0.5 * prev.y
        ...     y = yield Normal(jnp.array([0.0, 30.0])[s] + ar, 1.0)
        >>> f = RegimeSwitching(step, 3).forecast(jnp.array([0.1, 30.2, 44.8]), 2, seed=0)
        >>> [[round(float(p), 4) for p in row] for row in f.probs]  # s_T = 1: P[1], P[1] @ P
        [[0.2, 0.8], [0.34, 0.66]]
        >>> f.regimes.shape, f.observations.shape
        ((2,), (2,))
        """
        _, K, shapes = self.structure()
        T, p, h = self.num_steps, self.history, int(num_steps)
        if h < 1:
            raise ValueError(f"RegimeSwitching.forecast: num_steps must be >= 1; got {num_steps}")
        if T < p:
            raise ValueError(
                f"RegimeSwitching.forecast needs at least history={p} observed steps; num_steps={T}"
            )
        if self.inputs is not None and inputs is None:
            raise ValueError(
                f"RegimeSwitching.forecast: the step reads inputs (the distribution was given "
                f"inputs=); pass inputs= for the {h} future steps (leading dim num_steps={h})"
            )
        if self.inputs is None and inputs is not None:
            raise ValueError(
                "RegimeSwitching.forecast: inputs= given, but the distribution has no inputs "
                "(its step receives None)"
            )
        if inputs is not None:
            for leaf in jax.tree_util.tree_leaves(inputs):
                if jnp.shape(leaf)[:1] != (h,):
                    raise ValueError(
                        f"RegimeSwitching.forecast: inputs must have leading dim num_steps={h}"
                        f" (one row per future step); got shape {jnp.shape(leaf)}"
                    )
        y = self._as_observations(value)
        if self._value_batch(y) != ():
            raise ValueError(
                f"RegimeSwitching.forecast continues one series; got a panel of batch shape "
                f"{self._value_batch(y)} (use jax.vmap over series)"
            )
        alpha = MarkovChain.posterior(self, y).filtered[-1]  # over the expanded states
        first, rest = jax.random.split(as_key(seed))
        logits = jnp.where(alpha > 0, jnp.log(jnp.where(alpha > 0, alpha, 1.0)), -jnp.inf)
        e = jax.random.categorical(first, logits)
        regimes = jnp.stack([(e // K ** (p - 1 - k)) % K for k in range(p)]).astype(jnp.int32)
        y = _readable(y, self.mask)
        obs = {n: jnp.stack([v[T - 1 - k] for k in range(p)]) for n, v in y.items()}
        s, draws, probs = self._simulate(rest, regimes, obs, inputs, h, pi=alpha)
        observations = next(iter(draws.values())) if len(shapes) == 1 else draws
        return Forecast(probs, s.astype(jnp.int32), observations)

    def expected_durations(self, value: Any) -> jax.Array:
        r"""Expected duration of each regime implied by each step's transitions, ``[T-1, K]``.

        Row ``t-1`` is :math:`1 / (1 - p(s_t = i\mid s_{t-1} = i, \dots))` for the move into step
        ``t``, the previous observations taken from ``value`` (with ``history > 1`` all the
        earlier regimes in ``prev`` are ``i`` too).  For time-invariant transitions every row is
        the usual :math:`1/(1 - p_{ii})`.

        >>> import jax.numpy as jnp
        >>> from coromix.distributions import Categorical, Normal, RegimeSwitching
        >>> def step(prev, inputs):
        ...     s = yield Categorical(probs=jnp.array([0.5, 0.5]) if prev is None
        ...                           else jnp.array([[0.9, 0.1], [0.2, 0.8]])[prev.s])
        ...     y = yield Normal(jnp.array([0.0, 3.0])[s], 1.0)
        >>> RegimeSwitching(step, 3).expected_durations(jnp.zeros(3)).round(3).tolist()
        [[10.0, 5.0], [10.0, 5.0]]
        """
        regime_name, K, _ = self.structure()
        T, p = self.num_steps, self.history
        if T < 2:
            raise ValueError("RegimeSwitching.expected_durations needs num_steps >= 2")
        y = self._as_observations(value)
        if self._value_batch(y) != ():
            raise ValueError(
                f"RegimeSwitching.expected_durations takes one series; got batch shape "
                f"{self._value_batch(y)}"
            )
        y, inputs = _readable(y, self.mask), self.inputs

        def stay(i, lag_rows, obs, inp):
            prev = self._prev([Values({regime_name: np.int32(i), **r}) for r in lag_rows])
            handler = _StepSampler(i, jax.random.key(0), observed=obs)
            runner.run(lambda: self.step(prev, inp), handler)
            return jnp.exp(handler.regime_log_probs[i])

        def at(t):
            rows = [{k: v[t - 1 - i] for k, v in y.items()} for i in range(min(t, p))]
            inp = None if inputs is None else jax.tree_util.tree_map(lambda x: x[t], inputs)
            return rows, {k: v[t] for k, v in y.items()}, inp

        out = [jnp.stack([stay(i, *at(t)) for i in range(K)])[None] for t in range(1, min(p, T))]
        if T > p:  # steps p..T-1 vmapped over time
            lags = tuple({k: v[p - 1 - i : T - 1 - i] for k, v in y.items()} for i in range(p))
            now = {k: v[p:] for k, v in y.items()}
            rest = None if inputs is None else jax.tree_util.tree_map(lambda x: x[p:], inputs)
            block = jnp.stack(
                [
                    jnp.broadcast_to(
                        jax.vmap(lambda lag, obs, inp, i=i: stay(i, lag, obs, inp))(
                            lags, now, rest
                        ),
                        (T - p,),
                    )
                    for i in range(K)
                ],
                -1,
            )
            out = out + [block]
        return 1.0 / (1.0 - jnp.concatenate(out))
