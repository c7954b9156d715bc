r"""The scoring core: runs a model with given values and sums its discrete choices out exactly.

Every feature of coromix that needs a model's density, its discrete posterior or an ancestral
draw goes through this module (``JointDistributionCoroutine``, ``PinnedModel``, the samplers and
``Posterior`` all call it); it runs the model through :func:`coromix.runner.run` with a handler
and combines the runs with :mod:`coromix.enumerate`.

How a finite discrete variable ``z`` that is not given is summed out:

* **a scalar choice** (batch and event shape ``()``) is enumerated along a *tensor dim*: the model
  runs once, vectorized over all values of ``z`` (``jax.vmap`` over the grid of all scalar
  choices), so ``jnp.where(years < s, early, late)`` or ``mu[z]`` costs one run, not one per value.
  If the model needs a concrete value (a Python ``if z == 0:``, ``range(z)``, a list index), that
  choice falls back to *paths*: one Python run per value, each with a concrete integer.  The
  fallback is found automatically (the first run that needs a concrete value names the choice) and
  remembered for the model.
* **a batch-shaped choice** (a plate) is enumerated element by element along an enumeration dim
  (:class:`coromix.enumerate.PlateEnumerator`), ``O(K |S|)`` work.
* **a chain of choices** (a :class:`~coromix.distributions.HiddenMarkovModel` or
  ``RegimeSwitching`` variable) is summed out inside its own ``log_prob`` by the forward algorithm.

With ``w_p`` the log density of combination ``p`` of the scalar choices (paths and tensor
values; plates and chains summed inside),

.. math::

    \log p(x) = \log \sum_p \exp(w_p).

Continuous variables given on unconstrained space take their value through the support's
bijection ``T`` and add ``log |det dT/du|`` (the density NUTS samples).
"""

from __future__ import annotations

import itertools
import weakref
import zlib
from collections.abc import Callable, Collection, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from coromix import enumerate as enum
from coromix import runner, transforms
from coromix.distributions.distribution import Distribution, is_scalar_choice
from coromix.distributions.markov_chain import MarkovChain
from coromix.runner import Site, Values
from coromix.utils import Shape, is_concrete

__all__ = [
    "Run",
    "batched",
    "chain_key",
    "check_values",
    "discrete_mode",
    "discrete_posterior",
    "factor_names",
    "log_density",
    "pointwise_log_likelihood",
    "prior_and_joint",
    "sample",
    "sample_discrete",
    "structure",
]

# At most this many scalar choices of one run are enumerated along tensor dims.
_MAX_TENSOR_CHOICES = 32

# Errors a model raises when it needs a concrete value of a choice (``if z``, ``range(z)``, ...).
_NEEDS_CONCRETE = (jax.errors.JAXTypeError, TypeError, IndexError)

# Per model function: the scalar choices it branches on (found by the first run that failed).
_PATH_CHOICES: weakref.WeakKeyDictionary[Callable, set[str]] = weakref.WeakKeyDictionary()


# Per model function and shapes of the given values: the rank of its plate frame (the largest
# rank it shows with nothing enumerated), found by a shape run the first time.
_FRAME_RANKS: weakref.WeakKeyDictionary[Callable, dict[tuple, tuple[int, dict[str, int]]]] = (
    weakref.WeakKeyDictionary()
)


def _path_choices(model: Callable) -> set[str]:
    try:
        return _PATH_CHOICES.setdefault(model, set())
    except TypeError:  # not weak-referenceable (e.g. a functools.partial of a builtin)
        return set()


def _frame_ranks(model: Callable) -> dict[tuple, tuple[int, dict[str, int]]]:
    try:
        return _FRAME_RANKS.setdefault(model, {})
    except TypeError:
        return {}


def _shapes_key(*mappings: Mapping[str, Any] | None) -> tuple:
    return tuple(
        tuple(
            sorted(
                (name, str(jax.tree_util.tree_map(lambda x: tuple(jnp.shape(x)), v)))
                for name, v in (m or {}).items()
            )
        )
        for m in mappings
    )


