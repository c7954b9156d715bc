r"""Adaptive tempered SMC (BlackJAX) on a pinned model: posterior draws and the model evidence.

The finite discrete choices are summed out of the density exactly (as for NUTS), so the particles
carry the continuous parameters only.  The program is one ``jax.jit``: ``vmap`` over independent
runs of ``(prior draws; while_loop of adaptive tempering steps until lambda = 1; a last
resample-and-move at lambda = 1)``.
"""

from __future__ import annotations

import functools
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.smc import resampling
from blackjax.smc.tempered import TemperedSMCState
from jax.flatten_util import ravel_pytree

from coromix.infer.nuts import pin_model
from coromix.infer.programs import model_environment
from coromix.joint import JointDistributionCoroutine
from coromix.pinned import PinnedModel
from coromix.results import ConvergenceWarning, Posterior
from coromix.runner import Values
from coromix.utils import as_key

# Tempering steps per run before giving up (each one moves lambda as far as target_ess allows).
_MAX_STEPS = 500
# Leapfrog steps of each HMC move (the step size and the diagonal mass matrix are tuned).
_LEAPFROG_STEPS = 10
# HMC step size: tuned between tempering steps towards this mean acceptance probability.
_TARGET_ACCEPT = 0.7
_STEP_GAIN = 2.0
_STEP_RANGE = (1e-4, 2.0)
# Each particle's step size is the tuned one times a factor uniform in this range (no particle
# keeps a trajectory length that happens to return near its start).
_STEP_JITTER = (0.8, 1.2)
# Log-likelihood given to a particle where it is not finite: it gets no weight once lambda > 0
# (a finite stand-in for -inf keeps 0 * loglik at 0 where lambda does not move).
_UNUSABLE = -1e30
# Warn when the runs' estimates of log Z spread more than this (standard deviation, nats).
_SPREAD_WARNING = 1.0


