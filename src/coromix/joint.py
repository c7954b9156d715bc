"""`JointDistributionCoroutine`: a joint distribution written as a generator describing one draw.

The public face of a model.  Every operation runs the model through the scoring core
(:mod:`coromix.scoring`), one draw at a time, vectorized over leading batch dims of the values:

* ``sample``: ancestral draws; scalar choices the model branches on follow their own paths.
* ``log_prob`` / ``pin(...)``: the log density of the given values, every free finite discrete
  variable summed out exactly.
* ``discrete_posterior`` / ``sample_discrete`` / ``discrete_mode``: the posterior of the choices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from coromix import enumerate as enum
from coromix import runner, scoring
from coromix.pinned import PinnedModel
from coromix.runner import Values
from coromix.utils import as_key, as_shape


class JointDistributionCoroutine:
    """A joint distribution written as a generator function that describes ONE draw.

    ``model`` takes no arguments (close over data and sizes) and yields distributions; each yield
    returns the variable's value.  Variables are named after their assignment target, or ``name=``.

    Finite discrete variables that are not given are summed out exactly (see
    :mod:`coromix.scoring`): scalar choices along a tensor dim in one vectorized run (or one run
    per value when the model branches on them with Python ``if``, found automatically),
    batch-shaped choices element by element.  At most ``max_paths`` combinations of scalar choices
    are allowed.

    Example::

        def model():
            z = yield tfd.Categorical(probs=[0.6, 0.4])
            mu = yield tfd.Normal(0.0, 5.0)
            x = yield tfd.Normal(mu if z == 0 else mu + 3.0, 1.0)

        jd = tfd.JointDistributionCoroutine(model)
        draws = jd.sample(1000, seed=0)       # draws.z, draws.mu, draws.x: shape (1000,)
        jd.log_prob(mu=0.3, x=1.2)            # log p(mu, x) = log sum_z p(z, mu, x)
    """

    Root = staticmethod(runner.root)

    def __init__(
        self,
        model: Callable[[], Any],
        *,
        max_paths: int = enum.DEFAULT_MAX_PATHS,
        name: str | None = None,
    ):
        if not callable(model):
            raise TypeError(
                f"JointDistributionCoroutine needs a generator function; got {type(model).__name__}"
            )
        self.model = model
        self.max_paths = int(max_paths)
        self.name = name or getattr(model, "__name__", "model")
        self._shapes: dict[str, jax.ShapeDtypeStruct] | None = None
        self._compiled: dict[Any, Callable | None] = {}

    def __repr__(self) -> str:
        return f"JointDistributionCoroutine({self.name})"

    # --- running the model ------------------------------------------------------------------
    def _sample_one(self, key: jax.Array, given: Mapping[str, Any]) -> Values:
        return scoring.sample(self.model, key, given, self.max_paths)

    def sample(
        self,
        sample_shape: int | tuple[int, ...] = (),
        seed: Any = None,
        value: Mapping[str, Any] | None = None,
    ) -> Values:
        """Ancestral draws: name -> array of shape ``sample_shape + variable shape``, in model order.

        ``seed`` is an int or a JAX key (``None``: fresh entropy).  ``value`` fixes some variables
        (the others are drawn given them).
        """
        shape = as_shape(sample_shape)
        if value:
            unknown = [k for k in value if k not in self.event_shapes()]
            if unknown:
                raise ValueError(
                    f"sample(value=...): no variable named {unknown} in model "
                    f"{self.name!r}; its variables are {self.variable_names}"
                )
        given = {k: jnp.asarray(v) for k, v in (value or {}).items()}
        n = int(np.prod(shape)) if shape else 1

        def sample(key, given):
            draws = jax.vmap(lambda k: self._sample_one(k, given))(jax.random.split(key, n))
            return Values((k, v.reshape(shape + v.shape[1:])) for k, v in draws.items())

        return self._call(("sample", shape), sample, as_key(seed), given)

    def _call(self, key: Any, fn: Callable, *args: Any) -> Any:
        """Run ``fn`` eagerly the first time, compiled (``jax.jit``) from the second time on.

        A model built for one call (e.g. inside a Python loop) then costs no compilation, its
        parameter checks see concrete values, and repeated calls run compiled.
        """
        if key not in self._compiled:
            self._compiled[key] = None
            return fn(*args)
        if self._compiled[key] is None:
            self._compiled[key] = jax.jit(fn)
        return self._compiled[key](*args)

    # --- shapes -----------------------------------------------------------------------------
    def event_shapes(self) -> dict[str, jax.ShapeDtypeStruct]:
        """Shape and dtype of each variable in one draw, in model order (found by an abstract run)."""
        if self._shapes is None:
            # Values (not dict) keeps model order through the pytree round trip
            self._shapes = jax.eval_shape(lambda k: self._sample_one(k, {}), jax.random.key(0))
        return self._shapes

    @property
    def variable_names(self) -> list[str]:
        return list(self.event_shapes())

    def _batched(
        self, fn: Callable[..., Any], values: Mapping[str, Any], key: jax.Array | None = None
    ) -> Any:
        return scoring.batched(self.event_shapes(), fn, values, key)

    # --- densities --------------------------------------------------------------------------
    def _log_prob_one(self, values: Mapping[str, Any]) -> jax.Array:
        return scoring.log_density(self.model, values, None, self.max_paths)

    def log_prob(self, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> jax.Array:
        """Log density of the given values; finite discrete variables left out are summed out.

        ``log p(x) = log sum_z p(x, z)`` over the discrete variables ``z`` not given.  Values may
        carry leading batch dims (e.g. from ``sample(100)``), giving a result of that batch shape.
        """
        return self._call(
            "log_prob", lambda v: self._batched(self._log_prob_one, v), {**(values or {}), **kwargs}
        )

    def pointwise_log_likelihood(
        self, values: Mapping[str, Any], observed: Sequence[str]
    ) -> Values:
        """Log-likelihood of the observed variables per observation, for LOO and WAIC.

        ``values`` gives every continuous variable (and the observed ones); the free discrete
        variables are summed out.  For an observed variable that does not depend on them, the
        result is its log density per element (its batch shape).  Observed variables in a plate
        of summed-out choices give, per plate element ``s`` (with ``theta`` the continuous values)::

            log p(y_s | theta) = log sum_k p(z_s = k, theta_s, y_s | theta) - log sum_k p(z_s = k, theta_s | theta)

        under the name of the variable (names joined by ``+`` when several observed variables share
        the plate: given ``theta`` they are dependent through ``z``).  A chain of regimes
        (``HiddenMarkovModel``, ``RegimeSwitching``) gives one number per series, ``log p(y_{1:T} |
        theta)``.  A model that branches on a scalar choice makes all observations dependent: the
        result is then the log-likelihood of all of them together, ``log p(y | theta)``, shape
        ``()``.  Leading batch dims of the values (posterior draws) are kept.

        Example::

            ll = jd.pointwise_log_likelihood({**draws, "y": data}, observed=["y"])  # ll["y"]: (draws, N)
        """
        observed = list(observed)
        unknown = [n for n in observed if n not in self.event_shapes()]
        if unknown:
            raise ValueError(
                f"observed={unknown}: no such variable in the model; its variables "
                f"are {self.variable_names}"
            )
        missing = [n for n in observed if n not in values]
        if missing:
            raise ValueError(f"the log-likelihood of {missing} needs their observed values")
        return self._call(
            ("pointwise_log_likelihood", tuple(observed)),
            lambda v: self._batched(
                lambda one: scoring.pointwise_log_likelihood(
                    self.model, one, observed, self.max_paths
                ),
                v,
            ),
            dict(values),
        )

    def pin(self, values: Mapping[str, Any] | None = None, /, **observed: Any) -> PinnedModel:
        """Condition on observed values: the unnormalized posterior over the remaining variables."""
        return PinnedModel(self, {**(values or {}), **observed})

    def discrete_posterior(
        self, values: Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> Values:
        """Exact ``p(discrete variable | all given values)`` for each discrete variable not given.

        Scalar choices get probabilities over their support, shape ``(K,)``; batch-shaped choices
        get per-element responsibilities, shape ``S + (K,)``.  Values may carry leading batch dims
        (e.g. posterior draws); the result then has them too.
        """
        return self._call(
            "discrete_posterior",
            lambda v: self._batched(self._discrete_posterior_one, v),
            {**(values or {}), **kwargs},
        )

    def sample_discrete(
        self, values: Mapping[str, Any] | None = None, /, seed: Any = None, **kwargs: Any
    ) -> Values:
        """One draw of the discrete variables not given from ``p(discrete | given values)``.

        Exact and joint: the path of scalar choices is drawn from its posterior weight, then the
        batch-shaped choices element by element given that path.  Leading batch dims of the values
        (e.g. posterior draws) give one independent draw per batch member.
        """
        return self._call(
            "sample_discrete",
            lambda v, k: self._batched(self._sample_discrete_one, v, k),
            {**(values or {}), **kwargs},
            as_key(seed),
        )

    def discrete_mode(self, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Values:
        """The most probable values of the discrete variables not given (Viterbi for chains).

        The path of scalar choices with the highest posterior probability; given it, the jointly
        most probable value of the batch-shaped choices per element, and the most probable state
        path of each chain of regimes (the Viterbi algorithm, ``K^2 T`` work), named
        ``{variable}_{latent name}`` as in :meth:`discrete_posterior`.  Leading batch dims of the
        values give one mode per batch member.

        Example::

            jd.discrete_mode(mu=mu, y=data)["z"]      # the most probable component of each point
        """
        return self._call(
            "discrete_mode",
            lambda v: self._batched(lambda one: self._sample_discrete_one(one, None), v),
            {**(values or {}), **kwargs},
        )

    def _sample_discrete_one(self, values: Mapping[str, Any], key: jax.Array | None) -> Values:
        return scoring.sample_discrete(self.model, values, key, self.max_paths)

    def _discrete_posterior_one(self, values: Mapping[str, Any]) -> Values:
        return scoring.discrete_posterior(self.model, values, self.max_paths)