def site_key(key: jax.Array, name: str) -> jax.Array:
    """Each variable's own random stream, the same on every path (so shared prefixes agree)."""
    return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def chain_key(name: str, dist: Distribution) -> str:
    """Name under which the latent chain of an HMM-like variable ``name`` is reported."""
    return f"{name}_{getattr(dist, 'latent_name', 'states')}"


def _is_chain(dist: Distribution) -> bool:
    return isinstance(dist, MarkovChain)


def _wrap_errors(name: str, dist: Distribution, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (enum.EnumerationError, runner.ModelDefinitionError, jax.errors.JAXTypeError):
        raise  # already specific (JAX's own errors take other constructor arguments)
    except (ValueError, TypeError) as err:
        raise type(err)(f"variable {name!r} ({type(dist).__name__}): {err}") from err


class _NeedsPath(Exception):
    """Internal: the run needed a concrete value of a scalar choice enumerated as a tensor."""

    def __init__(self, name: str, error: Exception):
        super().__init__(name)
        self.name, self.error = name, error


# --------------------------------------------------------------------------------------------
# handlers
# --------------------------------------------------------------------------------------------


class _Handler:
    """What both handlers share: the path chooser, the tensor index and the record of choices."""

    def __init__(self, chooser: enum.PathChooser, index: jax.Array | None, paths: Collection[str]):
        self.chooser, self.index, self.paths = chooser, index, paths
        self.sites: list[Site] = []
        self.names: list[str] = []  # every site, in model order
        self.tensor_names: list[str] = []  # free scalar choices enumerated along tensor dims
        self.tensor_sizes: list[int] = []
        self.traced_choices: list[str] = []  # scalar choices given a traced value
        self.supports: dict[str, np.ndarray] = {}

    def tensor_value(self, name: str, dist: Distribution) -> jax.Array:
        """The value of a free scalar choice at this run's tensor index."""
        support = enum.support_values(dist, name)
        self.supports[name] = support
        i = len(self.tensor_names)
        if i >= _MAX_TENSOR_CHOICES:
            raise enum.EnumerationError(
                f"more than {_MAX_TENSOR_CHOICES} scalar discrete choices in one model run "
                f"({self.tensor_names[:4]}...); use one variable with a batch shape instead"
            )
        self.tensor_names.append(name)
        self.tensor_sizes.append(len(support))
        return jnp.asarray(support)[self.index[i]]

    def path_value(self, name: str, dist: Distribution) -> np.ndarray:
        self.supports[name] = enum.support_values(dist, name)
        return self.chooser.choose(name, dist)

    def was_shape_run(self) -> bool:
        """Whether this run only found the model's plate frame (its outputs are not valid)."""
        return False

    def candidates(self) -> list[str]:
        """Scalar choices that could have caused a run to need a concrete value, latest first."""
        seen = [n for n in self.names if n in self.tensor_names or n in self.traced_choices]
        return [n for n in reversed(seen) if n not in self.paths]


class _Sampler(_Handler):
    """Handler: draws every variable not given; scalar choices on paths follow the path."""

    def __init__(self, key, given, chooser, index, paths):
        super().__init__(chooser, index, paths)
        self.key, self.given = key, given
        self.factors: list[str] = []
        self.values: dict[str, jax.Array] = {}
        self.on_path = jnp.asarray(True)

    def __call__(self, name: str, dist: Distribution):
        self.names.append(name)
        if dist.is_factor:  # not a variable: nothing to draw
            self.factors.append(name)
            return jnp.zeros(dist.batch_shape, dist.dtype)
        scalar = is_scalar_choice(dist)
        if name in self.given:
            value = jax.tree_util.tree_map(jnp.asarray, self.given[name])
            self.values[name] = value
            if not scalar:
                return value
            if is_concrete(value):
                return np.asarray(value)
            if name not in self.paths:
                self.traced_choices.append(name)
                return value
            chosen = self.path_value(name, dist)
            self.on_path = self.on_path & (value == chosen)
            return chosen
        draw = _wrap_errors(name, dist, lambda: dist.sample(seed=site_key(self.key, name)))
        if scalar and name in self.paths:
            chosen = self.path_value(name, dist)
            self.on_path = self.on_path & (draw == chosen)
            self.values[name] = jnp.asarray(chosen, dtype=draw.dtype)
            return chosen
        if scalar:
            self.traced_choices.append(name)
        self.values[name] = draw
        return draw


class Run(_Handler):
    """Handler and record of one scoring run: the log density of given values.

    Free finite discrete variables are summed out (scalar choices at this run's tensor index or
    path value, plates along enumeration dims, chains inside their own ``log_prob``).  Continuous
    variables listed in ``unconstrained`` take their value from unconstrained space through the
    support's bijection, adding the log-det-Jacobian.
    """

    def __init__(
        self,
        values: Mapping[str, Any],
        unconstrained: Mapping[str, Any] | None,
        chooser: enum.PathChooser,
        index: jax.Array | None,
        paths: Collection[str],
        frame_ranks: dict[tuple, tuple[int, dict[str, int]]] | None = None,
    ):
        super().__init__(chooser, index, paths)
        self.given = values
        self.unconstrained = unconstrained or {}
        self.frame_ranks = {} if frame_ranks is None else frame_ranks
        self.shapes_key = _shapes_key(values, unconstrained)
        self.plates = enum.PlateEnumerator(*self.frame_ranks.get(self.shapes_key, (None, None)))
        self.path_mask = jnp.zeros(())
        self.choice_values: dict[str, Any] = {}  # free scalar choices (path or tensor)
        self.values: dict[str, Any] = {}
        self.chains: dict[str, tuple[Distribution, Any]] = {}
        self.factors: list[str] = []  # names of the factor terms (not variables)

    def __call__(self, name: str, dist: Distribution) -> Any:
        self.names.append(name)
        if dist.is_factor:  # a term of the log density; no value, whatever is given
            self.plates.add(name, _wrap_errors(name, dist, lambda: dist.log_prob(None)))
            self.factors.append(name)
            return jnp.zeros(dist.batch_shape, dist.dtype)
        scalar = is_scalar_choice(dist)
        if name in self.given:
            value = self.given[name]
            if scalar and is_concrete(value):
                value = np.asarray(value)
            elif scalar and name in self.paths:
                chosen = self.path_value(name, dist)
                self.path_mask = self.path_mask + jnp.where(value == chosen, 0.0, -jnp.inf)
                value = chosen
            elif scalar:
                self.traced_choices.append(name)
            self.plates.add(name, _wrap_errors(name, dist, lambda: dist.log_prob(value)))
            if _is_chain(dist):  # a chain of choices summed out inside
                self.chains[chain_key(name, dist)] = (dist, value)
        elif name in self.unconstrained:
            bijector = transforms.biject_to(dist.support)
            u = self.unconstrained[name]
            value = bijector.forward(u)
            self.plates.add(name, _wrap_errors(name, dist, lambda: dist.log_prob(value)))
            self.plates.add(f"{name} (Jacobian)", bijector.forward_log_det_jacobian(u))
        elif not dist.is_discrete:
            raise ValueError(
                f"no value for the continuous variable {name!r}: only finite discrete variables "
                f"are summed out; give {name!r} a value"
            )
        elif scalar:
            if name in self.paths:
                value = self.path_value(name, dist)
            else:
                value = self.tensor_value(name, dist)
            self.choice_values[name] = value
            self.plates.add(name, dist.log_prob(value))
        else:
            value = self.plates.enumerate(name, dist)
        self.values[name] = value
        return value

    def was_shape_run(self) -> bool:
        """A run without the plate frame's rank gives plate variables placeholders; record it."""
        if not self.plates.placeholders:
            return False
        self.frame_ranks[self.shapes_key] = (self.plates.shape_run_rank, self.plates.term_ranks)
        return True

    def log_density(self, leave_out: Collection[str] = ()) -> jax.Array:
        """This run's log density, plates summed out; terms of ``leave_out`` left out."""
        return self.plates.log_density(leave_out) + self.path_mask


# --------------------------------------------------------------------------------------------
# the driver: paths x tensor grid, with the automatic fallback to paths
# --------------------------------------------------------------------------------------------


def _grid(sizes: list[int], max_paths: int, python_paths: int, names: list[str]) -> jax.Array:
    total = int(np.prod(sizes)) * python_paths
    if total > max_paths:
        choices = ", ".join(f"{n!r} ({k} values)" for n, k in zip(names, sizes))
        raise enum.EnumerationError(
            f"summing out the scalar discrete choices {choices} takes {total} combinations, more "
            f"than max_paths={max_paths}. Use the vectorized form: one variable with a batch "
            f"shape (e.g. Categorical(probs=jnp.broadcast_to(w, (N, K)))) used by indexing or "
            f"jnp.where, a HiddenMarkovModel for chains, or raise max_paths"
        )
    rows = np.array(list(itertools.product(*[range(k) for k in sizes])), np.int32)
    return jnp.asarray(np.pad(rows, ((0, 0), (0, _MAX_TENSOR_CHOICES - len(sizes)))))


def _runs(
    model: Callable,
    make: Callable[[enum.PathChooser, jax.Array, frozenset[str]], _Handler],
    finish: Callable[[_Handler], Any],
    max_paths: int,
    real_first: bool = False,
) -> tuple[Any, _Handler]:
    """``finish(handler)`` of every combination of scalar choices, stacked on a leading axis.

    Returns the stacked outputs and the handler of the first run (first path, first tensor
    values): its ``sites``, ``names`` and ``supports`` describe the model.  Its array values are
    valid in the caller's trace only with ``real_first`` (otherwise they are vmap tracers).
    """
    paths = _path_choices(model)
    added: list[str] = []
    while True:
        try:
            result = _runs_with(model, make, finish, max_paths, frozenset(paths), real_first)
            break
        except _NeedsPath as need:
            paths.add(need.name)
            added.append(need.name)
    # The failing choice is guessed latest-first, so a choice yielded after the one the model
    # branches on may have been put on paths too: drop each earlier guess the model runs without.
    for name in added[:-1]:
        try:
            result = _runs_with(
                model, make, finish, max_paths, frozenset(paths - {name}), real_first
            )
        except _NeedsPath:
            continue
        paths.discard(name)
    return result


def _runs_with(model, make, finish, max_paths, paths, real_first):
    first: list[_Handler] = []
    count = [0]

    def run_path(chooser: enum.PathChooser):
        count[0] += 1
        holder: list[_Handler] = []

        def trial(index):
            handler = make(chooser.fresh(), index, paths)
            holder.append(handler)
            handler.sites = runner.run(model, handler)
            if handler.was_shape_run():
                return jnp.zeros(())
            return finish(handler)

        # The first run (vectorized over one grid row) finds the tensor choices, or the choice
        # the model needs a concrete value of.  It runs under vmap, not eval_shape: an aborted
        # jaxpr trace would keep the model's NumPy constants cached at the current precision.
        zero = jnp.zeros((1, _MAX_TENSOR_CHOICES), jnp.int32)
        try:
            out = jax.vmap(trial)(zero)
        except _NEEDS_CONCRETE as err:
            candidates = holder[-1].candidates() if holder else []
            if not candidates:
                raise
            raise _NeedsPath(candidates[0], err) from err
        if holder[-1].was_shape_run():  # the frame's rank is known now
            out = jax.vmap(trial)(zero)
        found = holder[-1]
        chooser.adopt(found.chooser)
        if found.tensor_sizes:
            grid = _grid(found.tensor_sizes, max_paths, count[0], found.tensor_names)
            out = jax.vmap(trial)(grid)
        if real_first and not first:
            trial(zero[0])
            found = holder[-1]
        first.append(found)
        return out

    outs = enum.enumerate_paths(run_path, max_paths)
    for out in outs[1:]:
        if jax.tree_util.tree_structure(out) != jax.tree_util.tree_structure(outs[0]):
            raise enum.EnumerationError(
                f"the model yields different variables on different paths (first path: "
                f"{first[0].names}); every path must yield the same variables"
            )
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *outs)
    return stacked, first[0]


