"""`PinnedModel`: a joint distribution conditioned on observed values (an unnormalized posterior).

Its free continuous variables are the parameters inference works on.  Free finite discrete variables
are summed out exactly, so the density is a smooth function of the continuous parameters only.  On
unconstrained space (each support mapped to all reals by :func:`coromix.transforms.biject_to`)::

    log p~(u) = log p(x = T(u), observed) + log |det dT/du|
"""

from __future__ import annotations

import difflib
from collections.abc import Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from coromix import scoring, transforms
from coromix.runner import Values
from coromix.utils import as_key, is_concrete

if TYPE_CHECKING:
    from coromix.joint import JointDistributionCoroutine


class PinnedModel:
    """``p(free variables | observed)`` up to a constant.

    Made by :meth:`JointDistributionCoroutine.pin <coromix.joint.JointDistributionCoroutine.pin>`.

    Example: a normal with unknown mean and scale, and one observation.

    >>> import math
    >>> import coromix.distributions as tfd
    >>> def model():
    ...     mu = yield tfd.Normal(0.0, 1.0)
    ...     s = yield tfd.HalfNormal(1.0)
    ...     x = yield tfd.Normal(mu, s)
    >>> posterior = tfd.JointDistributionCoroutine(model).pin(x=0.5)
    >>> posterior
    PinnedModel(model, observed=['x'], parameters=['mu', 's'])
    >>> u = posterior.init(seed=0)                       # a point in unconstrained space
    >>> posterior.to_constrained(u)                      # Values in the model's own space
    Values(mu: float32[], s: float32[])
    >>> u = {"mu": 0.0, "s": math.log(2.0)}              # s = exp(u["s"]) = 2
    >>> posterior.unconstrained_log_prob(u)              # what NUTS evaluates
    Array(-4.0949, dtype=float32)

    In closed form, ``log N(0; 0, 1) + log HalfNormal(2; 1) + log N(0.5; 0, 2) + log 2``, the last
    term the log-Jacobian of ``s = exp(u)``:

    >>> def log_normal(x, loc, scale):
    ...     return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale * math.sqrt(2 * math.pi))
    >>> log_half_normal = math.log(2.0) + log_normal(2.0, 0.0, 1.0)   # HalfNormal(1) at s = 2
    >>> log_normal(0.0, 0.0, 1.0) + log_half_normal + log_normal(0.5, 0.0, 2.0) + math.log(2.0)
    -4.0949...
    """

    def __init__(self, joint: JointDistributionCoroutine, observed: Mapping[str, Any]) -> None:
        self.joint = joint
        shapes = joint.event_shapes()
        unknown = [k for k in observed if k not in shapes]
        if unknown:
            raise ValueError(
                f"observed values: no variable named {unknown} in model {joint.name!r}; its "
                f"variables are {list(shapes)}{_did_you_mean(unknown, shapes)}"
            )
        observed = {k: _as_numbers(k, v) for k, v in observed.items()}
        batch, arrays = scoring.check_values(shapes, observed)
        if batch:
            k, v = next(
                (k, v)
                for k, v in arrays.items()
                if any(
                    x.shape != s.shape
                    for x, s in zip(
                        jax.tree_util.tree_leaves(v), jax.tree_util.tree_leaves(shapes[k])
                    )
                )
            )
            got = jax.tree_util.tree_map(jnp.shape, v)
            want = jax.tree_util.tree_map(lambda s: s.shape, shapes[k])
            raise ValueError(
                f"observed value for {k!r} has shape {got}; pin() takes one draw's shape {want}"
            )
        self.observed = arrays
        self._parameters: dict[str, tuple[tuple[int, ...], Any]] | None = None
        if all(is_concrete(x) for x in jax.tree_util.tree_leaves(arrays)):
            self.parameter_info()  # its run of the model checks the observed values

    def _check_observed(self, sites: list[tuple[str, Any]]) -> None:
        """NaN or values outside the support in concrete observed values: an error naming the
        variable and the rows (indices along the first axis).

        ``sites``: (name, distribution) of the observed variables, from an abstract run of the
        model.  A distribution with a ``mask`` (missing observations) checks its own values.
        """
        for name, dist in sites:
            value = self.observed[name]
            if getattr(dist, "mask", None) is not None:
                continue
            leaves = value.items() if isinstance(value, Mapping) else [(None, value)]
            for part, leaf in leaves:
                label = repr(name) if part is None else f"{name}[{part!r}]"
                if not _host_readable(leaf):
                    continue
                if jnp.issubdtype(leaf.dtype, jnp.inexact) and np.isnan(leaf).any():
                    raise ValueError(
                        f"observed value for {label} has NaN {_rows(np.isnan(leaf))}; coromix "
                        f"does not skip missing values: drop those rows, or give the model a "
                        f"mask of the missing observations where its distribution takes one"
                    )
            if (
                isinstance(value, Mapping)
                or not _host_readable(value)
                or not getattr(dist, "validate_args", True)
            ):
                continue
            try:
                found = dist.outside_support(value)
            except (TypeError, ValueError, jax.errors.UnexpectedTracerError):
                found = None  # a support that cannot be checked outside the model's run
            if found is not None and found[1].any():
                constraint, bad = found
                shown = ", ".join(
                    str(np.asarray(value)[tuple(i)]) for i in np.argwhere(bad)[:_ROWS_SHOWN]
                )
                raise ValueError(
                    f"observed value for {name!r} is outside the support of its "
                    f"{type(dist).__name__} ({constraint}) {_rows(bad)}: {shown}"
                    f"{', ...' if bad.sum() > _ROWS_SHOWN else ''}"
                )

    def __repr__(self) -> str:
        return (
            f"PinnedModel({self.joint.name}, observed={list(self.observed)}, "
            f"parameters={list(self.parameter_shapes)})"
        )

    @property
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Unconstrained shape of each free continuous variable, in model order.

        >>> import coromix.distributions as tfd
        >>> posterior = tfd.JointDistributionCoroutine(_model).pin(x=0.5)  # the class's model
        >>> posterior.parameter_shapes
        {'mu': (), 's': ()}
        """
        return {k: s for k, (s, _) in self.parameter_info().items()}

    def parameter_info(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        """``name -> (unconstrained shape, dtype)`` of each free continuous variable, in model order.

        >>> import coromix.distributions as tfd
        >>> posterior = tfd.JointDistributionCoroutine(_model).pin(x=0.5)  # the class's model
        >>> {k: (shape, str(dtype)) for k, (shape, dtype) in posterior.parameter_info().items()}
        {'mu': ((), 'float32'), 's': ((), 'float32')}
        """
        if self._parameters is None:
            observed_sites: list[tuple[str, Any]] = []

            def trace(key: jax.Array) -> Values:
                draw = scoring.sample(self.joint.model, key, self.observed, self.joint.max_paths)
                info = Values()
                for site in self._structure(dict(draw)).sites:
                    dist = site.distribution
                    if site.name in self.observed:
                        observed_sites.append((site.name, dist))
                    if site.name in self.observed or dist.is_discrete or dist.is_factor:
                        continue
                    bij = transforms.biject_to(site.distribution.support)
                    info[site.name] = bij.inverse(jnp.asarray(site.value))
                return info

            abstract = jax.eval_shape(trace, jax.random.key(0))
            self._check_observed(observed_sites)
            self._parameters = {k: (v.shape, v.dtype) for k, v in abstract.items()}
        return self._parameters

    def _structure(
        self, values: Mapping[str, Any], unconstrained: Mapping[str, Any] | None = None
    ) -> scoring.Run:
        """A scoring run at the first path (its sites' distributions and values)."""
        return scoring.structure(self.joint.model, values, unconstrained, self.joint.max_paths)

    def _split(
        self,
        values: Mapping[str, Any],
        shapes: Mapping[str, tuple[int, ...]] | None = None,
        batch: bool = False,
    ) -> dict[str, Any]:
        """``values`` checked: one for each free continuous variable, each of its shape in one
        draw (``shapes``, default the unconstrained ones), after leading dims with ``batch``."""
        names = self.parameter_shapes
        missing = [k for k in names if k not in values]
        extra = [k for k in values if k not in names]
        if missing or extra:
            hint = _did_you_mean(extra, names) if extra else ""
            raise ValueError(
                f"expected values for the free continuous variables {list(names)}; "
                f"missing {missing}, unexpected {extra}{hint}"
            )
        shapes = names if shapes is None else shapes
        for k, v in values.items():
            got, want = tuple(jnp.shape(v)), tuple(shapes[k])
            if got != want and not (batch and got[len(got) - len(want) :] == want):
                raise ValueError(
                    f"value for {k!r} has shape {got}; expected shape {want} (one draw of "
                    f"model {self.joint.name!r})" + (", after optional batch dims" if batch else "")
                )
        return dict(values)

    def unnormalized_log_prob(self, values: Mapping[str, Any]) -> jax.Array:
        """``log p(values, observed)`` with free discrete variables summed out (constrained space).

        >>> import coromix.distributions as tfd
        >>> posterior = tfd.JointDistributionCoroutine(_model).pin(x=0.5)  # the class's model
        >>> posterior.unnormalized_log_prob({"mu": 0.0, "s": 2.0})
        Array(-4.7881, dtype=float32)

        In closed form, ``log N(0; 0, 1) + log HalfNormal(2; 1) + log N(0.5; 0, 2)``:

        >>> import math
        >>> def log_normal(x, loc, scale):
        ...     return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale * math.sqrt(2 * math.pi))
        >>> log_half_normal = math.log(2.0) + log_normal(2.0, 0.0, 1.0)   # HalfNormal(1) at s = 2
        >>> log_normal(0.0, 0.0, 1.0) + log_half_normal + log_normal(0.5, 0.0, 2.0)
        -4.7881...
        """
        events = self.joint.event_shapes()
        values = self._split(values, {k: events[k].shape for k in self.parameter_shapes}, True)
        return self.joint.log_prob({**self.observed, **values})

    def unconstrained_log_prob(self, unconstrained: Mapping[str, Any]) -> jax.Array:
        """Log density on unconstrained space (with the log-det-Jacobian): what NUTS samples.

        >>> import math
        >>> import coromix.distributions as tfd
        >>> posterior = tfd.JointDistributionCoroutine(_model).pin(x=0.5)  # the class's model
        >>> posterior.unconstrained_log_prob({"mu": 0.0, "s": math.log(2.0)})
        Array(-4.0949, dtype=float32)

        That is :meth:`unnormalized_log_prob` at ``s = 2`` plus ``log |ds/du| = log 2``:

        >>> float(posterior.unnormalized_log_prob({"mu": 0.0, "s": 2.0})) + math.log(2.0)
        -4.0949...
        """
        u = self._split(unconstrained)
        return scoring.log_density(self.joint.model, self.observed, u, self.joint.max_paths)

    def unconstrained_log_prior(self, unconstrained: Mapping[str, Any]) -> jax.Array:
        """Log prior density of the parameters on unconstrained space (with the log-det-Jacobian).

        The density of the free variables with the observed variables' terms left out, the free
        discrete choices summed out: ``log p(theta) = log sum_z p(z, theta)`` over the paths and
        plates of ``z``, given the observed values only where the model conditions on them
        before drawing a parameter.  For a mixture, the component terms of each point sum to 1
        once its observation is left out; for an observed ``HiddenMarkovModel`` (or
        ``RegimeSwitching``) the parameters' own prior is left.  The log-likelihood that tempered
        SMC raises to a power is ``unconstrained_log_prob(u) - unconstrained_log_prior(u)``
        (both at once: :meth:`unconstrained_log_prior_and_prob`).

        >>> import math
        >>> import coromix.distributions as tfd
        >>> posterior = tfd.JointDistributionCoroutine(_model).pin(x=0.5)  # the class's model
        >>> posterior.unconstrained_log_prior({"mu": 0.0, "s": math.log(2.0)})
        Array(-2.4516, dtype=float32)

        In closed form, ``log N(0; 0, 1) + log HalfNormal(2; 1) + log 2`` (no term for ``x``):

        >>> def log_normal(x, loc, scale):
        ...     return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale * math.sqrt(2 * math.pi))
        >>> log_half_normal = math.log(2.0) + log_normal(2.0, 0.0, 1.0)   # HalfNormal(1) at s = 2
        >>> log_normal(0.0, 0.0, 1.0) + log_half_normal + math.log(2.0)
        -2.4515...
        """
        return self.unconstrained_log_prior_and_prob(unconstrained)[0]

    def unconstrained_log_prior_and_prob(
        self, unconstrained: Mapping[str, Any]
    ) -> tuple[jax.Array, jax.Array]:
        """``(unconstrained_log_prior(u), unconstrained_log_prob(u))`` from one run of the model.

        >>> import math
        >>> import coromix.distributions as tfd
        >>> posterior = tfd.JointDistributionCoroutine(_model).pin(x=0.5)  # the class's model
        >>> u = {"mu": 0.0, "s": math.log(2.0)}
        >>> posterior.unconstrained_log_prior_and_prob(u)
        (Array(-2.4516, dtype=float32), Array(-4.0949, dtype=float32))
        >>> float(posterior.unconstrained_log_prior(u)), float(posterior.unconstrained_log_prob(u))
        (-2.4516, -4.0949)
        """
        u = self._split(unconstrained)
        return scoring.prior_and_joint(
            self.joint.model, self.observed, u, list(self.observed), self.joint.max_paths
        )

    def to_constrained(self, unconstrained: Mapping[str, Any]) -> Values:
        """Map unconstrained parameters to the model's variables (a run of the model).

        >>> import math
        >>> import coromix.distributions as tfd
        >>> posterior = tfd.JointDistributionCoroutine(_model).pin(x=0.5)  # the class's model
        >>> values = posterior.to_constrained({"mu": 0.5, "s": math.log(2.0)})
        >>> values
        Values(mu: float32[], s: float32[])
        >>> {k: float(v) for k, v in values.items()}        # mu: the identity; s = exp(u)
        {'mu': 0.5, 's': 2.0}
        """
        u = self._split(unconstrained)
        run = self._structure(self.observed, u)
        return Values((k, run.values[k]) for k in self.parameter_shapes)

    def to_unconstrained(self, values: Mapping[str, Any]) -> dict[str, jax.Array]:
        """Inverse of :meth:`to_constrained`.

        >>> import coromix.distributions as tfd
        >>> posterior = tfd.JointDistributionCoroutine(_model).pin(x=0.5)  # the class's model
        >>> u = posterior.to_unconstrained({"mu": 0.5, "s": 2.0})
        >>> {k: float(v) for k, v in u.items()}             # u = log s = log 2
        {'mu': 0.5, 's': 0.6931}
        """
        events = self.joint.event_shapes()
        values = self._split(values, {k: events[k].shape for k in self.parameter_shapes})
        scorer = self._structure({**self.observed, **values})
        return {
            s.name: transforms.biject_to(s.distribution.support).inverse(
                jnp.asarray(values[s.name])
            )
            for s in scorer.sites
            if s.name in values
        }

    def prior_draw(self, seed: Any = None) -> dict[str, jax.Array]:
        """A draw of the parameters from the prior (given the observed values), unconstrained.

        >>> import coromix.distributions as tfd
        >>> posterior = tfd.JointDistributionCoroutine(_model).pin(x=0.5)  # the class's model
        >>> u = posterior.prior_draw(seed=0)
        >>> {k: v.shape for k, v in u.items()}
        {'mu': (), 's': ()}
        >>> values = posterior.to_constrained(u)            # back through s = exp(u)
        >>> bool(abs(values["s"] - jnp.exp(u["s"])) < 1e-6), bool(values["s"] > 0)
        (True, True)
        """
        draw = scoring.sample(self.joint.model, as_key(seed), self.observed, self.joint.max_paths)
        return self.to_unconstrained({k: draw[k] for k in self.parameter_shapes})

    def init(self, seed: Any = None, *, radius: float = 2.0) -> dict[str, jax.Array]:
        """A starting point: uniform in ``(-radius, radius)`` on unconstrained space (Stan's default).

        >>> import coromix.distributions as tfd
        >>> posterior = tfd.JointDistributionCoroutine(_model).pin(x=0.5)  # the class's model
        >>> u = posterior.init(seed=0, radius=0.5)
        >>> sorted(u), all(-0.5 < float(v) < 0.5 for v in u.values())
        (['mu', 's'], True)
        """
        key = as_key(seed)
        info = self.parameter_info()
        keys = jax.random.split(key, max(len(info), 1))
        return {
            k: jax.random.uniform(kk, shape, dtype, -radius, radius)
            for kk, (k, (shape, dtype)) in zip(keys, info.items())
        }


# Rows named in an error about observed values before the rest are only counted.
_ROWS_SHOWN = 10


def _rows(flags: np.ndarray) -> str:
    """Where ``flags`` is true, as rows (indices along the first axis).

    >>> _rows(np.array([False, True, True])), _rows(np.array(True))
    ('at rows [1, 2] (2 of 3)', '(the value)')
    """
    flags = np.asarray(flags)
    if flags.ndim == 0:
        return "(the value)"
    rows = np.flatnonzero(flags.reshape(len(flags), -1).any(axis=1))
    shown = ", ".join(map(str, rows[:_ROWS_SHOWN])) + (", ..." if len(rows) > _ROWS_SHOWN else "")
    return f"at rows [{shown}] ({len(rows)} of {len(flags)})"


def _host_readable(x: Any) -> bool:
    """Concrete and held whole by this process (not a tracer, nor an array sharded over hosts).

    >>> _host_readable(jnp.zeros(3))
    True
    """
    return is_concrete(x) and getattr(x, "is_fully_addressable", True)


def _as_numbers(name: str, value: Any) -> Any:
    """An observed value as JAX arrays (a mapping: each entry), or a ``TypeError`` naming it.

    >>> _as_numbers("x", [1.0, None])
    Traceback (most recent call last):
    ...
    TypeError: observed value for 'x' must be a number or an array of numbers; got list [1.0, None]
    """
    if isinstance(value, Mapping):
        return {k: _as_numbers(f"{name}[{k!r}]", v) for k, v in value.items()}
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError(value)
        array = jnp.asarray(value)
    except (TypeError, ValueError):
        array = None
    if array is None or not (
        jnp.issubdtype(array.dtype, jnp.number) or jnp.issubdtype(array.dtype, jnp.bool_)
    ):
        label = repr(name) if "[" not in name else name
        raise TypeError(
            f"observed value for {label} must be a number or an array of numbers; got "
            f"{type(value).__name__} {value!r:.60}"
        )
    return array


def _did_you_mean(unknown: list[str], names: Iterable[str]) -> str:
    """``"; did you mean 'mu'?"`` for the closest known names, or ``""``.

    >>> _did_you_mean(["muu"], ["mu", "sigma"])
    "; did you mean 'mu'?"
    """
    close = [m for k in unknown for m in difflib.get_close_matches(k, list(names), n=1)]
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""


def _model() -> Generator[Any, Any, None]:
    """The model of the class docstring, for the methods' doctests.

    >>> import coromix.distributions as tfd
    >>> tfd.JointDistributionCoroutine(_model).variable_names
    ['mu', 's', 'x']
    """
    from coromix.distributions import HalfNormal, Normal

    mu = yield Normal(0.0, 1.0)
    s = yield HalfNormal(1.0)
    x = yield Normal(mu, s)
