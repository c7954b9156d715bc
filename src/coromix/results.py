"""`Posterior`: the draws of a fit, its sampler statistics, and their ArviZ views.

Every array has leading dims ``(chain, draw)``.  ArviZ is reached only through
:mod:`coromix._arviz`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from coromix import _arviz
from coromix.model import Values

if TYPE_CHECKING:
    import arviz
    import pandas as pd

    from coromix.joint import JointDistributionCoroutine

#: Sampler statistics per draw, with ArviZ's standard names.
SAMPLE_STATS = ("diverging", "tree_depth", "n_steps", "acceptance_rate", "energy", "step_size",
                "lp")

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

    def __init__(self, samples: Mapping[str, Any], *,
                 unconstrained: Mapping[str, Any] | None = None,
                 sample_stats: Mapping[str, Any] | None = None,
                 observed: Mapping[str, Any] | None = None,
                 model: JointDistributionCoroutine | None = None,
                 attrs: Mapping[str, Any] | None = None):
        self.samples = Values((k, np.asarray(v)) for k, v in samples.items())
        if not self.samples:
            raise ValueError("a Posterior needs at least one sampled variable")
        shapes = {k: v.shape[:2] for k, v in self.samples.items()}
        if len(set(shapes.values())) != 1 or any(len(s) != 2 for s in shapes.values()):
            raise ValueError(f"every sampled variable needs the same leading (chain, draw) dims; "
                             f"got {shapes}")
        self.unconstrained = Values((k, np.asarray(v)) for k, v in (unconstrained or {}).items())
        stats = dict(sample_stats or {})
        order = [k for k in SAMPLE_STATS if k in stats]
        order += [k for k in stats if k not in SAMPLE_STATS]
        self.sample_stats = {k: np.asarray(stats[k]) for k in order}
        self.observed = {k: np.asarray(v) for k, v in (observed or {}).items()}
        self.model = model
        self.attrs = dict(attrs or {})
        self._discrete_posterior: Values | None = None

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

    # --- quantities derived per draw ------------------------------------------------------------
    def discrete_posterior(self) -> Values:
        """Exact ``p(discrete variable | draw, observed)`` for every draw (computed once, kept).

        name -> array ``(chain, draw, *S, K)``: for each of the variable's ``S`` elements, the
        probabilities of its ``K`` support values (responsibilities, for a mixture's component).
        Empty when the model has no free discrete variables.
        """
        if self._discrete_posterior is None:
            if self.model is None:
                raise ValueError("the discrete posterior needs the model; load the file with "
                                 "Posterior.load(path, model=jd)")
            self._discrete_posterior = _per_draw_discrete_posterior(
                self.model, self.observed, self.samples)
        return self._discrete_posterior

    def log_likelihood(self) -> dict[str, np.ndarray] | None:
        """Pointwise log-likelihood per draw (for LOO and WAIC): not computed yet, so ``None``.

        Hook for the ``log_likelihood`` group of :meth:`to_arviz`: name of an observed variable ->
        array ``(chain, draw, *observation dims)``.
        """
        return None

    # --- ArviZ ----------------------------------------------------------------------------------
    def to_arviz(self, *, discrete_posterior: bool = True) -> arviz.InferenceData:
        """An ``arviz.InferenceData``: posterior, unconstrained_posterior, sample_stats,
        observed_data, and (when the model has free discrete variables) ``discrete_posterior``.

        ``discrete_posterior=False`` leaves that group out (it holds ``S * K`` numbers per draw).
        """
        groups: dict[str, Mapping[str, np.ndarray]] = {
            "posterior": self.samples,
            "unconstrained_posterior": self.unconstrained,
            "sample_stats": self.sample_stats,
            "observed_data": self.observed,
        }
        dims: dict[str, dict[str, list[str]]] = {}
        if discrete_posterior and (self.model is not None or self._discrete_posterior is not None):
            probs = self.discrete_posterior()
            groups["discrete_posterior"] = probs
            dims["discrete_posterior"] = {
                name: [f"{name}_dim_{i}" for i in range(p.ndim - 3)] + [f"{name}_support"]
                for name, p in probs.items()}
        log_likelihood = self.log_likelihood()
        if log_likelihood is not None:
            groups["log_likelihood"] = log_likelihood
        return _arviz.inference_data(groups, dims=dims, attrs=self._netcdf_attrs())

    def summary(self, **kwargs: Any) -> pd.DataFrame:
        """``arviz.summary`` of the posterior: mean, sd, HDI, MCSE, ESS bulk and tail, R-hat.

        Keyword arguments go to ``arviz.summary`` (``var_names=``, ``hdi_prob=``, ``kind=``...).
        """
        return _arviz.summary(self.samples, **kwargs)

    def convergence_warnings(self, *, max_rhat: float = 1.01,
                             min_ess: float = 400) -> list[str]:
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
                f"run more warmup and draws, or reparametrize the model")
        low = {k: e for k, (_, e) in diagnostics.items() if e < min_ess}
        if low:
            messages.append(
                f"bulk effective sample size below {min_ess:g} for {_listing(low, '.0f')} "
                f"({self.num_chains} chains x {self.num_draws} draws): means and quantiles are "
                f"imprecise; draw more samples")
        if self.num_divergences:
            target = self.attrs.get("target_accept")
            hint = "raise target_accept" + (f" (now {target:g})" if target is not None else "")
            messages.append(
                f"{self.num_divergences} of {self.num_chains * self.num_draws} transitions "
                f"diverged after warmup: the draws may miss part of the posterior; {hint} or "
                f"reparametrize the model")
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
        posterior = cls(groups["posterior"],
                        unconstrained=groups.get("unconstrained_posterior"),
                        sample_stats=groups.get("sample_stats"),
                        observed=groups.get("observed_data"),
                        model=model, attrs=attrs)
        if "discrete_posterior" in groups:
            posterior._discrete_posterior = Values(groups["discrete_posterior"])
        return posterior

    def _netcdf_attrs(self) -> dict[str, Any]:
        attrs = {k: v for k, v in self.attrs.items() if isinstance(v, (str, int, float, np.number))}
        if self.model is not None:
            attrs["model"] = self.model.name
        return attrs

    def __repr__(self) -> str:
        name = self.model.name if self.model is not None else self.attrs.get("model", "?")
        header = (f"Posterior({name}: {self.num_chains} chains x {self.num_draws} draws, "
                  f"{self.num_divergences} divergences)")
        lines = [header]
        width = max(len(k) for k in self.samples)
        for k, v in self.samples.items():
            mean, sd = v.mean(axis=(0, 1)), v.std(axis=(0, 1))
            lines.append(f"  {k:<{width}}  shape {v.shape[2:]!s:<8} mean {_brief(mean)}  "
                         f"sd {_brief(sd)}")
        return "\n".join(lines)


def _listing(values: Mapping[str, float], fmt: str) -> str:
    return ", ".join(f"{k} ({v:{fmt}})" for k, v in values.items())


def _brief(x: np.ndarray, limit: int = 4) -> str:
    flat = np.ravel(x)
    if flat.size == 1:
        return f"{flat[0]:.3g}"
    shown = ", ".join(f"{e:.3g}" for e in flat[:limit])
    return f"[{shown}{', ...' if flat.size > limit else ''}]"


def _per_draw_discrete_posterior(model: JointDistributionCoroutine,
                                 observed: Mapping[str, np.ndarray],
                                 samples: Mapping[str, np.ndarray]) -> Values:
    """``model.discrete_posterior`` at every draw, vectorized over chunks of draws."""
    leading = next(iter(samples.values())).shape[:2]
    flat = {k: jnp.asarray(v).reshape((-1,) + v.shape[2:]) for k, v in samples.items()}
    given = {k: jnp.asarray(v) for k, v in observed.items()}

    def one_draw(draw):
        return model.discrete_posterior({**given, **draw})

    shapes = jax.eval_shape(one_draw, {k: v[0] for k, v in flat.items()})
    if not shapes:
        return Values()
    per_draw = sum(math.prod(s.shape) for s in shapes.values())
    batch_size = max(1, min(math.prod(leading), _CHUNK_ELEMENTS // max(per_draw, 1)))
    probs = jax.jit(lambda f: jax.lax.map(one_draw, f, batch_size=batch_size))(flat)
    return Values((k, np.asarray(v).reshape(leading + v.shape[1:])) for k, v in probs.items())
