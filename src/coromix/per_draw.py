"""Quantities computed from a model at every posterior draw: plain functions over arrays.

Each function takes the model (a ``JointDistributionCoroutine``), the draws ``samples`` (name ->
array ``(chain, draw, *shape)`` of the continuous variables) and the ``observed`` values, and
returns name -> array ``(chain, draw, ...)``.  :class:`coromix.Posterior` stores the draws and
delegates its per-draw methods here; these functions call only public methods of the model.

With ``theta`` a draw of the continuous variables, ``z`` the free discrete ones and ``y`` the
observed ones:

* :func:`log_likelihood`: ``log p(y_i | theta)``, ``z`` summed out, per observation ``i``;
* :func:`discrete_posterior`: ``p(z = k | theta, y)``;
* :func:`sample_discrete`: a draw ``z ~ p(z | theta, y)``;
* :func:`discrete_mode`: ``argmax_z p(z | theta, y)``;
* :func:`posterior_predictive`: replicated data ``y_rep ~ p(y | theta)``;
* :func:`forecast`: regime probabilities and predictive draws ``h`` steps past the data;
* :func:`prior_predictive`: ``(theta, z, y) ~ p(theta) p(z | theta) p(y | theta, z)``;
* :func:`unconstrained`: ``theta`` mapped to the unconstrained space NUTS moves on;
* :func:`component_axes`: the axes of a mixture's components the model is symmetric in.

:func:`map_draws` runs a function of one draw at every draw, vectorized over chunks of draws.

Example: the responsibilities of a two-component mixture at one draw.

>>> import jax.numpy as jnp, numpy as np
>>> import coromix as cm
>>> tfd = cm.distributions
>>> def model():
...     mu = yield tfd.Normal(jnp.array([-1.0, 1.0]), 1.0)
...     z = yield tfd.Categorical(probs=jnp.full((3, 2), 0.5))
...     y = yield tfd.Normal(mu[z], 1.0)
>>> jd = tfd.JointDistributionCoroutine(model)
>>> samples = {"mu": np.array([[[-1.0, 1.0]]])}          # 1 chain x 1 draw
>>> observed = {"y": np.array([-1.0, 0.0, 1.0])}
>>> discrete_posterior(jd, samples, observed)["z"][0, 0, :, 0].tolist()
[0.881, 0.5, 0.119]
"""

from __future__ import annotations

import inspect
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from coromix import labels, scoring
from coromix.distributions.markov_chain import MarkovChain
from coromix.runner import Values
from coromix.utils import as_key

if TYPE_CHECKING:
    from coromix.joint import JointDistributionCoroutine
    from coromix.pinned import PinnedModel

__all__ = [
    "best_draw",
    "component_axes",
    "discrete_mode",
    "discrete_posterior",
    "draw_indices",
    "forecast",
    "log_likelihood",
    "map_draws",
    "posterior_predictive",
    "prior_predictive",
    "regime_sites",
    "sample_discrete",
    "unconstrained",
]

# Numbers of discrete posterior computed in one vectorized chunk of draws (bounds the memory used).
_CHUNK_ELEMENTS = 2**22


