"""`JointDistributionCoroutine`: a joint distribution written as a generator describing one draw.

The public face of a model.  Every operation runs the model through the scoring core
(:mod:`coromix.scoring`), one draw at a time, vectorized over leading batch dims of the values:

* ``sample``: ancestral draws; scalar choices the model branches on follow their own paths.
* ``log_prob`` / ``pin(...)``: the log density of the given values, every free finite discrete
  variable summed out exactly.
* ``discrete_posterior`` / ``sample_discrete`` / ``discrete_mode``: the posterior of the choices.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from coromix import enumerate as enum
from coromix import runner, scoring
from coromix.pinned import PinnedModel
from coromix.runner import Values
from coromix.utils import as_key, as_shape, is_concrete

# ``JointDistributionCoroutine._call``: a method whose model needs concrete values runs eagerly.
_EAGER = object()


def _has_nan(tree: Any) -> bool:
    """A NaN among the concrete floating-point leaves of ``tree``."""
    for leaf in jax.tree_util.tree_leaves(tree):
        # NumPy, not jax.numpy: under an outer trace jnp would stage even a concrete leaf
        if not is_concrete(leaf) or not hasattr(leaf, "dtype"):
            continue
        if jax.dtypes.issubdtype(leaf.dtype, np.inexact) and np.isnan(np.asarray(leaf)).any():
            return True
    return False


def _all_finite(tree: Any) -> bool:
    """No NaN or infinity among the floating-point leaves of ``tree`` (traced leaves, under an
    outer transformation, cannot be looked at and count as finite)."""
    for leaf in jax.tree_util.tree_leaves(tree):
        if not is_concrete(leaf) or not hasattr(leaf, "dtype"):
            continue
        if (
            jax.dtypes.issubdtype(leaf.dtype, np.inexact)
            and not np.isfinite(np.asarray(leaf)).all()
        ):
            return False
    return True


class JointDistributionCoroutine:
    """A joint distribution written as a generator function that describes ONE draw.

    ``model`` takes no arguments (close over data and sizes) and yields distributions; each yield
    returns the variable's value.  Variables are named after their assignment target, or ``name=``.

    Finite discrete variables that are not given are summed out exactly (see
    :mod:`coromix.scoring`): scalar choices along a tensor dim in one vectorized run (or one run
    per value when the model branches on them with Python ``if``, found automatically),
    batch-shaped choices element by element.  At most ``max_paths`` combinations of scalar choices
    are allowed.

    Example: a model that branches on a choice with Python ``if``.

    >>> import coromix.distributions as tfd
    >>> def model():
    ...     z = yield tfd.Categorical(probs=[0.6, 0.4])
    ...     mu = yield tfd.Normal(0.0, 5.0)
    ...     x = yield tfd.Normal(mu if z == 0 else mu + 3.0, 1.0)
    >>> jd = tfd.JointDistributionCoroutine(model)
    >>> draws = jd.sample(1000, seed=0)
    >>> draws
    Values(z: int32[1000], mu: float32[1000], x: float32[1000])
    >>> bool(abs(draws.z.mean() - 0.4) < 0.05)           # P(z = 1) = 0.4
    True
    >>> jd.log_prob(mu=0.3, x=1.2)                       # log p(mu, x) = log sum_z p(z, mu, x)
    Array(-4.2604, dtype=float32)

    The same number in closed form, ``N(mu; 0, 5) (0.6 N(x; mu, 1) + 0.4 N(x; mu + 3, 1))``:

    >>> from math import exp, log, pi, sqrt
    >>> def normal(x, loc, scale):
    ...     return exp(-0.5 * ((x - loc) / scale) ** 2) / (scale * sqrt(2 * pi))
    >>> log(normal(0.3, 0.0, 5.0) * (0.6 * normal(1.2, 0.3, 1.0) + 0.4 * normal(1.2, 3.3, 1.0)))
    -4.2604...
    """

    Root = staticmethod(runner.root)

    def __init__(
        self,
        model: Callable[[], Any],
        *,
        max_paths: int = enum.DEFAULT_MAX_PATHS,
        name: str | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(
                f"JointDistributionCoroutine needs a generator function; got {type(model).__name__}"
            )
        self.model = model
        self.max_paths = int(max_paths)
        self.name = name or getattr(model, "__name__", "model")
        self._shapes: dict[str, jax.ShapeDtypeStruct] | None = None
        self._factors: list[str] | None = None
        self._compiled: dict[Any, Any] = {}  # key -> jitted function, or _EAGER
        # Compiled programs of the samplers (keyed by the sampler, its settings and the shapes of
        # the observed values), kept with the model so that a second fit does not recompile.
        self.program_cache: dict[Any, Any] = {}

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

        >>> jd = _example()                                  # the model of the class docstring
        >>> jd.sample((10, 100), seed=0)
        Values(z: int32[10, 100], mu: float32[10, 100], x: float32[10, 100])
        >>> draws = jd.sample(1000, seed=0, value={"z": 1})
        >>> int(draws.z.min()), int(draws.z.max())
        (1, 1)
        >>> bool(abs((draws.x - draws.mu).mean() - 3.0) < 0.15)   # x - mu ~ N(3, 1) given z = 1
        True
        """
        shape = as_shape(sample_shape)
        if value:
            unknown = [k for k in value if k not in self.event_shapes()]
            if unknown:
                raise ValueError(
                    f"sample(value=...): no variable named {unknown} in model "
                    f"{self.name!r}; its variables are {self.variable_names}"
                )
        given = {}
        for k, v in (value or {}).items():
            given[k] = v = scoring.as_value_array(f"{k!r} in sample(value=...)", v)
            want = self.event_shapes()[k]
            if isinstance(want, jax.ShapeDtypeStruct) and v.shape != want.shape:
                raise ValueError(
                    f"sample(value=...): value for {k!r} has shape {v.shape}; expected shape "
                    f"{want.shape} (one draw: the value is shared by every draw)"
                )
        n = int(np.prod(shape)) if shape else 1

        def sample(key: jax.Array, given: dict[str, jax.Array]) -> Values:
            draws = jax.vmap(lambda k: self._sample_one(k, given))(jax.random.split(key, n))
            return Values(
                (k, jax.tree_util.tree_map(lambda x: x.reshape(shape + x.shape[1:]), v))
                for k, v in draws.items()
            )

        return self._call(("sample", shape), sample, as_key(seed), given)

    def _call(self, key: Any, fn: Callable, *args: Any) -> Any:
        """Run ``fn`` compiled (``jax.jit``, kept per ``key``), eagerly where it must be.

        The first call compiles: run op by op, a model with paths and plates dispatches every
        operation separately, which took 20 s where compiling took 0.7 s.  It runs eagerly
        instead when compiling fails (Python control flow on a value, which needs it concrete:
        that key then always runs eagerly; the eager run raises the error if the model is
        wrong), and once more eagerly when the first compiled result holds a NaN or an infinity
        (or a later one does and a given value is NaN), so that the checks of parameters and
        values that need concrete numbers (``validate_args``) raise their errors.
        """
        compiled = self._compiled.get(key)
        if compiled is _EAGER:
            return fn(*args)
        if compiled is not None:
            out = compiled(*args)
            # the (small) result first: the given values are scanned only when it is not finite
            if not _all_finite(out) and _has_nan(args):
                return fn(*args)  # the eager run names the NaN value (validate_args)
            return out
        compiled = jax.jit(fn)
        try:
            out = compiled(*args)
        except Exception:  # noqa: BLE001 - the eager run raises the real error, if there is one
            # e.g. control flow on a value (ConcretizationTypeError, ControlFlowError), or
            # arrays made under another precision setting, which eager dispatch converts
            self._compiled[key] = _EAGER
            return fn(*args)
        self._compiled[key] = compiled
        if not _all_finite(out):
            return fn(*args)
        return out

    # --- shapes -----------------------------------------------------------------------------
    def event_shapes(self) -> dict[str, jax.ShapeDtypeStruct]:
        """Shape and dtype of each variable in one draw, in model order (found by an abstract run).

        >>> {k: (v.shape, str(v.dtype)) for k, v in _example().event_shapes().items()}
        {'z': ((), 'int32'), 'mu': ((), 'float32'), 'x': ((), 'float32')}
        """
        if self._shapes is None:
            # Values (not dict) keeps model order through the pytree round trip
            self._shapes = jax.eval_shape(lambda k: self._sample_one(k, {}), jax.random.key(0))
        return self._shapes

    @property
    def factor_names(self) -> list[str]:
        """The names of the model's factor terms (:class:`~coromix.distributions.Factor`).

        >>> _example().factor_names
        []
        """
        if self._factors is None:
            self._factors = scoring.factor_names(self.model, self.max_paths)
        return self._factors

    @property
    def variable_names(self) -> list[str]:
        """The names of the model's variables, in model order.

        >>> _example().variable_names
        ['z', 'mu', 'x']
        """
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

        >>> jd = _example()                                  # the model of the class docstring
        >>> jd.log_prob(z=0, mu=0.3, x=1.2)                  # nothing summed out
        Array(-4.3649, dtype=float32)
        >>> draws = jd.sample(1000, seed=0)
        >>> log_p = jd.log_prob(mu=draws.mu, x=draws.x)       # z summed out, per draw
        >>> log_p.shape
        (1000,)

        In closed form, ``log(0.6 N(mu; 0, 5) N(x; mu, 1))`` and, for each draw,
        ``log p(mu, x) = log(N(mu; 0, 5) (0.6 N(x; mu, 1) + 0.4 N(x; mu + 3, 1)))``:

        >>> import numpy as np
        >>> def normal(x, loc, scale):
        ...     return np.exp(-0.5 * ((x - loc) / scale) ** 2) / (scale * np.sqrt(2 * np.pi))
        >>> float(np.log(0.6 * normal(0.3, 0.0, 5.0) * normal(1.2, 0.3, 1.0)))
        -4.3649...
        >>> mu, x = np.asarray(draws.mu, np.float64), np.asarray(draws.x, np.float64)
        >>> exact = np.log(normal(mu, 0, 5) * (0.6 * normal(x, mu, 1) + 0.4 * normal(x, mu + 3, 1)))
        >>> bool(np.allclose(log_p, exact, rtol=1e-5, atol=1e-5))
        True
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

        Example: a mixture of two normals, where each point has its own choice ``z_s``.

        >>> import jax.numpy as jnp
        >>> from coromix.distributions import Categorical, JointDistributionCoroutine, Normal
        >>> def mixture():
        ...     mu = yield Normal(jnp.array([-1.0, 1.0]), 1.0)
        ...     z = yield Categorical(probs=jnp.full((3, 2), 0.5))
        ...     y = yield Normal(mu[z], 1.0)
        >>> jd = JointDistributionCoroutine(mixture)
        >>> data = jnp.array([-1.0, 0.0, 2.0])
        >>> ll = jd.pointwise_log_likelihood({"mu": jnp.array([-1.0, 1.0]), "y": data}, ["y"])
        >>> ll
        Values(y: float32[3])
        >>> ll["y"].tolist()
        [-1.4852, -1.4189, -2.0939]

        In closed form, ``log p(y_s | mu) = log(0.5 N(y_s; -1, 1) + 0.5 N(y_s; 1, 1))``:

        >>> from math import exp, log, pi, sqrt
        >>> def normal(x, loc):
        ...     return exp(-0.5 * (x - loc) ** 2) / sqrt(2 * pi)
        >>> [round(log(0.5 * normal(y, -1.0) + 0.5 * normal(y, 1.0)), 4) for y in [-1.0, 0.0, 2.0]]
        [-1.4852, -1.4189, -2.0939]
        """
        observed = list(observed)
        known = [*self.event_shapes(), *self.factor_names]
        unknown = [n for n in observed if n not in known]
        if unknown:
            raise ValueError(
                f"observed={unknown}: no such variable in the model; its variables "
                f"are {self.variable_names}"
                + (f" and its factors {self.factor_names}" if self.factor_names else "")
            )
        missing = [n for n in observed if n not in values and n not in self.factor_names]
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
        """Condition on observed values: the unnormalized posterior over the remaining variables.

        >>> jd = _example()                                  # the model of the class docstring
        >>> posterior = jd.pin(x=1.2)
        >>> posterior
        PinnedModel(model, observed=['x'], parameters=['mu'])
        >>> posterior.unnormalized_log_prob({"mu": 0.3})     # = jd.log_prob(mu=0.3, x=1.2)
        Array(-4.2604, dtype=float32)
        """
        return PinnedModel(self, {**(values or {}), **observed})

    def discrete_posterior(
        self, values: Mapping[str, Any] | None = None, /, **kwargs: Any
    ) -> Values:
        """Exact ``p(discrete variable | all given values)`` for each discrete variable not given.

        Scalar choices get probabilities over their support, shape ``(K,)``; batch-shaped choices
        get per-element responsibilities, shape ``S + (K,)``.  Values may carry leading batch dims
        (e.g. posterior draws); the result then has them too.

        >>> jd = _example()                                  # the model of the class docstring
        >>> jd.discrete_posterior(mu=0.3, x=1.2)["z"]
        Array([0.9007, 0.0993], dtype=float32)

        In closed form, ``p(z | mu, x)`` is proportional to ``0.6 N(x; mu, 1)``, ``0.4 N(x; mu + 3, 1)``:

        >>> from math import exp
        >>> w0, w1 = 0.6 * exp(-0.5 * 0.9**2), 0.4 * exp(-0.5 * 2.1**2)
        >>> round(w0 / (w0 + w1), 4), round(w1 / (w0 + w1), 4)
        (0.9007, 0.0993)
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

        >>> jd = _example()                                  # the model of the class docstring
        >>> jd.sample_discrete(mu=0.3, x=2.0, seed=0)
        Values(z: int32[])
        >>> draws = [int(jd.sample_discrete(mu=0.3, x=2.0, seed=s)["z"]) for s in range(400)]
        >>> bool(abs(sum(draws) / 400 - 0.5485) < 0.1)     # p(z = 1 | mu, x), 400 draws
        True

        ``p(z = 1 | mu = 0.3, x = 2)`` in closed form:

        >>> from math import exp
        >>> w0, w1 = 0.6 * exp(-0.5 * 1.7**2), 0.4 * exp(-0.5 * 1.3**2)
        >>> round(w1 / (w0 + w1), 4)
        0.5485
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

        >>> jd = _example()                                  # the model of the class docstring
        >>> jd.discrete_mode(mu=0.3, x=1.2)
        Values(z: int32[])
        >>> [int(jd.discrete_mode(mu=0.3, x=x)["z"]) for x in [1.2, 2.0, 4.0]]
        [0, 1, 1]

        ``p(z = 1 | mu, x)`` is 0.0993, 0.5485 and 0.9980 (see :meth:`discrete_posterior`):

        >>> from math import exp
        >>> [int(0.4 * exp(-0.5 * (x - 3.3) ** 2) > 0.6 * exp(-0.5 * (x - 0.3) ** 2))
        ...  for x in [1.2, 2.0, 4.0]]
        [0, 1, 1]
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


def _example() -> JointDistributionCoroutine:
    """The model of the class docstring, for the methods' doctests.

    >>> _example()
    JointDistributionCoroutine(model)
    """
    from coromix.distributions import Categorical, Normal

    def model() -> Generator[Any, Any, None]:
        z = yield Categorical(probs=[0.6, 0.4])
        mu = yield Normal(0.0, 5.0)
        x = yield Normal(mu if z == 0 else mu + 3.0, 1.0)

    return JointDistributionCoroutine(model)
