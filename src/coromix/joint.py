"""`JointDistributionCoroutine`: a joint distribution written as a generator describing one draw.

All operations are handlers for the runner in :mod:`coromix.model`, combined with the path and plate
enumeration of :mod:`coromix.enumerate`:

* ``sample``: runs the model once per path, each vmapped over the draws; every draw keeps the path
  that agrees with its own sampled discrete values, so the result is a proper ancestral sample.
* ``log_prob`` / ``pin(...).unnormalized_log_prob``: run the model once per path with given values,
  summing batch-shaped discrete variables out along enumeration dims, then log-sum-exp over paths.
* ``discrete_posterior``: the same runs, normalized into conditional probabilities.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from coromix import enumerate as enum
from coromix import model as runner
from coromix import transforms
from coromix.distributions.distribution import Distribution
from coromix.model import Values
from coromix.utils import as_key, as_shape, is_concrete

if TYPE_CHECKING:
    from coromix.pinned import PinnedModel


def _site_key(key: jax.Array, name: str) -> jax.Array:
    """Each variable's own random stream, the same on every path (so shared prefixes agree)."""
    return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def _wrap_errors(name: str, dist: Distribution, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (enum.EnumerationError, runner.ModelDefinitionError, jax.errors.JAXTypeError):
        raise  # already specific (JAX's own errors take other constructor arguments)
    except (ValueError, TypeError) as err:
        raise type(err)(f"variable {name!r} ({type(dist).__name__}): {err}") from err


class _Sampler:
    """Handler: draws every variable not given; scalar discrete choices follow the path."""

    def __init__(self, key: jax.Array, given: Mapping[str, Any], chooser: enum.PathChooser):
        self.key, self.given, self.chooser = key, given, chooser
        self.values: dict[str, jax.Array] = {}
        self.on_path = jnp.asarray(True)

    def __call__(self, name: str, dist: Distribution):
        if name in self.given:
            value = jnp.asarray(self.given[name])
            self.values[name] = value
            if enum.is_path_site(dist):
                if is_concrete(value):
                    return np.asarray(value)
                chosen = self.chooser.choose(name, dist)
                self.on_path = self.on_path & (value == chosen)
                return chosen
            return value
        draw = _wrap_errors(name, dist, lambda: dist.sample(seed=_site_key(self.key, name)))
        if enum.is_path_site(dist):
            chosen = self.chooser.choose(name, dist)
            self.on_path = self.on_path & (draw == chosen)
            self.values[name] = jnp.asarray(chosen, dtype=draw.dtype)
            return chosen
        self.values[name] = draw
        return draw


def _chain_key(name: str, dist: Distribution) -> str:
    """Name under which the latent chain of an HMM-like variable ``name`` is reported."""
    return f"{name}_{getattr(dist, 'latent_name', 'states')}"


def _marginals_of(dist: Distribution, value: Any) -> jax.Array:
    marginals = dist.posterior_marginals(value)
    return getattr(marginals, "probs", marginals)


def _in_model_order(scorer: _Scorer, out: Mapping[str, Any]) -> Values:
    """Site names in model order, each followed by the chain it hides (if any)."""
    order = []
    for site in scorer.sites:
        order.append(site.name)
        order += [k for k in scorer.chains if k == _chain_key(site.name, site.distribution)]
    return Values((n, out[n]) for n in order if n in out)


class _Scorer:
    """Handler: log density of given values; missing finite discrete variables are summed out.

    Continuous variables listed in ``unconstrained`` take their value from unconstrained space
    through the support's bijection, adding the log-det-Jacobian (the density NUTS needs).
    """

    def __init__(
        self,
        values: Mapping[str, Any],
        chooser: enum.PathChooser,
        unconstrained: Mapping[str, Any] | None = None,
    ):
        self.given, self.chooser = values, chooser
        self.unconstrained = unconstrained or {}
        self.plates = enum.PlateEnumerator()
        self.path_mask = jnp.zeros(())
        self.path_values: dict[str, Any] = {}
        self.values: dict[str, Any] = {}
        self.chains: dict[str, tuple[Distribution, Any]] = {}

    def __call__(self, name: str, dist: Distribution):
        if name in self.given:
            value = self.given[name]
            if enum.is_path_site(dist) and not is_concrete(value):
                chosen = self.chooser.choose(name, dist)
                self.path_mask = self.path_mask + jnp.where(value == chosen, 0.0, -jnp.inf)
                self.path_values[name] = chosen
                value = chosen
            elif enum.is_path_site(dist):
                value = np.asarray(value)
            self.plates.add(name, _wrap_errors(name, dist, lambda: dist.log_prob(value)))
            if hasattr(dist, "posterior_marginals"):  # a chain of choices summed out inside
                self.chains[_chain_key(name, dist)] = (dist, value)
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
        elif enum.is_path_site(dist):
            value = self.chooser.choose(name, dist)
            self.path_values[name] = value
            self.plates.add(name, dist.log_prob(value))
        else:
            value = self.plates.enumerate(name, dist)
        self.values[name] = value
        return value

    def log_density(self) -> jax.Array:
        return self.plates.log_density() + self.path_mask


class JointDistributionCoroutine:
    """A joint distribution written as a generator function that describes ONE draw.

    ``model`` takes no arguments (close over data and sizes) and yields distributions; each yield
    returns the variable's value.  Variables are named after their assignment target, or ``name=``.

    Finite discrete variables that are not given are summed out exactly (see
    :mod:`coromix.enumerate`): scalar choices by running the model once per value (so Python ``if`` on
    them is legal), batch-shaped choices element by element.  At most ``max_paths`` runs are allowed.

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
    def _paths(self, make_handler: Callable[[enum.PathChooser], Any]) -> list[Any]:
        """One handler per path, each after a complete run of the model."""

        def run_path(chooser):
            handler = make_handler(chooser)
            handler.sites = runner.run(self.model, handler)
            return handler

        return enum.enumerate_paths(run_path, self.max_paths)

    def _sample_one(self, key: jax.Array, given: Mapping[str, Any]) -> Values:
        """One ancestral draw (traced per draw under vmap), path chosen by its own discrete draws."""
        handlers = self._paths(lambda chooser: _Sampler(key, given, chooser))
        names = list(handlers[0].values)
        for h in handlers[1:]:
            if list(h.values) != names:
                raise enum.EnumerationError(
                    f"the model yields different variables on different paths ({names} versus "
                    f"{list(h.values)}); every path must yield the same variables"
                )
        if len(handlers) == 1:
            return Values(handlers[0].values)
        which = jnp.argmax(jnp.stack([h.on_path for h in handlers]))
        return Values(
            (n, jnp.stack([jnp.asarray(h.values[n]) for h in handlers])[which]) for n in names
        )

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

    def _batch_of(self, values: Mapping[str, Any]) -> tuple[tuple[int, ...], dict[str, Any]]:
        """Leading batch shape of a set of values (beyond one draw's shapes), and the arrays."""
        shapes = self.event_shapes()
        unknown = [k for k in values if k not in shapes]
        if unknown:
            raise ValueError(
                f"no variable named {unknown} in the model; its variables are {list(shapes)}"
            )
        batch: tuple[int, ...] = ()
        arrays = {}
        for k, v in values.items():
            v = jnp.asarray(v)
            site = shapes[k].shape
            if v.shape[v.ndim - len(site) :] != site or v.ndim < len(site):
                raise ValueError(
                    f"value for {k!r} has shape {v.shape}; expected shape {site} "
                    f"(one draw) with optional leading batch dims"
                )
            try:
                batch = jnp.broadcast_shapes(batch, v.shape[: v.ndim - len(site)])
            except ValueError:
                raise ValueError(
                    f"value for {k!r} has batch shape {v.shape[: v.ndim - len(site)]}, "
                    f"which does not broadcast with the others' {batch}"
                ) from None
            arrays[k] = v
        return tuple(batch), arrays

    def _batched(
        self, fn: Callable[..., Any], values: Mapping[str, Any], key: jax.Array | None = None
    ) -> Any:
        """Apply a one-draw function to values with leading batch dims (vmapped).

        With ``key``, ``fn(values, key)`` gets an independent key per batch member.
        """
        batch, arrays = self._batch_of(values)
        if not batch:
            return fn(arrays) if key is None else fn(arrays, key)
        shapes = self.event_shapes()
        n = int(np.prod(batch))
        flat = {
            k: jnp.broadcast_to(v, batch + shapes[k].shape).reshape((n,) + shapes[k].shape)
            for k, v in arrays.items()
        }
        if key is None:
            out = jax.vmap(fn)(flat)
        else:
            out = jax.vmap(fn)(flat, jax.random.split(key, n))
        return jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), out)

    # --- densities --------------------------------------------------------------------------
    def _score_paths(
        self, values: Mapping[str, Any], unconstrained: Mapping[str, Any] | None = None
    ) -> list[_Scorer]:
        return self._paths(lambda chooser: _Scorer(values, chooser, unconstrained))

    def _log_prob_one(self, values: Mapping[str, Any]) -> jax.Array:
        scorers = self._score_paths(values)
        return jax.nn.logsumexp(jnp.stack([s.log_density() for s in scorers]))

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
            lambda v: self._batched(lambda one: self._pointwise_one(one, observed), v),
            dict(values),
        )

    def _pointwise_one(self, values: Mapping[str, Any], observed: Sequence[str]) -> Values:
        scorers = self._score_paths(values)
        if len(scorers) == 1:
            return scorers[0].plates.pointwise(observed)
        total = jnp.stack([s.log_density() for s in scorers])
        rest = jnp.stack([s.plates.log_density(leave_out=observed) + s.path_mask for s in scorers])
        return Values([("+".join(observed), jax.nn.logsumexp(total) - jax.nn.logsumexp(rest))])

    def pin(self, values: Mapping[str, Any] | None = None, /, **observed: Any) -> PinnedModel:
        """Condition on observed values: the unnormalized posterior over the remaining variables."""
        from coromix.pinned import PinnedModel

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
        """A joint draw of the discrete variables given ``values``, or with ``key=None`` the mode."""
        scorers = self._score_paths(values)
        log_w = jnp.stack([s.log_density() for s in scorers])
        if key is None:
            which, plate_key = jnp.argmax(log_w), None
        else:
            path_key, plate_key = jax.random.split(key)
            which = jax.random.categorical(path_key, log_w)

        def chain(d, v):
            return d.posterior_mode(v) if key is None else d.posterior_sample(v, seed=plate_key)

        draws = [
            {
                **{n: jnp.asarray(v) for n, v in s.path_values.items() if n not in values},
                **s.plates.sample(plate_key),
                **{k: chain(d, v) for k, (d, v) in s.chains.items()},
            }
            for s in scorers
        ]
        return _in_model_order(
            scorers[0], {n: jnp.stack([d[n] for d in draws])[which] for n in draws[0]}
        )

    def _discrete_posterior_one(self, values: Mapping[str, Any]) -> Values:
        scorers = self._score_paths(values)
        log_w = jnp.stack([s.log_density() for s in scorers])
        weights = jnp.exp(log_w - jax.nn.logsumexp(log_w))
        out: dict[str, jax.Array] = {}
        path_names = [n for n in scorers[0].path_values if n not in values]
        for name in path_names:
            support = enum.support_values(
                next(s.distribution for s in scorers[0].sites if s.name == name), name
            )
            probs = jnp.zeros(len(support), weights.dtype)
            for w, s in zip(weights, scorers):
                probs = probs + w * (jnp.asarray(support) == s.path_values[name])
            out[name] = probs
        for w, s in zip(weights, scorers):
            found = {
                **s.plates.responsibilities(),
                **{k: _marginals_of(d, v) for k, (d, v) in s.chains.items()},
            }
            for name, probs in found.items():
                out[name] = out.get(name, 0.0) + w * probs
        return _in_model_order(scorers[0], out)