def map_draws(
    fn: Callable[[dict[str, jax.Array], jax.Array], Mapping[str, jax.Array]],
    samples: Mapping[str, np.ndarray],
    seed: Any = None,
    work_per_draw: int = 0,
) -> Values:
    """``fn(draw, key)`` at every ``(chain, draw)``, vectorized over chunks of draws.

    ``draw``: name -> the values of one draw; ``key``: a JAX key of its own per draw (split from
    ``seed``).  The chunk size bounds the memory used: about ``2**22`` elements per chunk, counting
    per draw the larger of ``fn``'s output and ``work_per_draw`` (the elements its evaluation
    holds, when they far exceed its output); the result keeps the leading ``(chain, draw)`` dims.

    >>> import numpy as np
    >>> out = map_draws(lambda d, key: {"square": d["x"] ** 2}, {"x": np.arange(6.0).reshape(2, 3)})
    >>> out["square"].tolist()
    [[0.0, 1.0, 4.0], [9.0, 16.0, 25.0]]
    """
    leading = next(iter(samples.values())).shape[:2]
    total = math.prod(leading)
    flat = {k: jnp.asarray(v).reshape((total,) + v.shape[2:]) for k, v in samples.items()}
    keys = jax.random.split(as_key(seed), total)
    shapes = jax.eval_shape(fn, {k: v[0] for k, v in flat.items()}, keys[0])
    if not shapes:
        return Values()
    per_draw = sum(math.prod(s.shape) for s in jax.tree_util.tree_leaves(shapes))
    per_draw = max(per_draw, work_per_draw)
    largest = max(1, min(total, _CHUNK_ELEMENTS // max(per_draw, 1)))
    # chunks of equal size (the last draw repeated to fill them): one compiled body, no remainder
    chunks = -(-total // largest)
    batch_size = -(-total // chunks)
    padded = chunks * batch_size
    if padded > total:
        flat, keys = jax.tree_util.tree_map(
            lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], padded - total, axis=0)]),
            (flat, keys),
        )
    out = jax.jit(lambda f, k: jax.lax.map(lambda a: fn(*a), (f, k), batch_size=batch_size))(
        flat, keys
    )
    return Values(
        (
            k,
            jax.tree_util.tree_map(
                lambda x: np.asarray(x[:total]).reshape(leading + x.shape[1:]), v
            ),
        )
        for k, v in out.items()
    )


