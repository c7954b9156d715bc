"""`Posterior`: the draws of a fit, its sampler statistics, and their ArviZ views.

Every array has leading dims ``(chain, draw)``.  ArviZ is reached only through
:mod:`coromix._arviz`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from coromix import _arviz, labels
from coromix.model import Values
from coromix.utils import as_key

if TYPE_CHECKING:
    import arviz
    import pandas as pd

    from coromix.joint import JointDistributionCoroutine

#: Sampler statistics per draw, with ArviZ's standard names.
SAMPLE_STATS = (
    "diverging",
    "tree_depth",
    "n_steps",
    "acceptance_rate",
    "energy",
    "step_size",
    "lp",
)

# Numbers of discrete posterior computed in one vectorized chunk of draws (bounds the memory used).
_CHUNK_ELEMENTS = 2**22


class ConvergenceWarning(UserWarning):
    """The draws may not represent the posterior: high R-hat, low effective sample size, or
    divergent transitions."""


class Posterior:
    """Posterior draws of a model's free continuous variables, and how they were obtained.

    Attributes:
        samples: name -> array ``(chain, draw, *shape)`` in the model's own (constrained) space,
            in model order.
        unconstrained: the same draws on unconstrained space (what NUTS moved on).
        sample_stats: name -> array ``(chain, draw)``; see :data:`SAMPLE_STATS`.
        observed: the observed values the model was pinned to.
        model: the ``JointDistributionCoroutine`` (``None`` after :meth:`load` without ``model=``).
        attrs: settings and timings of the fit (stored in the NetCDF file).
    """

    def __init__(
        self,
        samples: Mapping[str, Any],
        *,
        unconstrained: Mapping[str, Any] | None = None,
        sample_stats: Mapping[str, Any] | None = None,
        observed: Mapping[str, Any] | None = None,
        model: JointDistributionCoroutine | None = None,
        attrs: Mapping[str, Any] | None = None,
    ):
        self.samples = Values((k, np.asarray(v)) for k, v in samples.items())
        if not self.samples:
            raise ValueError("a Posterior needs at least one sampled variable")
        shapes = {k: v.shape[:2] for k, v in self.samples.items()}
        if len(set(shapes.values())) != 1 or any(len(s) != 2 for s in shapes.values()):
            raise ValueError(
                f"every sampled variable needs the same leading (chain, draw) dims; got {shapes}"
            )
        self.unconstrained = Values((k, np.asarray(v)) for k, v in (unconstrained or {}).items())
        stats = dict(sample_stats or {})
        order = [k for k in SAMPLE_STATS if k in stats]
        order += [k for k in stats if k not in SAMPLE_STATS]
        self.sample_stats = {k: np.asarray(stats[k]) for k in order}
        self.observed = {k: np.asarray(v) for k, v in (observed or {}).items()}
        self.model = model
        self.attrs = dict(attrs or {})
        self._discrete_posterior: Values | None = None
        self._log_likelihood: Values | None = None
        self._posterior_predictive: Values | None = None
        self._predictive_settings: tuple[Any, ...] | None = None
        self._prior_predictive: Values | None = None
        self._component_axes: dict[str, int] | None = None

    @property
    def num_chains(self) -> int:
        return next(iter(self.samples.values())).shape[0]

    @property
    def num_draws(self) -> int:
        return next(iter(self.samples.values())).shape[1]

    @property
    def num_divergences(self) -> int:
        diverging = self.sample_stats.get("diverging")
        return int(np.sum(diverging)) if diverging is not None else 0

    @property
    def log_evidence(self) -> float | None:
        """``log p(observed)``, the log marginal likelihood estimated by :func:`coromix.smc`.

        ``None`` for fits that do not estimate it (NUTS).
        """
        value = self.attrs.get("log_evidence")
        return None if value is None else float(value)

    @property
    def log_evidence_se(self) -> float | None:
        """Monte Carlo standard error of :attr:`log_evidence` (NaN from one SMC run; else ``None``
        when there is no evidence estimate)."""
        value = self.attrs.get("log_evidence_se")
        return None if value is None else float(value)

    # --- quantities derived per draw ------------------------------------------------------------
    def _need_model(self, what: str) -> JointDistributionCoroutine:
        if self.model is None:
            raise ValueError(
                f"{what} needs the model; load the file with Posterior.load(path, model=jd)"
            )
        return self.model

    def _with_observed(self, draw: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        return {**{k: jnp.asarray(v) for k, v in self.observed.items()}, **draw}

    def discrete_posterior(self) -> Values:
        """Exact ``p(discrete variable | draw, observed)`` for every draw (computed once, kept).

        name -> array ``(chain, draw, *S, K)``: for each of the variable's ``S`` elements, the
        probabilities of its ``K`` support values (responsibilities, for a mixture's component;
        smoothed regime probabilities, ``(chain, draw, T, K)``, for a chain of regimes).  Empty
        when the model has no free discrete variables.
        """
        if self._discrete_posterior is None:
            model = self._need_model("the discrete posterior")
            self._discrete_posterior = _per_draw(
                lambda draw, _: model.discrete_posterior(self._with_observed(draw)), self.samples
            )
        return self._discrete_posterior

    def sample_discrete(self, seed: Any = 0) -> Values:
        """One draw of every free discrete variable per posterior draw, from its exact conditional.

        name -> array ``(chain, draw, *S)``; chains of regimes by forward filtering, backward
        sampling.  Together with :attr:`samples` these are draws from the joint posterior.

        Example::

            z = post.sample_discrete(seed=1)["z"]      # (chain, draw, N): a component per point
        """
        model = self._need_model("sampling the discrete variables")
        return _per_draw(
            lambda draw, key: model.sample_discrete(self._with_observed(draw), seed=key),
            self.samples,
            seed,
        )

    def discrete_mode(self) -> Values:
        """The most probable discrete values per draw (the Viterbi path for chains of regimes).

        name -> array ``(chain, draw, *S)``; see ``JointDistributionCoroutine.discrete_mode``.

        Example::

            path = post.discrete_mode()["y_states"]   # (chain, draw, T): Viterbi path per draw
        """
        model = self._need_model("the most probable discrete values")
        return _per_draw(
            lambda draw, _: model.discrete_mode(self._with_observed(draw)), self.samples
        )

    def log_likelihood(self) -> Values:
        """Pointwise log-likelihood of the observed variables at every draw (computed once, kept).

        name -> array ``(chain, draw, *observation dims)``: ``log p(y_i | draw)`` with the discrete
        variables summed out, as ``az.loo`` and ``az.waic`` need it; see
        ``JointDistributionCoroutine.pointwise_log_likelihood`` for what counts as one observation.
        Empty when nothing is observed.

        Example::

            post.log_likelihood()["y"].shape           # (chain, draw, N)
            az.loo(post.to_arviz())                    # reads the log_likelihood group
        """
        if self._log_likelihood is None:
            if not self.observed:
                self._log_likelihood = Values()
            else:
                model = self._need_model("the log-likelihood")
                names = list(self.observed)
                self._log_likelihood = _per_draw(
                    lambda draw, _: model.pointwise_log_likelihood(
                        self._with_observed(draw), observed=names
                    ),
                    self.samples,
                )
        return self._log_likelihood

    def posterior_predictive(self, num_draws: int | None = None, seed: Any = 0) -> Values:
        """Replicated data: the observed variables drawn from the model at posterior draws.

        ``y_rep ~ p(y | theta)`` with ``theta`` a posterior draw and the discrete choices drawn
        afresh from their prior given ``theta`` (new data, new choices).  name -> array
        ``(chain, draw, *shape)``, at every draw, or at ``num_draws`` evenly spaced draws of each
        chain (replicas of a large data set take memory).  The last result is kept and written as
        the ``posterior_predictive`` group of :meth:`to_arviz` (``az.plot_ppc`` reads it).

        Example::

            post = cm.nuts(model, observed={"y": y})
            y_rep = post.posterior_predictive(num_draws=100)["y"]   # (4, 100, N)
        """
        if num_draws is not None and (
            not isinstance(num_draws, (int, np.integer)) or num_draws < 1
        ):
            raise ValueError(f"num_draws must be None or an integer >= 1; got {num_draws!r}")
        count = self.num_draws if num_draws is None else min(num_draws, self.num_draws)
        kept = self._predictive_settings
        fresh = (count, seed if isinstance(seed, (int, np.integer)) else id(seed))
        # replicas read from a file serve any request for that many draws
        if not (
            self._posterior_predictive is not None
            and kept is not None
            and kept[0] == count
            and kept[1] in (fresh[1], "file")
        ):
            model = self._need_model("the posterior predictive")
            if not self.observed:
                raise ValueError(
                    "the posterior predictive draws the observed variables, and this fit has none"
                )
            names = list(self.observed)

            def replicate(draw, key):
                values = model.sample(seed=key, value=draw)
                return Values((n, values[n]) for n in names)

            samples = self.samples
            if num_draws is not None and num_draws < self.num_draws:
                which = np.unique(np.linspace(0, self.num_draws - 1, num_draws).astype(int))
                samples = Values((k, v[:, which]) for k, v in samples.items())
            self._posterior_predictive = _per_draw(replicate, samples, seed)
            self._predictive_settings = fresh
        return self._posterior_predictive

    def prior_predictive(self, num_samples: int = 500, seed: Any = 0) -> Values:
        """Draws of every variable from the prior (``jd.sample``), shaped ``(1, num_samples, ...)``.

        Computed once and kept; :meth:`to_arviz` writes the parameters as the ``prior`` group and
        the observed variables as ``prior_predictive``.

        Example::

            post.prior_predictive(200)["y"].shape      # (1, 200, N): data sets the prior implies
        """
        if self._prior_predictive is None:
            model = self._need_model("the prior predictive")
            draws = model.sample(num_samples, seed=seed)
            self._prior_predictive = Values((k, np.asarray(v)[None]) for k, v in draws.items())
        return self._prior_predictive

    # --- labels of mixture components ------------------------------------------------------------
    def component_axes(self) -> dict[str, int]:
        """The variables that carry the component axis of a mixture, found from the model.

        name -> axis of one draw's shape: the variables whose axis of length ``K`` (the support
        size of a free discrete variable) the model is symmetric in, tested at the draw with the
        highest log density (see :func:`coromix.labels.symmetric_components`).  Empty when the
        model is not symmetric in any (ordered components, priors that differ by component), or
        has no free discrete variable.

        Example::

            post.component_axes()                      # {"w": 0, "mu": 0, "sigma": 0}
        """
        if self._component_axes is None:
            self._component_axes = {}
            if self.model is not None:
                model = self.model
                draw = self._best_draw()
                sizes = [
                    np.shape(p)[-1]
                    for p in model.discrete_posterior(self._with_observed(draw)).values()
                ]
                if sizes:
                    found = labels.symmetric_components(
                        lambda values: model.log_prob(self._with_observed(values)),
                        {k: np.asarray(v) for k, v in draw.items()},
                        sizes,
                    )
                    self._component_axes = {k: a for k, (a, _) in found.items()}
        return dict(self._component_axes)

    def _best_draw(self) -> dict[str, jax.Array]:
        lp = self.sample_stats.get("lp")
        index = (0, 0)
        if lp is not None and np.any(np.isfinite(lp)):
            index = np.unravel_index(
                int(np.nanargmax(np.where(np.isfinite(lp), lp, np.nan))), lp.shape
            )
        return {k: jnp.asarray(v[index]) for k, v in self.samples.items()}

    def relabel(
        self,
        components: Mapping[str, int] | Sequence[str] | None = None,
        *,
        reference: Mapping[str, Any] | None = None,
        max_iterations: int = 20,
    ) -> Posterior:
        """The draws with one labelling of the mixture components; see :func:`coromix.relabel`.

        With ``components=None`` the component variables are found from the model
        (:meth:`component_axes`).

        Example::

            fixed = post.relabel()                     # R-hat of every component near 1 again
        """
        if components is None:
            components = self.component_axes()
            if not components:
                raise ValueError(
                    "relabel: found no variables whose component axis the model is symmetric in "
                    "(the model has no free discrete variable, its components are ordered or "
                    "their priors differ, or no model is attached); name them with components=, "
                    f"e.g. {{'mu': 0}}; the posterior's variables: {list(self.samples)}"
                )
        axes = labels.component_axes(self.samples, components)
        permutations, iterations = labels.pivot_permutations(
            self.samples, axes, self.sample_stats.get("lp"), reference, max_iterations
        )
        samples = Values(labels.permute_draws(self.samples, axes, permutations))
        attrs = {
            **self.attrs,
            "relabelled": "pivot",
            "relabel_components": ",".join(f"{k}:{a}" for k, (a, _) in axes.items()),
            "relabel_iterations": iterations,
        }
        result = Posterior(
            samples,
            unconstrained=self._unconstrained_of(samples),
            sample_stats=self.sample_stats,
            observed=self.observed,
            model=self.model,
            attrs=attrs,
        )
        result.permutations = permutations
        return result

    # --- ArviZ ----------------------------------------------------------------------------------
    def to_arviz(
        self, *, discrete_posterior: bool = True, log_likelihood: bool = True
    ) -> arviz.InferenceData:
        """An ``arviz.InferenceData`` with the groups

        * ``posterior``, ``unconstrained_posterior``, ``sample_stats``, ``observed_data``;
        * ``log_likelihood`` (pointwise, for ``az.loo``/``az.waic``; ``log_likelihood=False`` leaves
          it out);
        * ``discrete_posterior`` when the model has free discrete variables: ``p(choice | draw,
          data)`` per draw (``S * K`` numbers per draw; ``discrete_posterior=False`` leaves it out);
        * ``posterior_predictive``, ``prior`` and ``prior_predictive`` once they have been computed
          (:meth:`posterior_predictive`, :meth:`prior_predictive`).
        """
        has_model = self.model is not None
        groups: dict[str, Mapping[str, np.ndarray]] = {
            "posterior": self.samples,
            "unconstrained_posterior": self.unconstrained,
            "sample_stats": self.sample_stats,
            "observed_data": self.observed,
        }
        dims: dict[str, dict[str, list[str]]] = {}
        if log_likelihood and (has_model or self._log_likelihood is not None):
            groups["log_likelihood"] = self.log_likelihood()
        if discrete_posterior and (has_model or self._discrete_posterior is not None):
            probs = self.discrete_posterior()
            groups["discrete_posterior"] = probs
            dims["discrete_posterior"] = {
                name: [f"{name}_dim_{i}" for i in range(p.ndim - 3)] + [f"{name}_support"]
                for name, p in probs.items()
            }
        if self._posterior_predictive is not None:
            groups["posterior_predictive"] = self._posterior_predictive
        if self._prior_predictive is not None:
            groups["prior"] = {k: v for k, v in self._prior_predictive.items() if k in self.samples}
            groups["prior_predictive"] = {
                k: v for k, v in self._prior_predictive.items() if k in self.observed
            }
        return _arviz.inference_data(groups, dims=dims, attrs=self._netcdf_attrs())

    def summary(self, **kwargs: Any) -> pd.DataFrame:
        """``arviz.summary`` of the posterior: mean, sd, HDI, MCSE, ESS bulk and tail, R-hat.

        Keyword arguments go to ``arviz.summary`` (``var_names=``, ``hdi_prob=``, ``kind=``...).
        """
        return _arviz.summary(self.samples, **kwargs)

    def convergence_warnings(self, *, max_rhat: float = 1.01, min_ess: float = 400) -> list[str]:
        """Reasons not to trust the draws yet, each a sentence naming the variables involved.

        Checks the largest R-hat of each variable (needs two chains or more), its smallest bulk
        effective sample size (over all chains), and the number of divergent transitions.
        """
        diagnostics = _arviz.worst_diagnostics(self.samples)
        messages = []
        high = {k: r for k, (r, _) in diagnostics.items() if r > max_rhat}
        if high:
            messages.append(
                f"R-hat above {max_rhat} for {_listing(high, '.3f')}: the chains have not mixed; "
                f"run more warmup and draws, or reparametrize the model. If chains sit in "
                f"different modes of a mixture (swapped component labels), relabel the draws "
                f"(post.relabel()) or order the components (tfd.Ordered)"
            )
            messages += self._mode_messages()
        low = {k: e for k, (_, e) in diagnostics.items() if e < min_ess}
        if low:
            messages.append(
                f"bulk effective sample size below {min_ess:g} for {_listing(low, '.0f')} "
                f"({self.num_chains} chains x {self.num_draws} draws): means and quantiles are "
                f"imprecise; draw more samples"
            )
        if self.num_divergences:
            target = self.attrs.get("target_accept")
            hint = "raise target_accept" + (f" (now {target:g})" if target is not None else "")
            messages.append(
                f"{self.num_divergences} of {self.num_chains * self.num_draws} transitions "
                f"diverged after warmup: the draws may miss part of the posterior; {hint} or "
                f"reparametrize the model"
            )
        return messages

    def _mode_messages(self) -> list[str]:
        """Chains in permuted labellings of a symmetric mixture, and chains stuck in minor modes."""
        if self.num_chains < 2:
            return []
        messages = []
        lp = self.sample_stats.get("lp")
        chain_lp = np.mean(lp, axis=1) if lp is not None else None
        best = int(np.nanargmax(chain_lp)) if chain_lp is not None else 0
        if self.model is not None:
            axes = self.component_axes()
            if axes:
                sizes = {k: np.shape(self.samples[k])[2:][a] for k, a in axes.items()}
                found = {k: (a, sizes[k]) for k, a in axes.items()}
                perms = labels.chain_labellings(self.samples, found, best)
                switched = [
                    c
                    for c in range(self.num_chains)
                    if not np.array_equal(perms[c], np.arange(len(perms[c])))
                ]
                if switched:
                    messages.append(
                        f"label switching: chain(s) {_and(switched)} sit in another labelling "
                        f"of the mixture components than chain {best} (the model is symmetric "
                        f"in {_and(list(axes))}, so these are the same posterior with the "
                        f"labels permuted); post.relabel() gives all draws one labelling"
                    )
        if chain_lp is not None and np.all(np.isfinite(chain_lp)):
            spread = float(np.sqrt(np.mean(np.var(lp, axis=1))))
            gap = chain_lp[best] - chain_lp
            stuck = [c for c in range(self.num_chains) if gap[c] > max(5.0, 4.0 * spread)]
            if stuck:
                listing = ", ".join(f"chain {c} ({gap[c]:.1f} lower)" for c in stuck)
                messages.append(
                    f"minor mode: {listing} than chain {best} in mean log density: stuck in a "
                    f"mode with far less posterior mass; leave those chains out or refit (the "
                    f"default init='mode' starts every chain in the dominant mode)"
                )
        return messages

    # --- files ----------------------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Write the fit to a NetCDF file (``InferenceData.to_netcdf``), read by :meth:`load`."""
        _arviz.to_netcdf(self.to_arviz(), path)

    @classmethod
    def load(cls, path: str, model: JointDistributionCoroutine | None = None) -> Posterior:
        """Read a file written by :meth:`save`; give ``model`` to compute anything new from it."""
        groups, attrs = _arviz.read_netcdf(path)
        if "posterior" not in groups:
            raise ValueError(f"{path}: no posterior group; groups found: {list(groups)}")
        if model is not None:
            names = model.variable_names
            foreign = [k for k in groups["posterior"] if k not in names]
            if foreign:
                raise ValueError(
                    f"{path} holds a fit of model {attrs.get('model', '?')!r} with variables "
                    f"{list(groups['posterior'])}; the model given, {model.name!r}, has "
                    f"{names}: give the model the file was fitted with"
                )
        posterior = cls(
            groups["posterior"],
            unconstrained=groups.get("unconstrained_posterior"),
            sample_stats=groups.get("sample_stats"),
            observed=groups.get("observed_data"),
            model=model,
            attrs=attrs,
        )
        for group, attribute in [
            ("discrete_posterior", "_discrete_posterior"),
            ("log_likelihood", "_log_likelihood"),
            ("posterior_predictive", "_posterior_predictive"),
        ]:
            if group in groups:
                setattr(posterior, attribute, Values(groups[group]))
        if "posterior_predictive" in groups:
            some = next(iter(groups["posterior_predictive"].values()))
            posterior._predictive_settings = (some.shape[1], "file")
        if "prior" in groups or "prior_predictive" in groups:
            posterior._prior_predictive = Values(
                {**groups.get("prior", {}), **groups.get("prior_predictive", {})}
            )
        return posterior

    def _unconstrained_of(self, samples: Mapping[str, np.ndarray]) -> Values:
        """The relabelled draws on unconstrained space through the model (empty without one)."""
        if self.model is None:
            return Values()
        pinned = self.model.pin(dict(self.observed))
        names = list(pinned.parameter_shapes)
        missing = [k for k in names if k not in samples]
        if missing:
            raise ValueError(
                f"relabel: the posterior lacks draws of the model's parameters "
                f"{missing} (model {self.model.name!r}); cannot map the relabelled "
                f"draws to unconstrained space"
            )
        mapped = _per_draw(
            lambda draw, _: pinned.to_unconstrained(draw), {k: samples[k] for k in names}
        )
        order = list(self.unconstrained) or list(samples)
        order += [k for k in names if k not in order]
        out = Values((k, mapped[k]) for k in order if k in mapped)
        # values the model cannot map (an ordered vector no longer increasing), unless they were so
        # before relabelling already
        bad = [
            k
            for k, v in out.items()
            if not np.all(np.isfinite(v))
            and (k not in self.unconstrained or np.all(np.isfinite(self.unconstrained[k])))
        ]
        if bad:
            warnings.warn(
                f"relabel: after relabelling, {bad} fall outside the support the model gives them "
                f"(no finite unconstrained value): the model is not symmetric in these labels (an "
                f"ordering constraint, or priors that differ by component), so the relabelled draws "
                f"are not draws of its posterior",
                labels.RelabelWarning,
                stacklevel=3,
            )
        return out

    def _netcdf_attrs(self) -> dict[str, Any]:
        attrs = {k: v for k, v in self.attrs.items() if isinstance(v, (str, int, float, np.number))}
        if self.model is not None:
            attrs["model"] = self.model.name
        return attrs

    def __repr__(self) -> str:
        name = self.model.name if self.model is not None else self.attrs.get("model", "?")
        header = (
            f"Posterior({name}: {self.num_chains} chains x {self.num_draws} draws, "
            f"{self.num_divergences} divergences)"
        )
        lines = [header]
        width = max(len(k) for k in self.samples)
        for k, v in self.samples.items():
            mean, sd = v.mean(axis=(0, 1)), v.std(axis=(0, 1))
            lines.append(
                f"  {k:<{width}}  shape {v.shape[2:]!s:<8} mean {_brief(mean)}  sd {_brief(sd)}"
            )
        return "\n".join(lines)