def smc(
    model: JointDistributionCoroutine | Callable[[], Any],
    observed: Mapping[str, Any] | None = None,
    *,
    num_particles: int = 2000,
    num_runs: int = 4,
    num_mcmc_steps: int = 10,
    target_ess: float = 0.5,
    seed: Any = 0,
    progress: bool = False,
) -> Posterior:
    r"""Adaptive tempered SMC: draws of ``p(parameters | observed)`` and the evidence ``p(observed)``.

    The particles move along the tempered path from the prior to the posterior,

    .. math::

        p_\lambda(\theta) \propto p(\theta)\, p(y \mid \theta)^{\lambda}, \qquad
        0 = \lambda_0 < \lambda_1 < \dots < \lambda_T = 1,

    where ``p(theta)`` is the prior of the continuous parameters and ``p(y | theta)`` the
    likelihood of the observed values, the free discrete choices summed out of both (see
    :meth:`coromix.pinned.PinnedModel.unconstrained_log_prior`).  The particles start as draws
    from the prior on unconstrained space.  Each step chooses the next ``lambda`` so that the
    effective sample size of the incremental weights
    ``w_i = p(y | theta_i)^(lambda_{t+1} - lambda_t)`` is ``target_ess * num_particles``
    (bisection), resamples (systematic) and moves every particle by ``num_mcmc_steps`` HMC steps
    targeting ``p_lambda`` (BlackJAX ``adaptive_tempered_smc`` with ``hmc``, 10 leapfrog steps;
    the diagonal inverse mass matrix is the particles' weighted variance and the step size is
    tuned towards a mean acceptance of 0.7, both between tempering steps).  A last resampling and
    move at ``lambda = 1`` gives equally weighted particles.

    The evidence of run ``r`` is the product of the mean incremental weights,

    .. math::

        \hat Z_r = \prod_{t=0}^{T-1} \frac{1}{N} \sum_{i=1}^{N}
                   p(y \mid \theta_i^{(t)})^{\lambda_{t+1} - \lambda_t},

    an unbiased estimate of ``Z = p(y) = \int p(theta) p(y | theta) dtheta``.  The runs are
    independent, so ``log_evidence = log mean_r Z_r`` and its Monte Carlo standard error comes
    from their spread (delta method: ``sd_r(Z_r) / (sqrt(R) mean_r(Z_r))``); with ``num_runs=1``
    the standard error is NaN.

    When to use it instead of :func:`coromix.nuts`:

    * **Model comparison**: the evidence ranks models (``log p(y | K=3) - log p(y | K=2)`` is the
      log Bayes factor), e.g. to choose the number of mixture components or regimes.  Priors
      must be proper (evidence depends on them).
    * **Multimodal posteriors**: the particles spread over the modes in proportion to their
      mass, where NUTS chains each stay in the mode they start in.  An exchangeable mixture needs
      no ordering constraint; its ``K!`` symmetric modes all hold particles.

    Args:
        model: a ``JointDistributionCoroutine`` or the generator function of one.  Pass the
            same ``JointDistributionCoroutine`` again (with data of the same shapes) to reuse
            the compiled program, e.g. over simulated data sets.
        observed: name -> observed value (one draw's shape).
        num_particles: particles per run (at least 2).
        num_runs: independent SMC runs; they become the chains of the :class:`Posterior`, and
            their spread gives the standard error of the evidence.
        num_mcmc_steps: HMC moves of every particle per tempering step.
        target_ess: the effective sample size, as a fraction of ``num_particles``, kept at each
            reweighting; larger means more, smaller tempering steps.
        seed: int or JAX key.
        progress: report each tempering step of each run (lambda, acceptance) on stderr.

    Returns:
        A :class:`~coromix.results.Posterior` with draws ``(run, particle, ...)``, sample stats
        ``lp`` (the log density of each particle on unconstrained space) and
        ``acceptance_rate`` (of its last moves), and ``post.log_evidence``,
        ``post.log_evidence_se``; ``attrs`` also hold ``log_evidence_runs`` and
        ``num_tempering_steps_runs`` (one per run) and ``num_tempering_steps`` (the most).

    Raises:
        ValueError: bad settings, or a log-likelihood that is not finite at any prior draw.
        RuntimeError: a run that did not reach ``lambda = 1`` within 500 tempering steps.

    Example: normal data with a normal prior on the mean, whose evidence has a closed form
    (``y ~ Normal(0, I + 9 J)`` with ``J`` all ones, ``det = 1 + 9 n``,
    inverse ``I - 9 J / (1 + 9 n)``):

    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> y = np.random.default_rng(0).normal(2.0, 1.0, 20)
    >>> def model():
    ...     mu = yield tfd.Normal(0.0, 3.0)
    ...     obs = yield tfd.Normal(jnp.broadcast_to(mu, y.shape), 1.0, name="y")
    >>> post = cm.smc(model, {"y": y}, num_particles=500, num_runs=2, seed=0)
    >>> post.samples["mu"].shape   # (run, particle)
    (2, 500)
    >>> n, s = len(y), y.sum()
    >>> quadratic = y @ y - 9 * s**2 / (1 + 9 * n)
    >>> exact = -n / 2 * np.log(2 * np.pi) - np.log(1 + 9 * n) / 2 - quadratic / 2
    >>> bool(abs(post.log_evidence - exact) < 0.3)   # log p(y), to Monte Carlo error
    True
    """
    _check_settings(num_particles, num_runs, num_mcmc_steps, target_ess)
    pinned = pin_model(model, observed)
    joint = pinned.joint
    names = list(pinned.parameter_shapes)
    observed_arrays = dict(pinned.observed)
    settings = (num_particles, num_runs, num_mcmc_steps, float(target_ess), bool(progress))
    signature = tuple((k, v.shape, str(v.dtype)) for k, v in observed_arrays.items())
    cache_key = (
        "coromix.smc",
        model_environment(joint.model),
        settings,
        signature,
        bool(jax.config.jax_enable_x64),
    )
    keys = jax.random.key_data(jax.random.split(as_key(seed), num_runs))

    start = time.perf_counter()
    compiled = joint.program_cache.get(cache_key)
    if compiled is None:
        if progress:
            _say(f"compiling SMC for {joint.name} ({num_runs} runs x {num_particles} particles)")
        program = _program(
            joint,
            num_particles=num_particles,
            num_mcmc_steps=num_mcmc_steps,
            target_ess=float(target_ess),
            progress=progress,
        )
        compiled = program.lower(keys, observed_arrays).compile()
        joint.program_cache[cache_key] = compiled
    compile_time = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(keys, observed_arrays))
    sampling_time = time.perf_counter() - start

    usable = np.asarray(out.usable)
    if not np.any(usable > 0):
        raise ValueError(
            f"smc: the log-likelihood of the observed values {list(pinned.observed)} is not finite "
            f"at any of the {num_particles} prior draws of model {joint.name!r} (parameters "
            f"{names}); check the observed values against the supports of their distributions, "
            f"and that the prior covers parameter values under which the data are possible"
        )
    finished = np.asarray(out.finished)
    if not np.all(finished):
        failed = [int(r) for r in np.flatnonzero(~finished)]
        reached = ", ".join(f"run {r}: lambda {float(out.tempering_param[r]):.4g}" for r in failed)
        raise RuntimeError(
            f"smc: {len(failed)} of {num_runs} runs did not reach lambda = 1 within "
            f"{_MAX_STEPS} tempering steps ({reached}) for model {joint.name!r}. The "
            f"likelihood is very informative relative to the prior, or the particles degenerate "
            f"(usable prior draws: {int(usable.min())} of {num_particles}); try a lower target_ess "
            f"(larger steps), more particles, or a prior closer to the data's scale"
        )

    log_z = np.asarray(out.log_z, np.float64)
    log_evidence, log_evidence_se = _combine(log_z)
    steps = np.asarray(out.steps) - 1  # the last step resamples and moves at lambda = 1
    if num_runs > 1 and np.std(log_z, ddof=1) > _SPREAD_WARNING:
        warnings.warn(
            f"smc: the {num_runs} runs' log evidence estimates spread widely "
            f"({', '.join(f'{v:.2f}' for v in log_z)}; sd {np.std(log_z, ddof=1):.2f} nats): "
            f"the particles may miss part of the posterior; use more particles or a higher "
            f"target_ess / num_mcmc_steps",
            ConvergenceWarning,
            stacklevel=2,
        )
    result = Posterior(
        Values((k, out.constrained[k]) for k in names),
        unconstrained=Values((k, out.unconstrained[k]) for k in names),
        sample_stats={"lp": out.lp, "acceptance_rate": out.acceptance_rate},
        observed=pinned.observed,
        model=joint,
        attrs={
            "inference_library": "blackjax",
            "inference_library_version": blackjax.__version__,
            "method": "adaptive tempered smc",
            "num_particles": num_particles,
            "num_runs": num_runs,
            "num_mcmc_steps": num_mcmc_steps,
            "target_ess": float(target_ess),
            "mcmc_kernel": "hmc",
            "num_integration_steps": _LEAPFROG_STEPS,
            "log_evidence": log_evidence,
            "log_evidence_se": log_evidence_se,
            "log_evidence_runs": log_z,
            "num_tempering_steps": int(steps.max()),
            "num_tempering_steps_runs": steps,
            "final_step_size": float(np.mean(out.step_size)),
            "compile_time": compile_time,
            "sampling_time": sampling_time,
            **({"seed": int(seed)} if isinstance(seed, (int, np.integer)) else {}),
        },
    )
    if progress:
        _say(
            f"log evidence {log_evidence:.3f} +- {log_evidence_se:.3f} "
            f"({int(steps.max())} tempering steps, {sampling_time:.1f}s)"
        )
    return result