def _with(observed: Mapping[str, Any], draw: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """The values of one draw together with the observed ones (the draw wins)."""
    return {**{k: jax.tree_util.tree_map(jnp.asarray, v) for k, v in observed.items()}, **draw}


def discrete_posterior(
    model: JointDistributionCoroutine,
    samples: Mapping[str, np.ndarray],
    observed: Mapping[str, Any],
) -> Values:
    """Exact ``p(discrete variable | draw, observed)`` at every draw.

    For a free discrete variable ``z`` with support ``{0, ..., K-1}`` and continuous values
    ``theta``::

        p(z = k | theta, y) = p(z = k, theta, y) / sum_j p(z = j, theta, y)

    name -> array ``(chain, draw, *S, K)``: for each of the variable's ``S`` elements, the
    probabilities of its ``K`` values (responsibilities, for a mixture's component; smoothed regime
    probabilities, ``(chain, draw, T, K)``, for a chain of regimes).  Empty when the model has no
    free discrete variable.

    >>> import jax.numpy as jnp, numpy as np
    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> def model():
    ...     mu = yield tfd.Normal(jnp.array([-1.0, 1.0]), 1.0)
    ...     z = yield tfd.Categorical(probs=jnp.full((3, 2), 0.5))
    ...     y = yield tfd.Normal(mu[z], 1.0)
    >>> jd = tfd.JointDistributionCoroutine(model)
    >>> probs = discrete_posterior(jd, {"mu": np.zeros((2, 4, 2))}, {"y": np.zeros(3)})
    >>> probs["z"].shape, float(probs["z"].sum(-1).min())
    ((2, 4, 3, 2), 1.0)
    """
    return map_draws(lambda draw, _: model.discrete_posterior(_with(observed, draw)), samples)


def sample_discrete(
    model: JointDistributionCoroutine,
    samples: Mapping[str, np.ndarray],
    observed: Mapping[str, Any],
    seed: Any = 0,
) -> Values:
    """One draw ``z ~ p(z | theta, y)`` of every free discrete variable per posterior draw.

    name -> array ``(chain, draw, *S)``; chains of regimes by forward filtering, backward
    sampling.  With ``theta`` from the posterior these are draws from the joint posterior
    ``p(theta, z | y)``.

    >>> import jax.numpy as jnp, numpy as np
    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> def model():
    ...     mu = yield tfd.Normal(jnp.array([-1.0, 1.0]), 1.0)
    ...     z = yield tfd.Categorical(probs=jnp.full((3, 2), 0.5))
    ...     y = yield tfd.Normal(mu[z], 0.01)
    >>> jd = tfd.JointDistributionCoroutine(model)
    >>> samples = {"mu": np.array([[[-1.0, 1.0]]])}
    >>> sample_discrete(jd, samples, {"y": np.array([1.0, -1.0, 1.0])}, seed=1)["z"].tolist()
    [[[1, 0, 1]]]
    """
    return map_draws(
        lambda draw, key: model.sample_discrete(_with(observed, draw), seed=key), samples, seed
    )


def discrete_mode(
    model: JointDistributionCoroutine,
    samples: Mapping[str, np.ndarray],
    observed: Mapping[str, Any],
) -> Values:
    """The most probable discrete values ``argmax_z p(z | theta, y)`` at every draw.

    name -> array ``(chain, draw, *S)``: per element for independent choices (the most responsible
    component), the Viterbi path for a chain of regimes.

    >>> import jax.numpy as jnp, numpy as np
    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> def model():
    ...     mu = yield tfd.Normal(jnp.array([-1.0, 1.0]), 1.0)
    ...     z = yield tfd.Categorical(probs=jnp.full((3, 2), 0.5))
    ...     y = yield tfd.Normal(mu[z], 1.0)
    >>> jd = tfd.JointDistributionCoroutine(model)
    >>> samples = {"mu": np.array([[[-1.0, 1.0]]])}
    >>> discrete_mode(jd, samples, {"y": np.array([0.5, -2.0, 3.0])})["z"].tolist()
    [[[1, 0, 1]]]
    """
    return map_draws(lambda draw, _: model.discrete_mode(_with(observed, draw)), samples)


def log_likelihood(
    model: JointDistributionCoroutine,
    samples: Mapping[str, np.ndarray],
    observed: Mapping[str, Any],
) -> Values:
    """Pointwise log-likelihood of the observed variables at every draw, for ``az.loo``/``az.waic``.

    Per observation ``i``, with the free discrete variables ``z`` summed out::

        log p(y_i | theta) = log sum_k p(z_i = k | theta) p(y_i | z_i = k, theta)

    name -> array ``(chain, draw, *observation dims)``; see
    ``JointDistributionCoroutine.pointwise_log_likelihood`` for what counts as one observation (a
    whole series for a chain of regimes).  Empty when nothing is observed.

    >>> import jax.numpy as jnp, numpy as np
    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> def model():
    ...     mu = yield tfd.Normal(jnp.array([-1.0, 1.0]), 1.0)
    ...     z = yield tfd.Categorical(probs=jnp.full((3, 2), 0.5))
    ...     y = yield tfd.Normal(mu[z], 1.0)
    >>> jd = tfd.JointDistributionCoroutine(model)
    >>> samples = {"mu": np.array([[[0.0, 0.0]]])}  # both components N(0, 1)
    >>> ll = log_likelihood(jd, samples, {"y": np.array([0.0, 1.0, 2.0])})
    >>> ll["y"][0, 0].tolist()                      # log N(y_i; 0, 1)
    [-0.919, -1.419, -2.919]
    """
    if not observed:
        return Values()
    names = list(observed)
    return map_draws(
        lambda draw, _: model.pointwise_log_likelihood(_with(observed, draw), observed=names),
        samples,
    )


def draw_indices(num_draws_per_chain: int, num_draws: int | None) -> np.ndarray:
    """The indices of ``num_draws`` evenly spaced draws of a chain (all of them for ``None``).

    >>> draw_indices(10, 4).tolist(), draw_indices(3, None).tolist(), draw_indices(3, 8).tolist()
    ([0, 3, 6, 9], [0, 1, 2], [0, 1, 2])
    >>> draw_indices(3, 0)
    Traceback (most recent call last):
    ...
    ValueError: num_draws must be None or an integer >= 1; got 0
    """
    if num_draws is not None and (not isinstance(num_draws, (int, np.integer)) or num_draws < 1):
        raise ValueError(f"num_draws must be None or an integer >= 1; got {num_draws!r}")
    if num_draws is None or num_draws >= num_draws_per_chain:
        return np.arange(num_draws_per_chain)
    return np.unique(np.linspace(0, num_draws_per_chain - 1, num_draws).astype(int))


def posterior_predictive(
    model: JointDistributionCoroutine,
    samples: Mapping[str, np.ndarray],
    names: Sequence[str],
    num_draws: int | None = None,
    seed: Any = 0,
) -> Values:
    """Replicated data: the variables ``names`` drawn from the model at posterior draws.

    ``y_rep ~ p(y | theta) = sum_z p(z | theta) p(y | z, theta)`` with ``theta`` a posterior draw
    and the discrete choices drawn afresh from their prior given ``theta`` (new data, new choices).
    name -> array ``(chain, draw, *shape)``, at every draw, or at ``num_draws`` evenly spaced draws
    of each chain (:func:`draw_indices`).

    >>> import jax.numpy as jnp, numpy as np
    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> def model():
    ...     mu = yield tfd.Normal(0.0, 1.0)
    ...     y = yield tfd.Normal(jnp.full(3, mu), 0.001)
    >>> jd = tfd.JointDistributionCoroutine(model)
    >>> samples = {"mu": np.array([[10.0, 20.0, 30.0]])}
    >>> rep = posterior_predictive(jd, samples, ["y"], num_draws=2)["y"]
    >>> rep.shape, rep.round().tolist()
    ((1, 2, 3), [[[10.0, 10.0, 10.0], [30.0, 30.0, 30.0]]])
    """
    names = list(names)
    leading = next(iter(samples.values())).shape[1]
    which = draw_indices(leading, num_draws)
    if len(which) < leading:
        samples = {k: np.asarray(v)[:, which] for k, v in samples.items()}

    def replicate(draw: dict[str, jax.Array], key: jax.Array) -> Values:
        values = model.sample(seed=key, value=draw)
        return Values((n, values[n]) for n in names)

    return map_draws(replicate, samples, seed)


def forecast(
    model: JointDistributionCoroutine,
    samples: Mapping[str, np.ndarray],
    observed: Mapping[str, Any],
    num_steps: int,
    inputs: Any = None,
    seed: Any = 0,
) -> Values:
    r"""Regime probabilities and predictive draws ``num_steps`` past the data, at every draw.

    For each *regime site* (a ``HiddenMarkovModel``, ``HiddenSemiMarkovModel`` or
    ``RegimeSwitching`` variable ``y`` with an observed series ``y_{1:T}``) and each draw
    ``theta``, the site's own ``forecast`` method gives

    * ``p(s_{T+h} = k | y_{1:T}, theta)``, ``h = 1..num_steps``: the filtered probabilities at
      ``T`` carried forward by the transitions (for an HMM, ``filtered_T @ A^h``), reported as
      ``(chain, draw, h, K)`` under the key of :func:`discrete_posterior` (``f"{y}_{regime}"``);
      exact when the transitions do not read the observations (inputs may drive them); a step
      whose transitions read earlier observations has them carried along the drawn path (see
      ``RegimeSwitching.forecast``);
    * one predictive path ``y_{T+1:T+h} ~ p(. | y_{1:T}, theta)`` per draw, run step by step
      through the model's own step (AR terms and input-driven transitions included), under the
      site's name ``y``: ``(chain, draw, h, ...)``, or a mapping name -> ``(chain, draw, h, ...)``
      when the step yields several observations (as :func:`posterior_predictive` returns them).

    Over the draws these are samples of the posterior predictive ``p(y_{T+1:T+h} | y_{1:T})``
    and, averaged, ``p(s_{T+h} = k | y_{1:T})``.  Sites whose distribution reports expected
    durations (``RegimeSwitching.expected_durations``) add ``f"{y}_{regime}_duration"``
    ``(chain, draw, K)``: ``1 / (1 - p(s_T = k | s_{T-1} = k, ...))``, the expected duration of
    each regime under the transitions into the last observed step (geometric durations).

    ``inputs``: the future covariates of a ``RegimeSwitching`` step that reads them, leading dim
    ``num_steps``; with several regime sites, a mapping site name -> inputs.  A step fitted with
    ``inputs`` needs them here, and a clear error names the site otherwise.  Free scalar discrete
    choices besides the regime chains (a chain that depends on another choice) are not supported.

    >>> import jax.numpy as jnp, numpy as np
    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> A = jnp.array([[0.9, 0.1], [0.2, 0.8]])
    >>> def model():
    ...     mu = yield tfd.Normal(jnp.array([0.0, 30.0]), 1.0)
    ...     y = yield tfd.HiddenMarkovModel(tfd.Categorical(probs=[0.5, 0.5]),
    ...                                     tfd.Categorical(probs=A), tfd.Normal(mu, 1.0), 3)
    >>> jd = tfd.JointDistributionCoroutine(model)
    >>> samples = {"mu": np.array([[[0.0, 30.0]]])}           # 1 chain x 1 draw
    >>> out = forecast(jd, samples, {"y": np.array([30.0, 0.0, 0.0])}, num_steps=2)
    >>> out["y_states"][0, 0].round(3).tolist()              # [1, 0] @ A, [1, 0] @ A @ A
    [[0.9, 0.1], [0.83, 0.17]]
    >>> out["y"].shape                                       # (chain, draw, h)
    (1, 1, 2)
    """
    if not isinstance(num_steps, (int, np.integer)) or isinstance(num_steps, bool) or num_steps < 1:
        raise ValueError(f"forecast: num_steps must be an integer >= 1; got {num_steps!r}")
    num_steps = int(num_steps)

    def one(draw: dict[str, jax.Array], key: jax.Array) -> Values:
        sites = regime_sites(model, _with(observed, draw))
        site_inputs = _forecast_inputs(inputs, sites, num_steps)
        out = Values()
        for name, (regime_key, dist, value) in sites.items():
            site_key = jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)
            ahead = _site_forecast(name, dist, value, num_steps, site_inputs.get(name), site_key)
            out[regime_key] = ahead.probs
            out[name] = ahead.observations
            durations = getattr(dist, "expected_durations", None)
            if durations is not None and getattr(dist, "num_steps", 0) >= 2:  # a transition seen
                rows = durations(value)
                out[f"{regime_key}_duration"] = jnp.reshape(rows, (-1, rows.shape[-1]))[-1]
        return out

    # each draw runs a forward-backward pass over the observed series: its working memory, a few
    # arrays of T x (expanded) states per draw, dwarfs the forecast it returns
    series = sum(np.size(v) for v in jax.tree_util.tree_leaves(dict(observed)))
    return map_draws(one, samples, seed, work_per_draw=16 * series)