def _listing(values: Mapping[str, float], fmt: str) -> str:
    return ", ".join(f"{k} ({v:{fmt}})" for k, v in values.items())


def _and(items: Sequence[Any]) -> str:
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _brief(x: np.ndarray, limit: int = 4) -> str:
    flat = np.ravel(x)
    if flat.size == 1:
        return f"{flat[0]:.3g}"
    shown = ", ".join(f"{e:.3g}" for e in flat[:limit])
    return f"[{shown}{', ...' if flat.size > limit else ''}]"


def _per_draw(
    fn: Callable[[dict[str, jax.Array], jax.Array], Mapping[str, jax.Array]],
    samples: Mapping[str, np.ndarray],
    seed: Any = None,
) -> Values:
    """``fn(draw, key)`` at every ``(chain, draw)``, vectorized over chunks of draws.

    The chunk size bounds the memory used; the result keeps the leading ``(chain, draw)`` dims.
    """
    leading = next(iter(samples.values())).shape[:2]
    total = math.prod(leading)
    flat = {k: jnp.asarray(v).reshape((total,) + v.shape[2:]) for k, v in samples.items()}
    keys = jax.random.split(as_key(seed), total)
    shapes = jax.eval_shape(fn, {k: v[0] for k, v in flat.items()}, keys[0])
    if not shapes:
        return Values()
    per_draw = sum(math.prod(s.shape) for s in shapes.values())
    batch_size = max(1, min(total, _CHUNK_ELEMENTS // max(per_draw, 1)))
    out = jax.jit(lambda f, k: jax.lax.map(lambda a: fn(*a), (f, k), batch_size=batch_size))(
        flat, keys
    )
    return Values((k, np.asarray(v).reshape(leading + v.shape[1:])) for k, v in out.items())