def _check_settings(
    num_particles: Any, num_runs: Any, num_mcmc_steps: Any, target_ess: Any
) -> None:
    for name, value, least in [
        ("num_particles", num_particles, 2),
        ("num_runs", num_runs, 1),
        ("num_mcmc_steps", num_mcmc_steps, 1),
    ]:
        if (
            isinstance(value, (bool, np.bool_))
            or not isinstance(value, (int, np.integer))
            or value < least
        ):
            raise ValueError(f"{name} must be an integer >= {least}; got {value!r}")
    if (
        isinstance(target_ess, (bool, np.bool_))
        or not isinstance(target_ess, (int, float, np.number))
        or not 0.0 < float(target_ess) < 1.0
    ):
        raise ValueError(
            f"target_ess must be a number in (0, 1) (a fraction of num_particles); "
            f"got {target_ess!r}"
        )


def _combine(log_z: np.ndarray) -> tuple[float, float]:
    """``log mean_r Z_r`` and its standard error by the delta method (NaN for one run)."""
    runs = log_z.size
    top = float(np.max(log_z))
    if not np.isfinite(top):
        return top, math.nan
    w = np.exp(log_z - top)
    estimate = top + float(np.log(np.mean(w)))
    if runs < 2:
        return estimate, math.nan
    return estimate, float(np.std(w, ddof=1) / math.sqrt(runs) / np.mean(w))


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _report(run: Any, step: Any, tempering_param: Any, acceptance: Any, step_size: Any) -> None:
    _say(
        f"run {int(run)}: step {int(step):>3}  lambda {float(tempering_param):.4f}  "
        f"acceptance {float(acceptance):.2f}  step size {float(step_size):.3g}"
    )


