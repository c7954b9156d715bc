"""`Posterior`: the draws of a fit, its sampler statistics, and their ArviZ views.

Every array has leading dims ``(chain, draw)``.  ArviZ is reached only through
:mod:`coromix._arviz`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from coromix import _arviz, labels, per_draw
from coromix.runner import Values

if TYPE_CHECKING:
    import arviz
    import pandas as pd
    from matplotlib.figure import Figure

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


def prepare_diagnostics() -> None:
    """Start loading what :meth:`Posterior.convergence_warnings` needs (ArviZ), in the background.

    A fit calls it before its compilation, which runs without Python's lock: the two overlap.
    """
    _arviz.import_in_background()


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

    The fits (:func:`coromix.nuts`, :func:`coromix.smc`) make one; so can draws from elsewhere.
    The quantities derived per draw with the model (log-likelihood, discrete posterior,
    predictive draws) are computed by :mod:`coromix.per_draw`; the ones that :meth:`to_arviz`
    writes are kept once computed.

    Example: two draws of a two-component mixture's means, and the data they explain.

    >>> import jax.numpy as jnp, numpy as np
    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> def model():
    ...     mu = yield tfd.Normal(jnp.array([-1.0, 1.0]), 1.0)
    ...     z = yield tfd.Categorical(probs=jnp.full((3, 2), 0.5))
    ...     y = yield tfd.Normal(mu[z], 1.0)
    >>> draws = {"mu": np.array([[[-1.0, 1.0], [-2.0, 0.5]]])}   # 1 chain x 2 draws
    >>> post = Posterior(draws, observed={"y": np.array([-1.0, 0.0, 1.0])},
    ...                  model=tfd.JointDistributionCoroutine(model))
    >>> post
    Posterior(model: 1 chains x 2 draws, 0 divergences)
      mu  shape (2,)     mean [-1.5, 0.75]  sd [0.5, 0.25]
    >>> post.discrete_posterior()["z"].shape                     # (chain, draw, N, K)
    (1, 2, 3, 2)
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
    ) -> None:
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
        self.observed = {
            k: jax.tree_util.tree_map(np.asarray, v) for k, v in (observed or {}).items()
        }
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
        """The number of chains (the first dim of every draw array).

        >>> Posterior({"mu": np.zeros((4, 100))}).num_chains
        4
        """
        return next(iter(self.samples.values())).shape[0]

    @property
    def num_draws(self) -> int:
        """The number of draws per chain (the second dim of every draw array).

        >>> Posterior({"mu": np.zeros((4, 100))}).num_draws
        100
        """
        return next(iter(self.samples.values())).shape[1]

    @property
    def num_divergences(self) -> int:
        """Divergent transitions after warmup (the ``diverging`` sample statistic; 0 without).

        >>> diverging = np.array([[False, True, True]])
        >>> Posterior({"mu": np.zeros((1, 3))}, sample_stats={"diverging": diverging}).num_divergences
        2
        """
        diverging = self.sample_stats.get("diverging")
        return int(np.sum(diverging)) if diverging is not None else 0

    @property
    def log_evidence(self) -> float | None:
        """``log p(observed)``, the log marginal likelihood estimated by :func:`coromix.smc`.

        ``None`` for fits that do not estimate it (NUTS).

        >>> Posterior({"mu": np.zeros((1, 3))}, attrs={"log_evidence": -12.5}).log_evidence
        -12.5
        """
        value = self.attrs.get("log_evidence")
        return None if value is None else float(value)

    @property
    def log_evidence_se(self) -> float | None:
        """Monte Carlo standard error of :attr:`log_evidence` (NaN from one SMC run; else ``None``
        when there is no evidence estimate).

        >>> print(Posterior({"mu": np.zeros((1, 3))}).log_evidence_se)
        None
        """
        value = self.attrs.get("log_evidence_se")
        return None if value is None else float(value)

    # --- quantities derived per draw (computed in coromix.per_draw) ----------------------------
    def _need_model(self, what: str) -> JointDistributionCoroutine:
        if self.model is None:
            raise ValueError(
                f"{what} needs the model; load the file with Posterior.load(path, model=jd)"
            )
        return self.model

    def discrete_posterior(self) -> Values:
        """Exact ``p(discrete variable | draw, observed)`` for every draw (computed once, kept).

        ``p(z = k | theta, y) = p(z = k, theta, y) / sum_j p(z = j, theta, y)``: name -> array
        ``(chain, draw, *S, K)``: for each of the variable's ``S`` elements, the probabilities of
        its ``K`` support values (responsibilities, for a mixture's component; smoothed regime
        probabilities, ``(chain, draw, T, K)``, for a chain of regimes).  Empty when the model has
        no free discrete variables.  See :func:`coromix.per_draw.discrete_posterior`.

        >>> post, _ = _example()
        >>> post.discrete_posterior()["z"][0, 0, :, 0].tolist()   # p(z_i = 0 | mu, y)
        [0.881, 0.5, 0.119]
        """
        if self._discrete_posterior is None:
            model = self._need_model("the discrete posterior")
            self._discrete_posterior = per_draw.discrete_posterior(
                model, self.samples, self.observed
            )
        return self._discrete_posterior

    def sample_discrete(self, seed: Any = 0) -> Values:
        """One draw of every free discrete variable per posterior draw, from its exact conditional.

        ``z ~ p(z | theta, y)``: name -> array ``(chain, draw, *S)``; chains of regimes by forward
        filtering, backward sampling.  Together with :attr:`samples` these are draws from the joint
        posterior ``p(theta, z | y)``.  See :func:`coromix.per_draw.sample_discrete`.

        >>> post, _ = _example()
        >>> post.sample_discrete(seed=1)["z"].shape              # a component per point
        (1, 2, 3)
        """
        model = self._need_model("sampling the discrete variables")
        return per_draw.sample_discrete(model, self.samples, self.observed, seed)

    def discrete_mode(self) -> Values:
        """The most probable discrete values per draw (the Viterbi path for chains of regimes).

        ``argmax_z p(z | theta, y)``: name -> array ``(chain, draw, *S)``; see
        ``JointDistributionCoroutine.discrete_mode`` and :func:`coromix.per_draw.discrete_mode`.

        >>> post, _ = _example()
        >>> post.discrete_mode()["z"][0, 1].tolist()             # at mu = (-2, 0.5)
        [0, 1, 1]
        """
        model = self._need_model("the most probable discrete values")
        return per_draw.discrete_mode(model, self.samples, self.observed)

    def log_likelihood(self) -> Values:
        """Pointwise log-likelihood of the observed variables at every draw (computed once, kept).

        ``log p(y_i | theta) = log sum_k p(z_i = k | theta) p(y_i | z_i = k, theta)``: name ->
        array ``(chain, draw, *observation dims)``, the discrete variables summed out, as
        ``az.loo`` and ``az.waic`` need it (``az.loo(post.to_arviz())``); see
        ``JointDistributionCoroutine.pointwise_log_likelihood`` for what counts as one observation.
        Empty when nothing is observed.  See :func:`coromix.per_draw.log_likelihood`.

        >>> post, _ = _example()
        >>> post.log_likelihood()["y"].shape
        (1, 2, 3)
        """
        if self._log_likelihood is None:
            if not self.observed:
                self._log_likelihood = Values()
            else:
                model = self._need_model("the log-likelihood")
                self._log_likelihood = per_draw.log_likelihood(model, self.samples, self.observed)
        return self._log_likelihood

    def posterior_predictive(self, num_draws: int | None = None, seed: Any = 0) -> Values:
        """Replicated data: the observed variables drawn from the model at posterior draws.

        ``y_rep ~ p(y | theta)`` with ``theta`` a posterior draw and the discrete choices drawn
        afresh from their prior given ``theta`` (new data, new choices).  name -> array
        ``(chain, draw, *shape)``, at every draw, or at ``num_draws`` evenly spaced draws of each
        chain (replicas of a large data set take memory).  The last result is kept and written as
        the ``posterior_predictive`` group of :meth:`to_arviz` (``az.plot_ppc`` reads it).  See
        :func:`coromix.per_draw.posterior_predictive`.

        >>> post, _ = _example()
        >>> post.posterior_predictive(num_draws=1)["y"].shape    # (chain, draw, N)
        (1, 1, 3)
        """
        which = per_draw.draw_indices(self.num_draws, num_draws)
        kept = self._predictive_settings
        fresh = (len(which), seed if isinstance(seed, (int, np.integer)) else id(seed))
        # replicas read from a file serve any request for that many draws
        if not (
            self._posterior_predictive is not None
            and kept is not None
            and kept[0] == fresh[0]
            and kept[1] in (fresh[1], "file")
        ):
            model = self._need_model("the posterior predictive")
            if not self.observed:
                raise ValueError(
                    "the posterior predictive draws the observed variables, and this fit has none"
                )
            self._posterior_predictive = per_draw.posterior_predictive(
                model, self.samples, list(self.observed), num_draws, seed
            )
            self._predictive_settings = fresh
        return self._posterior_predictive

    def forecast(self, num_steps: int, inputs: Any = None, seed: Any = 0) -> Values:
        """Regime probabilities and predictive draws ``num_steps`` past the data, from every draw.

        For each regime site ``y`` (a ``HiddenMarkovModel``, ``HiddenSemiMarkovModel`` or
        ``RegimeSwitching`` variable with an observed series ``y_{1:T}``) and draw ``theta``:

        * ``p(s_{T+h} = k | y_{1:T}, theta)``, ``h = 1..num_steps`` (for an HMM
          ``filtered_T @ A^h``), under the key of :meth:`discrete_posterior` (``"y_states"``,
          ``"growth_regime"``, ...): ``(chain, draw, h, K)``; averaged over the draws,
          ``p(s_{T+h} = k | y_{1:T})`` (exact per draw unless the transitions read the
          observations; then along the drawn path, see ``RegimeSwitching.forecast``);
        * a predictive path ``y_{T+1:T+h} ~ p(. | y_{1:T}, theta)`` run through the model's own
          step, under the site's name: ``(chain, draw, h, ...)`` (a mapping name -> array for a
          step with several observations), draws of the posterior predictive;
        * for a ``RegimeSwitching`` site, the expected duration of each regime under the
          transitions at the last observed step, ``1 / (1 - p(stay in k))``, under
          ``"growth_regime_duration"`` (the regimes' key and ``_duration``): ``(chain, draw, K)``.

        ``inputs``: a ``RegimeSwitching`` step's future covariates, leading dim ``num_steps`` (a
        mapping site name -> inputs with several regime sites); required when the step was
        fitted with inputs.  Not kept: each call draws afresh from ``seed``.  See
        :func:`coromix.per_draw.forecast`.

        >>> import jax.numpy as jnp
        >>> import coromix as cm
        >>> tfd = cm.distributions
        >>> def model():
        ...     mu = yield tfd.Normal(jnp.array([0.0, 30.0]), 1.0)
        ...     y = yield tfd.HiddenMarkovModel(tfd.Categorical(probs=[0.5, 0.5]),
        ...         tfd.Categorical(probs=[[0.9, 0.1], [0.2, 0.8]]), tfd.Normal(mu, 1.0), 3)
        >>> post = Posterior({"mu": np.array([[[0.0, 30.0], [0.0, 30.0]]])},
        ...                  observed={"y": np.array([30.0, 30.0, 0.0])},
        ...                  model=tfd.JointDistributionCoroutine(model))
        >>> ahead = post.forecast(2, seed=1)
        >>> ahead["y_states"][0, 0].round(3).tolist()    # state 0 at T, then A and A @ A
        [[0.9, 0.1], [0.83, 0.17]]
        >>> ahead["y"].shape                             # (chain, draw, h)
        (1, 2, 2)
        """
        model = self._need_model("forecasting")
        if not self.observed:
            raise ValueError("forecast continues the observed series, and this fit has none")
        return per_draw.forecast(model, self.samples, self.observed, num_steps, inputs, seed)

    def prior_predictive(self, num_samples: int = 500, seed: Any = 0) -> Values:
        """Draws of every variable from the prior (``jd.sample``), shaped ``(1, num_samples, ...)``.

        ``(theta, z, y) ~ p(theta) p(z | theta) p(y | theta, z)``.  Computed once and kept;
        :meth:`to_arviz` writes the parameters as the ``prior`` group and the observed variables as
        ``prior_predictive``.  See :func:`coromix.per_draw.prior_predictive`.

        >>> import coromix as cm
        >>> def model():
        ...     mu = yield cm.distributions.Normal(0.0, 1.0)
        ...     y = yield cm.distributions.Normal(mu, 1.0)
        >>> jd = cm.distributions.JointDistributionCoroutine(model)
        >>> post = Posterior({"mu": np.zeros((1, 5))}, observed={"y": 0.3}, model=jd)
        >>> post.prior_predictive(200)["y"].shape      # data sets the prior implies
        (1, 200)
        """
        if self._prior_predictive is None:
            model = self._need_model("the prior predictive")
            self._prior_predictive = per_draw.prior_predictive(model, num_samples, seed)
        return self._prior_predictive

    # --- labels of mixture components ------------------------------------------------------------
    def component_axes(self) -> dict[str, int]:
        """The variables that carry the component axis of a mixture, found from the model.

        name -> axis of one draw's shape: the variables whose axis of length ``K`` (the support
        size of a free discrete variable) the model is symmetric in, tested at the draw with the
        highest log density (see :func:`coromix.per_draw.component_axes`).  Empty when the model
        is not symmetric in any (ordered components, priors that differ by component), has no
        free discrete variable, or is not attached.

        Example (a few seconds: it compiles the model's log density)::

            post.component_axes()                      # {"w": 0, "mu": 0, "sigma": 0}
        """
        if self._component_axes is None:
            self._component_axes = {}
            if self.model is not None:
                draw = per_draw.best_draw(self.samples, self.sample_stats.get("lp"))
                self._component_axes = per_draw.component_axes(self.model, draw, self.observed)
        return dict(self._component_axes)

    def relabel(
        self,
        components: Mapping[str, int] | Sequence[str] | None = None,
        *,
        reference: Mapping[str, Any] | None = None,
        max_iterations: int = 20,
    ) -> Posterior:
        """The draws with one labelling of the mixture components; see :func:`coromix.relabel`.

        With ``components=None`` the component variables are found from the model
        (:meth:`component_axes`).  The new posterior's ``permutations`` (``(chain, draw, K)``)
        say which old label each new label came from.

        Example: the second chain sits in the other labelling.

        >>> mu = np.array([[[-1.0, 1.0], [-1.1, 0.9]], [[1.0, -1.0], [1.1, -0.9]]])
        >>> fixed = Posterior({"mu": mu}).relabel({"mu": 0})
        >>> fixed.samples["mu"].tolist()
        [[[-1.0, 1.0], [-1.1, 0.9]], [[-1.0, 1.0], [-0.9, 1.1]]]

        With the model attached, ``post.relabel()`` finds ``{"mu": 0}`` itself (a few seconds).
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

        Empty groups are left out.

        >>> post, _ = _example()
        >>> sorted(post.to_arviz().groups())
        ['discrete_posterior', 'log_likelihood', 'observed_data', 'posterior']
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
        One row per element (``mu[0]``, ``mu[1]``, ...), in the model's order.

        >>> table = Posterior({"mu": np.arange(20.0).reshape(2, 10, 1)}).summary()
        >>> list(table.index), list(table.columns)
        (['mu[0]'], ['mean', 'sd', 'hdi_3%', 'hdi_97%', 'mcse_mean', 'mcse_sd', 'ess_bulk', 'ess_tail', 'r_hat'])
        >>> float(table.loc["mu[0]", "mean"])
        9.5
        """
        return _arviz.summary(self.samples, **kwargs)

    def plot(self, kind: str = "trace") -> Figure:
        """The figure of ``arviz.plot_trace`` (``kind="trace"``) or ``arviz.plot_posterior``
        (``kind="posterior"``) of the draws, one row or panel per variable.

        ArviZ draws with pyplot's current backend: to write files without a display, select a
        non-interactive backend first (``matplotlib.use("Agg")``); close the figure when done.

        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> figure = Posterior({"mu": np.arange(20.0).reshape(2, 10)}).plot("posterior")
        >>> len(figure.axes)
        1
        >>> plt.close(figure)
        """
        if kind not in ("trace", "posterior"):
            raise ValueError(f"plot(kind={kind!r}): kind is 'trace' or 'posterior'")
        return _arviz.plot(kind, self.samples)

    def convergence_warnings(self, *, max_rhat: float = 1.01, min_ess: float = 400) -> list[str]:
        """Reasons not to trust the draws yet, each a sentence naming the variables involved.

        Checks the largest R-hat of each variable (needs two chains or more), its smallest bulk
        effective sample size (over all chains), and the number of divergent transitions; with
        the model attached, also chains in permuted labellings of a symmetric mixture and chains
        stuck in minor modes (far lower mean log density ``lp``).  R-hat is the rank-normalized
        split R-hat of Vehtari et al. (2021): about ``sqrt(var_total / var_within)``, 1 when the
        chains agree.

        Example: two chains centred 5 apart have not mixed.

        >>> x = np.random.default_rng(0).normal(size=(2, 200)) + np.array([[0.0], [5.0]])
        >>> for message in Posterior({"mu": x}).convergence_warnings():
        ...     print(message)
        R-hat above 1.01 for mu (...): the chains have not mixed; ...
        bulk effective sample size below 400 for mu (...) (2 chains x 200 draws): ...
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
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fit to a NetCDF file (``InferenceData.to_netcdf``), read by :meth:`load`.

        Every group of :meth:`to_arviz`, computed if need be (the log-likelihood and discrete
        posterior with a model), and :attr:`attrs` that are numbers or strings.

        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "fit.nc"
        >>> Posterior({"mu": np.arange(6.0).reshape(2, 3)}, attrs={"num_warmup": 100}).save(path)
        >>> back = Posterior.load(path)
        >>> back.samples["mu"].tolist(), int(back.attrs["num_warmup"])
        ([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], 100)
        """
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"Posterior.save({str(path)!r}): no folder {folder}")
        if os.path.isdir(path):
            raise IsADirectoryError(f"Posterior.save({str(path)!r}): that is a folder, not a file")
        _arviz.to_netcdf(self.to_arviz(), path)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], model: JointDistributionCoroutine | None = None
    ) -> Posterior:
        """Read a file written by :meth:`save`; give ``model`` to compute anything new from it.

        The groups the file holds (log-likelihood, discrete posterior, predictive draws) come back
        without the model; ``model`` must have the file's variables.  Example: see :meth:`save`.
        """
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"Posterior.load({str(path)!r}): "
                + ("that is a folder, not a file" if os.path.isdir(path) else "no such file")
            )
        try:
            groups, attrs = _arviz.read_netcdf(path)
        except Exception as err:  # netCDF4, h5py and xarray raise many kinds
            raise ValueError(
                f"Posterior.load({str(path)!r}): not a NetCDF file written by Posterior.save "
                f"(or ArviZ's to_netcdf); reading it failed with {type(err).__name__}: {err}"
            ) from err
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
        missing = [k for k in pinned.parameter_shapes if k not in samples]
        if missing:
            raise ValueError(
                f"relabel: the posterior lacks draws of the model's parameters "
                f"{missing} (model {self.model.name!r}); cannot map the relabelled "
                f"draws to unconstrained space"
            )
        names = list(pinned.parameter_shapes)
        mapped = per_draw.unconstrained(pinned, samples)
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


def _example() -> tuple[Posterior, dict[str, np.ndarray]]:
    """The posterior of the class docstring's example (for the methods' doctests), and its draws.

    >>> post, draws = _example()
    >>> post.num_chains, post.num_draws, list(post.observed)
    (1, 2, ['y'])
    """
    import jax.numpy as jnp

    from coromix.distributions import Categorical, Normal
    from coromix.joint import JointDistributionCoroutine

    def model():
        mu = yield Normal(jnp.array([-1.0, 1.0]), 1.0)
        z = yield Categorical(probs=jnp.full((3, 2), 0.5))
        y = yield Normal(mu[z], 1.0)

    draws = {"mu": np.array([[[-1.0, 1.0], [-2.0, 0.5]]])}
    observed = {"y": np.array([-1.0, 0.0, 1.0])}
    return Posterior(draws, observed=observed, model=JointDistributionCoroutine(model)), draws