def _score(model, values, unconstrained, finish, max_paths, real_first=False):
    frame_ranks = _frame_ranks(model)

    def make(chooser, index, paths):
        return Run(values, unconstrained, chooser, index, paths, frame_ranks)

    return _runs(model, make, finish, max_paths, real_first)


# --------------------------------------------------------------------------------------------
# what the rest of coromix calls (one draw; batch with `batched`)
# --------------------------------------------------------------------------------------------


def sample(model: Callable, key: jax.Array, given: Mapping[str, Any], max_paths: int) -> Values:
    """One ancestral draw (traced per draw under vmap), path chosen by its own discrete draws.

    Scalar choices the model branches on are drawn by running one path per value and keeping the
    path that agrees with the draw; the others are drawn directly.
    """

    def make(chooser, index, paths):
        return _Sampler(key, given, chooser, index, paths)

    def finish(h):
        return {"values": dict(h.values), "on_path": h.on_path}

    out, first = _runs(model, make, finish, max_paths)
    names = list(first.values)
    which = 0 if out["on_path"].shape[0] == 1 else jnp.argmax(out["on_path"])
    return Values((n, jax.tree_util.tree_map(lambda x: x[which], out["values"][n])) for n in names)


def factor_names(model: Callable, max_paths: int) -> list[str]:
    """The names of the model's factor terms, in model order (from an abstract run)."""
    found: list[_Handler] = []

    def run(key):
        def make(chooser, index, paths):
            return _Sampler(key, {}, chooser, index, paths)

        out, first = _runs(model, make, lambda h: jnp.zeros(()), max_paths)
        found.append(first)
        return out

    jax.eval_shape(run, jax.random.key(0))
    return list(found[0].factors)