def regime_sites(
    model: JointDistributionCoroutine, values: Mapping[str, Any]
) -> dict[str, tuple[str, MarkovChain, Any]]:
    """The model's regime sites at ``values`` (one draw and the observed values), in model order.

    site name -> ``(key of its regimes in discrete_posterior, its distribution, its observed
    value)`` for every ``MarkovChain`` variable (``HiddenMarkovModel``, ``HiddenSemiMarkovModel``,
    ``RegimeSwitching``) whose value is given; from one scoring run of the model (:func:`coromix.scoring.structure`), so it
    works on traced values.  Raises ``ValueError`` when there is none, or when the model has free
    scalar discrete choices besides the chains (the chains' distributions would depend on them).

    >>> import jax.numpy as jnp
    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> def model():
    ...     mu = yield tfd.Normal(jnp.zeros(2), 1.0)
    ...     y = yield tfd.HiddenMarkovModel(tfd.Categorical(probs=[0.5, 0.5]),
    ...                                     tfd.Categorical(probs=[[0.9, 0.1], [0.2, 0.8]]),
    ...                                     tfd.Normal(mu, 1.0), num_steps=3)
    >>> sites = regime_sites(tfd.JointDistributionCoroutine(model),
    ...                      {"mu": jnp.zeros(2), "y": jnp.zeros(3)})
    >>> {name: (key, type(dist).__name__) for name, (key, dist, _) in sites.items()}
    {'y': ('y_states', 'HiddenMarkovModel')}
    """
    run = scoring.structure(model.model, values, None, model.max_paths)
    found = {}
    for site in run.sites:
        key = scoring.chain_key(site.name, site.distribution)
        if isinstance(site.distribution, MarkovChain) and key in run.chains:
            dist, value = run.chains[key]
            found[site.name] = (key, dist, value)
    if not found:
        raise ValueError(
            f"forecast needs a regime site: a HiddenMarkovModel, HiddenSemiMarkovModel or "
            f"RegimeSwitching variable with an observed series; the model {model.name!r} has none among its variables "
            f"{run.names} (observed: {[k for k in values if k in run.names]})"
        )
    if run.choice_values:
        raise ValueError(
            f"forecast: the model {model.name!r} has free scalar discrete choices "
            f"{list(run.choice_values)} besides its regime chains {list(found)}; forecasting "
            f"through them is not supported (give them values, or write them as regimes)"
        )
    return found