class _Carry(NamedTuple):
    state: TemperedSMCState
    inverse_mass: jax.Array  # (d,): diagonal inverse mass matrix
    step_size: jax.Array  # (): tuned HMC step size
    log_z: jax.Array  # (): running log evidence
    steps: jax.Array  # (): tempering steps taken
    started_at: jax.Array  # (): lambda at the start of the last step (-1 before any)
    acceptance: jax.Array  # (N,): each particle's mean acceptance in the last move
    key: jax.Array


class _Output(NamedTuple):
    constrained: Values
    unconstrained: Values
    lp: jax.Array
    acceptance_rate: jax.Array
    log_z: jax.Array
    steps: jax.Array
    tempering_param: jax.Array
    finished: jax.Array
    usable: jax.Array
    step_size: jax.Array


def _weighted_variance(x: jax.Array, weights: jax.Array) -> jax.Array:
    mean = weights @ x
    return weights @ (x - mean) ** 2


def _program(
    joint: JointDistributionCoroutine,
    *,
    num_particles: int,
    num_mcmc_steps: int,
    target_ess: float,
    progress: bool,
) -> Callable:
    """``program(run_keys, observed) -> _Output``, jitted: all runs vmapped, each a while loop."""
    hmc_step = functools.partial(blackjax.hmc.build_kernel(), num_integration_steps=_LEAPFROG_STEPS)

    def run(run_index, key_data, observed):
        pinned: PinnedModel = joint.pin(observed)
        init_key, loop_key = jax.random.split(jax.random.wrap_key_data(key_data))
        draws = jax.vmap(pinned.prior_draw)(jax.random.split(init_key, num_particles))
        _, unravel = ravel_pytree(jax.tree_util.tree_map(lambda x: x[0], draws))
        particles = jax.vmap(lambda d: ravel_pytree(d)[0])(draws)
        dtype = particles.dtype

        last: list[Any] = [None, None]

        def parts(q):
            # BlackJAX asks for the prior and the likelihood at the same point one after the
            # other; one run of the model gives both (the second call reuses the first's trace)
            if last[0] is q:
                return last[1]
            prior, full = pinned.unconstrained_log_prior_and_prob(unravel(q))
            loglik = full - prior
            finite = jnp.isfinite(loglik) & jnp.isfinite(prior)
            out = (
                jnp.where(jnp.isnan(prior), -jnp.inf, prior),
                jnp.where(finite, loglik, jnp.asarray(_UNUSABLE, loglik.dtype)),
                full,
            )
            last[:] = [q, out]
            return out

        def log_prior(q):
            return parts(q)[0]

        def log_likelihood(q):
            return parts(q)[1]

        first = jax.vmap(log_likelihood)(particles)
        usable = jnp.sum(first > _UNUSABLE)

        dim = particles.shape[1]
        variance = _weighted_variance(
            particles, jnp.full(num_particles, 1.0 / num_particles, dtype)
        )
        variance = jnp.where(jnp.isfinite(variance) & (variance > 0), variance, 1.0)
        state = blackjax.adaptive_tempered_smc.init(particles)
        state = state._replace(tempering_param=jnp.zeros((), dtype))
        carry = _Carry(
            state,
            variance.astype(dtype),
            jnp.asarray(dim**-0.25, dtype),
            jnp.zeros((), dtype),
            jnp.zeros((), jnp.int32),
            -jnp.ones((), dtype),
            jnp.zeros(num_particles, dtype),
            loop_key,
        )

        def step(carry: _Carry) -> _Carry:
            key, step_key, jitter_key = jax.random.split(carry.key, 3)
            sizes = carry.step_size * jax.random.uniform(
                jitter_key, (num_particles,), dtype, *_STEP_JITTER
            )
            parameters = {"step_size": sizes, "inverse_mass_matrix": carry.inverse_mass[None]}
            algorithm = blackjax.adaptive_tempered_smc(
                log_prior,
                log_likelihood,
                hmc_step,
                blackjax.hmc.init,
                parameters,
                resampling.systematic,
                target_ess,
                num_mcmc_steps=num_mcmc_steps,
            )
            state, info = algorithm.step(step_key, carry.state)
            acceptance = jnp.mean(jnp.nan_to_num(info.update_info.acceptance_rate), axis=-1)
            mean_acceptance = jnp.mean(acceptance)
            step_size = jnp.clip(
                carry.step_size * jnp.exp(_STEP_GAIN * (mean_acceptance - _TARGET_ACCEPT)),
                *_STEP_RANGE,
            ).astype(dtype)
            variance = _weighted_variance(state.particles, state.weights)
            fine = jnp.isfinite(variance) & (variance > 0)
            inverse_mass = jnp.where(fine, variance, carry.inverse_mass).astype(dtype)
            if progress:
                jax.debug.callback(
                    _report,
                    run_index,
                    carry.steps + 1,
                    state.tempering_param,
                    mean_acceptance,
                    carry.step_size,
                )
            return _Carry(
                state._replace(tempering_param=state.tempering_param.astype(dtype)),
                inverse_mass,
                step_size,
                carry.log_z + info.log_likelihood_increment.astype(dtype),
                carry.steps + 1,
                carry.state.tempering_param,
                acceptance,
                key,
            )

        def going(carry: _Carry) -> jax.Array:
            return (carry.started_at < 1.0) & (carry.steps < _MAX_STEPS + 1)

        carry = jax.lax.while_loop(going, step, carry)
        final = jax.vmap(unravel)(carry.state.particles)
        lp = jax.vmap(lambda q: parts(q)[2])(carry.state.particles)
        return _Output(
            Values(jax.vmap(pinned.to_constrained)(final)),
            Values(final),
            lp,
            carry.acceptance,
            carry.log_z,
            carry.steps,
            carry.state.tempering_param,
            carry.started_at >= 1.0,
            usable,
            carry.step_size,
        )

    def program(run_keys, observed):
        runs = jnp.arange(run_keys.shape[0])
        return jax.vmap(run, in_axes=(0, 0, None))(runs, run_keys, observed)

    return jax.jit(program)