def structure(
    model: Callable,
    values: Mapping[str, Any],
    unconstrained: Mapping[str, Any] | None,
    max_paths: int,
) -> Run:
    """A scoring run at the first path (and first tensor values): the model's sites and values.

    The continuous variables' values are the same on every path; use it to read the sites'
    distributions and the values of the continuous variables.
    """
    return _score(model, values, unconstrained, lambda h: jnp.zeros(()), max_paths, True)[1]


def log_density(
    model: Callable,
    values: Mapping[str, Any],
    unconstrained: Mapping[str, Any] | None,
    max_paths: int,
) -> jax.Array:
    """``log p(values)``, every free finite discrete variable summed out (one draw).

    A change point ``s`` in ``{0, 1, 2}`` over three counts, summed out in one vectorized run
    (``jnp.where`` needs no concrete ``s``), against the sum over ``s`` written out:

    >>> import jax.numpy as jnp
    >>> from scipy import stats
    >>> from scipy.special import logsumexp
    >>> import coromix.distributions as tfd
    >>> def change_point():
    ...     s = yield tfd.Categorical(probs=jnp.full(3, 1 / 3), name="s")
    ...     yield tfd.Poisson(jnp.where(jnp.arange(3) < s, 4.0, 1.0), name="y")
    >>> y = jnp.array([5.0, 3.0, 1.0])
    >>> got = log_density(change_point, {"y": y}, None, max_paths=1024)
    >>> rates = [[4.0 if t < s else 1.0 for t in range(3)] for s in range(3)]
    >>> ref = logsumexp([stats.poisson.logpmf(y, r).sum() - jnp.log(3) for r in rates])
    >>> bool(abs(got - ref) < 1e-5)
    True
    """
    out, _ = _score(model, values, unconstrained, lambda h: h.log_density(), max_paths)
    return jax.nn.logsumexp(out)


