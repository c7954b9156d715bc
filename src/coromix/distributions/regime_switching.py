"""`RegimeSwitching`: a Markov-switching series written as ONE step of a coroutine.

The step is a generator function ``step(prev, inputs)`` describing one time step: it first yields the
regime (a scalar finite discrete distribution, e.g. ``Categorical``), then the observation
distribution(s).  ``prev`` is ``None`` at the first step and otherwise the previous step's values
(``prev.<regime name>``, ``prev.<observation name>``); ``inputs`` is this step's row of ``inputs``
(covariates), or ``None``.  Regimes are concrete integers on every run, so Python ``if`` on them is
legal, as in :class:`~coromix.distributions.JointDistributionCoroutine`.

The regimes are summed out by the forward algorithm.  With ``s_t`` the regime and ``y_t`` the
observations::

    log p(y) = log sum_s exp( phi_0(s_0) + sum_{t>=1} psi_t(s_{t-1}, s_t) )
    phi_0(j)     = log p(s_0 = j | inputs_0) + log p(y_0 | s_0 = j, inputs_0)
    psi_t(i, j)  = log p(s_t = j | s_{t-1} = i, y_{t-1}, inputs_t)
                   + log p(y_t | s_t = j, s_{t-1} = i, y_{t-1}, inputs_t)

``psi`` is computed for all ``t`` at once (the step is vmapped over time, once per pair ``(i, j)``),
so the work is ``O(K^2 T)`` and vectorized.  This expresses Markov-switching means and
autoregressions (Hamilton), switching driven by covariates, and selection probabilities that depend
on the previous observation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from coromix import constraints, runner
from coromix.distributions.distribution import Distribution, is_scalar_choice
from coromix.distributions.markov_chain import MarkovChain
from coromix.runner import Values
from coromix.utils import Shape, as_key


class _StepScorer:
    """Handler for one step run: regime fixed to a concrete value, observations given."""

    def __init__(self, regime: int, observed: dict[str, Any] | None):
        self.regime, self.observed = regime, observed
        self.log_prob = 0.0
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
            value = support[self.regime]
            self.log_prob = self.log_prob + dist.log_prob(value)
            return value
        if dist.is_factor:  # a term of this step, not an observation
            self.log_prob = self.log_prob + jnp.sum(dist.log_prob(None))
            return jnp.zeros(dist.batch_shape, dist.dtype)
        if is_scalar_choice(dist) and self.observed is not None and name not in self.observed:
            raise ValueError(
                f"RegimeSwitching: only one regime per step; {name!r} is a second discrete choice"
            )
        self.names.append(name)
        if self.observed is None:  # structure discovery: draw a placeholder of the right shape
            value = jnp.zeros(tuple(dist.batch_shape) + tuple(dist.event_shape), dist.dtype)
        else:
            if name not in self.observed:
                raise ValueError(
                    f"RegimeSwitching: no observed series for {name!r}; the step "
                    f"yields {self.names}"
                )
            value = self.observed[name]
            self.log_prob = self.log_prob + jnp.sum(dist.log_prob(value))
        self.shapes[name] = jax.ShapeDtypeStruct(jnp.shape(value), jnp.result_type(value))
        return value


class RegimeSwitching(MarkovChain):
    r"""A Markov-switching series given by one step; see the module docstring for the semantics.

    Args:
      step: generator function ``step(prev, inputs)`` yielding the regime, then the observations.
      num_steps: the series length ``T``.
      inputs: optional array (or pytree of arrays) with leading dim ``T``: covariates per step.
      parallel: ``None`` (default) = :func:`coromix.markov.default_parallel`; ``True``/``False``
        force the parallel-in-time or the sequential kernels (see
        :func:`coromix.markov.forward_log_likelihood`).

    The value is the observed series: an array ``[T, ...]`` when the step yields one observation,
    else a mapping name -> ``[T, ...]``.

    A :class:`~coromix.distributions.MarkovChain` whose hidden chain is the regime
    (``latent_name`` = the regime's name in the step, ``num_states`` = its number of values ``K``)
    and whose pairwise potentials :math:`\psi_t(i, j)` go into a time-varying ``log_trans``
    (:meth:`log_potentials`): ``log_prob``, ``posterior``, ``posterior_marginals`` (a
    ``Categorical`` with ``probs`` ``[T, K]``), ``posterior_mode`` (``int32 [T]``) and
    ``posterior_sample`` come from there.  Unlike a
    :class:`~coromix.distributions.HiddenMarkovModel` its batch shape is ``()``; the step runs
    eagerly (once per pair of regimes, vmapped over time), not under a jit of its own.

    Hamilton's Markov-switching AR(1) reads::

        def step(prev, inputs):
            s = yield tfd.Categorical(probs=p0 if prev is None else P[prev.s])
            mean = mu[s] if prev is None else mu[s] + phi * (prev.y - mu[prev.s])
            y = yield tfd.Normal(mean, sigma)

        y = yield tfd.RegimeSwitching(step, num_steps=len(data))

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
    """

    parameter_names = ("inputs",)
    static_names = ("step", "num_steps", "parallel")
    time_varying_transition: ClassVar[bool] = True  # psi_t(i, j) differs per step
    _jit_methods: ClassVar[bool] = False  # the user's step runs eagerly, K^2 vmapped runs

    def __init__(
        self,
        step: Callable[..., Any],
        num_steps: int,
        inputs: Any = None,
        *,
        parallel: bool | None = None,
        validate_args: bool = True,
        name: str | None = None,
    ):
        if not callable(step):
            raise TypeError(f"RegimeSwitching needs a step generator function; got {step!r}")
        self.step, self.num_steps, self.parallel = step, int(num_steps), parallel
        if self.num_steps < 1:
            raise ValueError(f"RegimeSwitching: num_steps must be >= 1; got {num_steps}")
        self.inputs = inputs
        if inputs is not None:
            for leaf in jax.tree_util.tree_leaves(inputs):
                if jnp.shape(leaf)[:1] != (self.num_steps,):
                    raise ValueError(
                        f"RegimeSwitching: inputs must have leading dim num_steps="
                        f"{self.num_steps}; got shape {jnp.shape(leaf)}"
                    )
        self._init_common(name, validate_args)
        self._structure = None

    # --- structure of one step ----------------------------------------------------------------
    def _input(self, t):
        if self.inputs is None:
            return None
        return jax.tree_util.tree_map(lambda x: x[t], self.inputs)

    def _run(self, prev, inputs, regime: int, observed):
        handler = _StepScorer(regime, observed)
        runner.run(lambda: self.step(prev, inputs), handler)
        return handler

    def structure(self) -> tuple[str, int, dict[str, Any]]:
        """(regime name, number of regimes K, observation shapes) found by a run of the first step."""
        if getattr(self, "_structure", None) is None:  # (absent after a pytree round trip)
            h = self._run(None, self._input(0), 0, None)
            self._structure = (h.regime_name, h.num_regimes, h.shapes)
        return self._structure

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
        """``num_regimes``, under the :class:`~coromix.distributions.MarkovChain` name."""
        return self.structure()[1]

    @property
    def batch_shape(self) -> Shape:
        return ()

    @property
    def event_shape(self) -> Shape:
        _, _, shapes = self.structure()
        if len(shapes) == 1:
            return (self.num_steps,) + tuple(next(iter(shapes.values())).shape)
        raise ValueError(
            "RegimeSwitching with several observations has a mapping value; see observation_shapes"
        )

    @property
    def support(self) -> constraints.Constraint:
        return constraints.real

    @property
    def dtype(self) -> DTypeLike:
        _, _, shapes = self.structure()
        return next(iter(shapes.values())).dtype

    def _as_observations(self, observations: Any) -> dict[str, jax.Array]:
        return self._as_mapping(observations)

    def _as_mapping(self, value) -> dict[str, jax.Array]:
        _, _, shapes = self.structure()
        if isinstance(value, dict):
            return {k: jnp.asarray(v) for k, v in value.items()}
        (name,) = shapes
        return {name: jnp.asarray(value)}

    # --- the forward algorithm's potentials ---------------------------------------------------
    def log_potentials(self, value: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
        r"""``(log_init [K], log_trans [T-1, K, K], log_obs [T, K])`` for the forward algorithm.

        With :math:`\phi_0(j)` and :math:`\psi_t(i, j)` of the module docstring,

        .. math::
            \text{log\_init} + \text{log\_obs}[0] = \phi_0,\qquad
            \text{log\_trans}[t-1] + \text{log\_obs}[t][\text{None}] = \psi_t,\qquad
            \text{log\_obs}[t, j] = \max_i \psi_t(i, j),

        so every transition entry is ``<= 0`` (``log_obs[0] = 0``; ``log_trans`` is
        ``[0, K, K]`` when ``T = 1``).  ``value`` is the observed series (an array, or a mapping
        name -> ``[T, ...]``).

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
        regime_name, K, _ = self.structure()
        y = self._as_mapping(value)
        first = {k: v[0] for k, v in y.items()}
        phi0 = jnp.stack([self._run(None, self._input(0), j, first).log_prob for j in range(K)])
        T = self.num_steps
        if T == 1:
            return phi0, jnp.zeros((0, K, K), phi0.dtype), jnp.zeros((1, K), phi0.dtype)
        prev_y = {k: v[:-1] for k, v in y.items()}
        this_y = {k: v[1:] for k, v in y.items()}
        inputs = (
            None if self.inputs is None else jax.tree_util.tree_map(lambda x: x[1:], self.inputs)
        )

        def pair(i, j):
            def one(prev_obs, obs, inp):
                prev = Values({regime_name: np.int32(i), **prev_obs})
                return self._run(prev, inp, j, obs).log_prob

            return jax.vmap(one)(prev_y, this_y, inputs)

        psi = jnp.stack([jnp.stack([pair(i, j) for j in range(K)], -1) for i in range(K)], -2)
        psi = jnp.broadcast_to(psi, (T - 1, K, K))
        best = jnp.max(psi, axis=-2)
        best = jnp.where(jnp.isfinite(best), best, 0.0)
        log_obs = jnp.concatenate([jnp.zeros((1, K), psi.dtype), best], 0)
        return phi0, psi - best[:, None, :], log_obs

    # --- sampling -----------------------------------------------------------------------------
    def _sample(self, key, shape):
        if shape != ():
            n = int(np.prod(shape))
            draws = jax.vmap(lambda k: self._sample_path(k)[0])(jax.random.split(key, n))
            return jax.tree_util.tree_map(lambda x: x.reshape(shape + x.shape[1:]), draws)
        return self._sample_path(key)[0]

    def sample_with_regimes(self, seed: Any = None) -> tuple[Any, jax.Array]:
        """One series and its regime path ``int32 [T]``."""
        return self._sample_path(as_key(seed))

    def _sample_path(self, key):
        regime_name, K, shapes = self.structure()
        single = len(shapes) == 1

        def draw_step(key, prev, inp):
            """Run the step for each (previous regime i, regime j); select the drawn ones."""
            regime_key, obs_key = jax.random.split(key)
            prev_regime = None if prev is None else prev[regime_name]
            candidates_s, candidates_y = [], []
            for i in range(1 if prev is None else K):
                prev_i = None if prev is None else Values({**prev, regime_name: np.int32(i)})
                row = []
                for j in range(K):
                    sampler = _StepSampler(j, regime_key, obs_key)
                    runner.run(lambda prev_i=prev_i: self.step(prev_i, inp), sampler)
                    row.append(sampler.observations)
                candidates_s.append(sampler.regime_draw)
                candidates_y.append(row)
            i_sel = 0 if prev is None else prev_regime
            s = jnp.stack(candidates_s)[i_sel]
            obs = {
                name: jnp.stack(
                    [jnp.stack([row[j][name] for j in range(K)]) for row in candidates_y]
                )[i_sel, s]
                for name in shapes
            }
            return s, obs

        key0, key_rest = jax.random.split(key)
        s0, y0 = draw_step(key0, None, self._input(0))
        if self.num_steps == 1:
            series = {k: v[None] for k, v in y0.items()}
            regimes = s0[None]
        else:
            inputs = (
                None
                if self.inputs is None
                else jax.tree_util.tree_map(lambda x: x[1:], self.inputs)
            )

            def body(carry, xs):
                k, inp = xs
                s, y = draw_step(k, carry, inp)
                return {regime_name: s, **y}, (s, y)

            init = {regime_name: s0, **y0}
            _, (ss, ys) = jax.lax.scan(
                body, init, (jax.random.split(key_rest, self.num_steps - 1), inputs)
            )
            series = {k: jnp.concatenate([y0[k][None], ys[k]]) for k in shapes}
            regimes = jnp.concatenate([s0[None], ss])
        value = next(iter(series.values())) if single else series
        return value, regimes.astype(jnp.int32)


class _StepSampler:
    """Handler for sampling one step with the regime fixed to ``j``; records the regime draw."""

    def __init__(self, regime: int, regime_key, obs_key):
        self.regime, self.regime_key, self.obs_key = regime, regime_key, obs_key
        self.regime_draw = None
        self.observations: dict[str, jax.Array] = {}

    def __call__(self, name: str, dist: Distribution):
        if self.regime_draw is None:
            self.regime_draw = dist.sample(seed=self.regime_key).astype(jnp.int32)
            return np.asarray(dist.enumerate_support())[self.regime]
        if dist.is_factor:  # sampling ignores factors
            return jnp.zeros(dist.batch_shape, dist.dtype)
        value = dist.sample(seed=jax.random.fold_in(self.obs_key, len(self.observations)))
        self.observations[name] = value
        return value