def _forecast_inputs(
    inputs: Any, sites: Mapping[str, tuple[str, MarkovChain, Any]], num_steps: int
) -> dict[str, Any]:
    """The future inputs per regime site: a mapping site name -> inputs, or one site's inputs."""
    names = list(sites)
    if inputs is None:
        return {}
    if isinstance(inputs, Mapping) and inputs and set(inputs) <= set(names):
        per_site = dict(inputs)
    elif len(names) == 1:
        per_site = {names[0]: inputs}
    else:
        raise ValueError(
            f"forecast: the model has several regime sites {names}; give inputs= as a mapping "
            f"site name -> future inputs (got {type(inputs).__name__}"
            + (f" with keys {list(inputs)})" if isinstance(inputs, Mapping) else ")")
        )
    for name, value in per_site.items():
        for leaf in jax.tree_util.tree_leaves(value):
            if jnp.ndim(leaf) < 1 or jnp.shape(leaf)[0] != num_steps:
                raise ValueError(
                    f"forecast: inputs= for the regime site {name!r} must have leading dim "
                    f"num_steps={num_steps} (one row per future step); got shape "
                    f"{jnp.shape(leaf)}"
                )
    return {k: jax.tree_util.tree_map(jnp.asarray, v) for k, v in per_site.items()}