def prior_and_joint(
    model: Callable,
    values: Mapping[str, Any],
    unconstrained: Mapping[str, Any] | None,
    leave_out: Collection[str],
    max_paths: int,
) -> tuple[jax.Array, jax.Array]:
    """``(log p with the terms of leave_out left out, log p)``, choices summed out, one run.

    Factor terms are left out of the first too: it is the density that ancestral sampling draws
    from (tempered SMC starts there and counts factors with the likelihood).
    """
    leave_out = list(leave_out)

    def finish(h):
        return h.log_density(leave_out + h.factors), h.log_density()

    (prior, joint), _ = _score(model, values, unconstrained, finish, max_paths)
    return jax.nn.logsumexp(prior), jax.nn.logsumexp(joint)


def pointwise_log_likelihood(
    model: Callable, values: Mapping[str, Any], observed: list[str], max_paths: int
) -> Values:
    """Per-observation log-likelihood (see ``JointDistributionCoroutine.pointwise_log_likelihood``)."""

    def finish(h):
        return {
            "pointwise": h.plates.pointwise(observed),
            "total": h.log_density(),
            "rest": h.log_density(observed),
        }

    out, _ = _score(model, values, None, finish, max_paths)
    if out["total"].shape[0] == 1:
        return Values((k, v[0]) for k, v in out["pointwise"].items())
    return Values(
        [("+".join(observed), jax.nn.logsumexp(out["total"]) - jax.nn.logsumexp(out["rest"]))]
    )


def _in_model_order(first: Run, out: Mapping[str, Any]) -> Values:
    """Site names in model order, each followed by the chain it hides (if any)."""
    order = []
    for site in first.sites:
        order.append(site.name)
        order += [k for k in first.chains if k == chain_key(site.name, site.distribution)]
    return Values((n, out[n]) for n in order if n in out)


def discrete_posterior(model: Callable, values: Mapping[str, Any], max_paths: int) -> Values:
    """Exact ``p(choice | values)`` of every free discrete variable (one draw).

    Scalar choices get ``(K,)`` probabilities; plate variables ``shape + (K,)``, here a cluster
    per group ``c`` (shape ``(2, 1)``) with a component per observation ``z`` (shape ``(2, 3)``):

    >>> import jax.numpy as jnp
    >>> import coromix.distributions as tfd
    >>> def nested():
    ...     c = yield tfd.Categorical(probs=jnp.full((2, 1, 2), 0.5), name="c")
    ...     theta = jnp.array([[0.9, 0.1], [0.1, 0.9]])
    ...     z = yield tfd.Categorical(probs=theta[c] * jnp.ones((3, 1)), name="z")
    ...     yield tfd.Normal(jnp.array([-2.0, 2.0])[z], 1.0, name="y")
    >>> y = jnp.array([[-2.1, -1.9, -2.0], [2.0, 2.2, 1.8]])
    >>> post = discrete_posterior(nested, {"y": y}, max_paths=1024)
    >>> post["c"].shape, post["z"].shape
    ((2, 1, 2), (2, 3, 2))
    >>> post["c"][:, 0, 0].tolist()  # p(c_g = 0); brute force: 0.99862, 0.00138
    [0.9986, 0.0014]
    """

    def finish(h):
        return {
            "log_w": h.log_density(),
            "choices": {n: jnp.asarray(v) for n, v in h.choice_values.items()},
            "plates": {
                **h.plates.responsibilities(),
                **{k: d.posterior(v).marginals for k, (d, v) in h.chains.items()},
            },
        }

    out, first = _score(model, values, None, finish, max_paths)
    weights = jax.nn.softmax(out["log_w"])
    result: dict[str, jax.Array] = {}
    for name, chosen in out["choices"].items():
        support = jnp.asarray(first.supports[name])
        result[name] = jnp.sum(weights[:, None] * (chosen[:, None] == support), axis=0)
    for name, probs in out["plates"].items():
        result[name] = jnp.tensordot(weights, probs, axes=1)
    return _in_model_order(first, result)


def sample_discrete(
    model: Callable, values: Mapping[str, Any], key: jax.Array | None, max_paths: int
) -> Values:
    """A joint draw of the free discrete variables given ``values``; with ``key=None`` the mode."""
    plate_key = None if key is None else jax.random.split(key)[1]

    def chain(d, v):
        return d.posterior_mode(v) if key is None else d.posterior_sample(v, seed=plate_key)

    def finish(h):
        return {
            "log_w": h.log_density(),
            "draw": {
                **{n: jnp.asarray(v) for n, v in h.choice_values.items()},
                **h.plates.sample(plate_key),
                **{k: chain(d, v) for k, (d, v) in h.chains.items()},
            },
        }

    out, first = _score(model, values, None, finish, max_paths)
    if key is None:
        which = jnp.argmax(out["log_w"])
    else:
        which = jax.random.categorical(jax.random.split(key)[0], out["log_w"])
    return _in_model_order(
        first, {n: jax.tree_util.tree_map(lambda x: x[which], v) for n, v in out["draw"].items()}
    )