def _site_forecast(
    name: str, dist: MarkovChain, value: Any, num_steps: int, inputs: Any, key: jax.Array
) -> Any:
    """``dist.forecast`` of one regime site, its errors naming the site (and ``inputs=`` when
    they are missing or not read)."""
    kind = type(dist).__name__
    takes_inputs = "inputs" in inspect.signature(dist.forecast).parameters
    if inputs is not None and not takes_inputs:
        raise ValueError(
            f"forecast: inputs= were given for the regime site {name!r}, a {kind}, whose steps "
            f"read no inputs; leave it out of inputs="
        )
    fitted_with_inputs = getattr(dist, "inputs", None) is not None
    if inputs is None and fitted_with_inputs:
        raise ValueError(
            f"forecast: the regime site {name!r} ({kind}) has a step that reads inputs (it was "
            f"fitted with inputs); give the future inputs of the {num_steps} steps as "
            f"post.forecast({num_steps}, inputs=...) (an array with leading dim {num_steps}, or "
            f"a mapping {{{name!r}: ...}})"
        )
    try:
        if takes_inputs:
            return dist.forecast(value, num_steps, inputs=inputs, seed=key)
        return dist.forecast(value, num_steps, seed=key)
    except jax.errors.JAXTypeError:
        raise  # JAX's own errors take other constructor arguments
    except (ValueError, TypeError) as err:
        raise type(err)(f"forecast of the regime site {name!r} ({kind}): {err}") from err


def prior_predictive(
    model: JointDistributionCoroutine, num_samples: int = 500, seed: Any = 0
) -> Values:
    """Draws of every variable from the prior, shaped ``(1, num_samples, ...)`` (one "chain").

    ``(theta, z, y) ~ p(theta) p(z | theta) p(y | theta, z)``: ancestral draws (``model.sample``),
    the parameters as ArviZ's ``prior`` group, the observed variables as ``prior_predictive``.

    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> def model():
    ...     mu = yield tfd.Normal(0.0, 1.0)
    ...     y = yield tfd.Normal(mu, 1.0)
    >>> draws = prior_predictive(tfd.JointDistributionCoroutine(model), num_samples=200)
    >>> list(draws), draws["y"].shape
    (['mu', 'y'], (1, 200))
    """
    draws = model.sample(num_samples, seed=seed)
    return Values((k, np.asarray(v)[None]) for k, v in draws.items())