def discrete_mode(model: Callable, values: Mapping[str, Any], max_paths: int) -> Values:
    """The most probable joint value of the free discrete variables (Viterbi for chains)."""
    return sample_discrete(model, values, None, max_paths)


# --------------------------------------------------------------------------------------------
# values with leading batch dims
# --------------------------------------------------------------------------------------------


def as_value_array(label: str, value: Any) -> jax.Array:
    """``value`` as a JAX array, or a ``TypeError`` naming ``label`` when it is not numbers.

    >>> as_value_array("'x'", [1.0, 2.0]).shape
    (2,)
    >>> as_value_array("'x'", "abc")
    Traceback (most recent call last):
    ...
    TypeError: value for 'x' must be a number or an array of numbers; got str 'abc'
    """
    if isinstance(value, (jax.Array, jax.core.Tracer)):
        return value
    try:
        kind = np.asarray(value).dtype.kind
    except (TypeError, ValueError):  # ragged nested lists
        kind = "O"
    if kind not in "biuf":
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise TypeError(
            f"value for {label} must be a number or an array of numbers; got "
            f"{type(value).__name__} {shown}"
        )
    return jnp.asarray(value)


def check_values(
    shapes: Mapping[str, jax.ShapeDtypeStruct], values: Mapping[str, Any]
) -> tuple[Shape, dict[str, jax.Array]]:
    """Leading batch shape of a set of values (beyond one draw's shapes), and the arrays.

    ``shapes`` are one draw's shapes by name; a clear error names an unknown variable, a value
    whose trailing shape is not its variable's, or batch shapes that do not broadcast.
    """
    unknown = [k for k in values if k not in shapes]
    if unknown:
        raise ValueError(
            f"no variable named {unknown} in the model; its variables are {list(shapes)}"
        )
    batch: tuple[int, ...] = ()
    arrays = {}
    for k, value in values.items():
        # a variable's value is an array, or a mapping of arrays (several observations per step)
        if isinstance(shapes[k], Mapping):
            if not isinstance(value, Mapping) or set(value) != set(shapes[k]):
                raise ValueError(
                    f"value for {k!r} must be a mapping with the keys {list(shapes[k])} (one "
                    f"array per observation of the step); got {type(value).__name__}"
                    + (f" with keys {list(value)}" if isinstance(value, Mapping) else "")
                )
            parts = {part: (f"{k}[{part!r}]", value[part], shapes[k][part]) for part in shapes[k]}
        else:
            parts = {None: (repr(k), value, shapes[k])}
        checked = {}
        for part, (label, v, struct) in parts.items():
            v = as_value_array(label, v)
            site = struct.shape
            if v.shape[v.ndim - len(site) :] != site or v.ndim < len(site):
                raise ValueError(
                    f"value for {label} has shape {v.shape}; expected shape {site} "
                    f"(one draw) with optional leading batch dims"
                )
            try:
                batch = jnp.broadcast_shapes(batch, v.shape[: v.ndim - len(site)])
            except ValueError:
                raise ValueError(
                    f"value for {label} has batch shape {v.shape[: v.ndim - len(site)]}, "
                    f"which does not broadcast with the others' {batch}"
                ) from None
            checked[part] = v
        arrays[k] = checked.get(None, checked)
    return tuple(batch), arrays


def batched(
    shapes: Mapping[str, jax.ShapeDtypeStruct],
    fn: Callable[..., Any],
    values: Mapping[str, Any],
    key: jax.Array | None = None,
) -> Any:
    """Apply a one-draw function to values with leading batch dims (vmapped).

    With ``key``, ``fn(values, key)`` gets an independent key per batch member.
    """
    batch, arrays = check_values(shapes, values)
    if not batch:
        return fn(arrays) if key is None else fn(arrays, key)
    n = int(np.prod(batch))
    flat = {
        k: jax.tree_util.tree_map(
            lambda x, struct: jnp.broadcast_to(x, batch + struct.shape).reshape(
                (n,) + struct.shape
            ),
            v,
            shapes[k],
        )
        for k, v in arrays.items()
    }
    if key is None:
        out = jax.vmap(fn)(flat)
    else:
        out = jax.vmap(fn)(flat, jax.random.split(key, n))
    return jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), out)