def unconstrained(pinned: PinnedModel, samples: Mapping[str, np.ndarray]) -> Values:
    """The draws of a pinned model's continuous parameters mapped to unconstrained space.

    ``u = T^{-1}(theta)`` per draw, ``T`` the model's bijection from the unconstrained space NUTS
    moves on (``PinnedModel.to_unconstrained``); a value outside the support maps to a non-finite
    ``u``.  name -> array ``(chain, draw, *unconstrained shape)``, in the model's order.  Raises
    ``ValueError`` when ``samples`` lacks a parameter of the model.

    >>> import numpy as np
    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> def model():
    ...     sigma = yield tfd.HalfNormal(1.0)
    ...     y = yield tfd.Normal(0.0, sigma)
    >>> pinned = tfd.JointDistributionCoroutine(model).pin(y=0.5)
    >>> unconstrained(pinned, {"sigma": np.array([[1.0, np.e]])})["sigma"].tolist()  # log sigma
    [[0.0, 1.0]]
    """
    names = list(pinned.parameter_shapes)
    missing = [k for k in names if k not in samples]
    if missing:
        raise ValueError(
            f"the draws lack the model's parameters {missing} (their variables: "
            f"{list(samples)}); cannot map them to unconstrained space"
        )
    return map_draws(lambda draw, _: pinned.to_unconstrained(draw), {k: samples[k] for k in names})


def best_draw(
    samples: Mapping[str, np.ndarray], lp: np.ndarray | None = None
) -> dict[str, jax.Array]:
    """The draw with the highest finite log density ``lp`` (``(chain, draw)``); the first without.

    >>> import numpy as np
    >>> lp = np.array([[0.0, 3.0], [1.0, np.nan]])
    >>> float(best_draw({"mu": np.arange(4.0).reshape(2, 2)}, lp)["mu"])
    1.0
    """
    index: tuple[int, ...] = (0, 0)
    if lp is not None and np.any(np.isfinite(lp)):
        index = np.unravel_index(
            int(np.nanargmax(np.where(np.isfinite(lp), lp, np.nan))), np.shape(lp)
        )
    return {k: jnp.asarray(v[index]) for k, v in samples.items()}


def component_axes(
    model: JointDistributionCoroutine,
    draw: Mapping[str, Any],
    observed: Mapping[str, Any],
) -> dict[str, int]:
    """The variables that carry the component axis of a mixture, found from the model at ``draw``.

    name -> axis of one draw's shape: the variables whose axis of length ``K`` (the support size of
    a free discrete variable) the model is symmetric in, ``log p(pi(theta), y) = log p(theta, y)``
    for permutations ``pi`` of that axis, tested at ``draw`` (one draw's values; see
    :func:`coromix.labels.symmetric_components`).  Empty when the model has no free discrete
    variable or is symmetric in none.

    Example (a few seconds: it compiles the model's log density)::

        def model():
            w = yield tfd.Dirichlet(jnp.ones(2))
            mu = yield tfd.Normal(jnp.zeros(2), 5.0)
            z = yield tfd.Categorical(probs=jnp.broadcast_to(w, (4, 2)))
            y = yield tfd.Normal(mu[z], 1.0)

        draw = {"w": np.array([0.3, 0.7]), "mu": np.array([-1.0, 2.0])}
        component_axes(tfd.JointDistributionCoroutine(model), draw, {"y": y})  # {"w": 0, "mu": 0}
    """
    draw = {k: jnp.asarray(v) for k, v in draw.items()}
    sizes = [np.shape(p)[-1] for p in model.discrete_posterior(_with(observed, draw)).values()]
    if not sizes:
        return {}
    found = labels.symmetric_components(
        lambda values: model.log_prob(_with(observed, values)),
        {k: np.asarray(v) for k, v in draw.items()},
        sizes,
    )
    return {k: a for k, (a, _) in found.items()}
