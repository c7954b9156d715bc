"""NUTS (BlackJAX) on a pinned model: window adaptation, then sampling, all chains in one program.

The program is a search for the dominant mode (L-BFGS climbs from several points) that places
every chain's start, then ``vmap`` over chains of one scan of NUTS steps, warmup and sampling alike:
one NUTS kernel whose step size and mass matrix the warmup steps adapt (BlackJAX's window
adaptation pieces on Stan's schedule) and the sampling steps keep, compiled once.
With several local devices (and chains divisible among them) the chains are split across devices
with ``shard_map``, each device running its share vectorized.  Finite discrete variables are
already summed out of the density, so NUTS sees the continuous parameters only.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TextIO

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.mass_matrix import MassMatrixAdaptationState, mass_matrix_adaptation
from blackjax.adaptation.step_size import DualAveragingAdaptationState, dual_averaging_adaptation
from blackjax.adaptation.window_adaptation import build_schedule
from blackjax.mcmc.hmc import HMCState
from blackjax.mcmc.integrators import velocity_verlet
from jax.experimental import multihost_utils
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

from coromix import scoring
from coromix.infer import lbfgs
from coromix.infer.programs import joint_of, model_environment
from coromix.infer.programs import signature as programs_signature
from coromix.joint import JointDistributionCoroutine
from coromix.pinned import PinnedModel
from coromix.results import SAMPLE_STATS, ConvergenceWarning, Posterior, prepare_diagnostics
from coromix.runner import Values
from coromix.utils import as_key

CHAIN_METHODS = ("auto", "vectorized", "parallel", "threads")
INIT_METHODS = ("mode", "uniform", "prior")

# Random starting points tried per chain before giving up (uniform on unconstrained space).
_INIT_TRIES = 32
_INIT_RADIUS = 2.0
# The default start: L-BFGS climbs from this many uniform points, each of at most this many steps.
_SEARCH_PATHS = 8
_SEARCH_ITERATIONS = 200
# The smallest variance the climb's curvature may give a coordinate (its first inverse mass).
_MIN_VARIANCE = 1e-8
_MAX_VARIANCE = 1e2
# Up to this many parameters, the curvature at the mode is probed along every axis.
_MAX_PROBED = 512


def pin_model(
    model: JointDistributionCoroutine | Callable[[], Any], observed: Mapping[str, Any] | None
) -> PinnedModel:
    """The model (or a generator function, wrapped once: :func:`~coromix.infer.programs.joint_of`)
    conditioned on the observed values."""
    model = joint_of(model)
    if observed is not None and not isinstance(observed, Mapping):
        raise TypeError(
            f"observed must be a mapping of variable names to values, e.g. {{'y': data}}; got "
            f"{type(observed).__name__}"
        )
    posterior = model.pin(dict(observed or {}))
    if not posterior.parameter_shapes:
        raise ValueError(
            f"model {model.name!r} has no free continuous variable to infer (its "
            f"variables: {model.variable_names}; observed: "
            f"{list(posterior.observed)}); for the discrete ones use "
            f"jd.discrete_posterior"
        )
    return posterior


def nuts(
    model: JointDistributionCoroutine | Callable[[], Any],
    observed: Mapping[str, Any] | None = None,
    *,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    num_chains: int = 4,
    seed: Any = 0,
    target_accept: float = 0.8,
    dense_mass: bool = False,
    init: Mapping[str, Any] | str | None = None,
    progress: bool = True,
    chain_method: str = "auto",
    max_tree_depth: int = 10,
) -> Posterior:
    """Sample ``p(parameters | observed)`` with NUTS; finite discrete variables are summed out.

    Args:
        model: a ``JointDistributionCoroutine`` or the generator function of one.
        observed: name -> observed value (one draw's shape).
        num_warmup: adaptation steps per chain (Stan's windowed step size and mass matrix).
        num_samples: draws kept per chain.
        num_chains: independent chains, each adapting its own mass matrix and step size during
            warmup; then all sample with the median of the chains' step sizes (one chain that
            adapted to an odd place neither diverges nor holds up the chains that run with
            it; ``post.attrs["adapted_step_sizes"]`` keeps each chain's own).
        seed: int or JAX key.
        target_accept: the acceptance rate the step size is tuned to; raise it (0.9, 0.95) when
            there are divergences.
        dense_mass: adapt a dense mass matrix instead of a diagonal one.
        init: where the chains start.  ``None`` or ``"mode"`` (the default): in the dominant
            mode, found by 8 L-BFGS climbs from uniform points (the highest end wins), each
            chain at its own draw around it on the scale of the climb's curvature; this keeps
            chains out of minor modes (a label-swapped HMM, a local optimum of a mixture) and
            puts the chains of an exchangeable mixture in one labelling.  A climb whose start
            has no finite density or gradient starts again elsewhere (up to 30 times).
            ``"uniform"``: each chain at a random point uniform in (-2, 2) on unconstrained
            space (as Stan and NumPyro), tried again (up to 32 times) where the log density or
            its gradient is not finite.
            ``"prior"``: each chain first tries a draw from the prior (then uniform points).  A
            mapping: constrained values for every parameter, used by all chains (e.g. a
            ``cm.map`` result).
        progress: show a progress bar on stderr.
        chain_method: ``"vectorized"`` (all chains vmapped on one device), ``"parallel"`` (chains
            split over the local devices), ``"threads"`` (the chains split into as many vmapped
            groups as there are cores, up to a divisor of ``num_chains``, each group run by its
            own thread on the one device: on a CPU the groups run on separate cores, and each
            waits only for the longest tree among its own chains), or ``"auto"``: parallel when
            there are several devices and they divide ``num_chains``; else threads on a CPU with
            several cores when the observed values hold at most 20 000 numbers (a gradient made
            of small operations, such as a forward algorithm's scan, runs on one core: a
            3-state HMM at T = 2000 sampled 2.3x faster, Hamilton's MS-AR(4) 1.5-2x); else
            vectorized (with larger data XLA already spreads each operation over the cores, and
            a GMM at N = 1e5 sampled 2.2x slower on threads).  Every chain uses the same random
            keys in every layout; its draws agree to rounding, which over a long run can grow
            until the trajectories part.
        max_tree_depth: the most trajectory doublings per NUTS step (at most 2**depth leapfrogs).

    Returns:
        A :class:`~coromix.results.Posterior`; a :class:`~coromix.results.ConvergenceWarning` is
        issued when R-hat exceeds 1.01, the bulk ESS of a variable is below 400, or draws diverged.

    Example: the mean of normal data under a wide normal prior, whose posterior mean is
    ``sum(y) / (n + 1 / 10**2)``:

    >>> import numpy as np
    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> y = np.random.default_rng(0).normal(1.0, 1.0, 30)
    >>> def model():
    ...     mu = yield tfd.Normal(0.0, 10.0)
    ...     obs = yield tfd.Normal(jnp.broadcast_to(mu, y.shape), 1.0, name="y")
    >>> post = cm.nuts(model, {"y": y}, num_warmup=300, num_samples=300, progress=False)
    >>> post.samples["mu"].shape   # (chain, draw)
    (4, 300)
    >>> bool(abs(post.samples["mu"].mean() - y.sum() / (len(y) + 0.01)) < 0.1)
    True
    """
    _check_settings(num_warmup, num_samples, num_chains, target_accept, max_tree_depth)
    posterior = pin_model(model, observed)
    data_mesh = _data_mesh(posterior.observed)
    method = _resolve_chain_method(
        chain_method, num_chains, data_mesh, _observed_size(posterior.observed)
    )
    joint = posterior.joint
    names = list(posterior.parameter_shapes)
    if init is not None and not isinstance(init, str):
        # constrained values: mapped to unconstrained space and checked in the start program
        positions = _given_values(posterior, init)
        init_kind = "values"
    else:
        if init not in (None, *INIT_METHODS):
            raise ValueError(
                f"init must be None, 'mode', 'uniform', 'prior' or a mapping "
                f"of constrained values; got {init!r}"
            )
        init_kind = init or "mode"
        # placeholders of the right shapes: the starts are found inside the compiled program
        positions = {
            k: np.zeros((num_chains,) + shape, dtype)
            for k, (shape, dtype) in posterior.parameter_info().items()
        }
    settings = _Settings(
        num_warmup,
        num_samples,
        num_chains,
        float(target_accept),
        bool(dense_mass),
        int(max_tree_depth),
        method,
        init_kind,
        _thread_groups(num_chains) if method == "threads" else 1,
    )
    observed_arrays = dict(posterior.observed)
    # the chains' keys and the mode search's are derived from it inside the start program
    seed_key = jax.random.key_data(as_key(seed))

    bar = (
        _ProgressBar({0: ("warmup", num_warmup), 1: ("sampling", num_samples)})
        if progress
        else None
    )
    prepare_diagnostics()  # ArviZ loads while the programs compile
    start = time.perf_counter()
    programs = _compiled_programs(joint, posterior, settings, seed_key, positions, bar)
    compile_time = time.perf_counter() - start
    if bar is not None and compile_time > 0.05:
        bar.message(f"compiled in {compile_time:.1f} s")

    start = time.perf_counter()
    data = observed_arrays  # arguments of the compiled programs
    carries, found, search = programs.start(seed_key, positions, data)
    found = np.asarray(_on_host(found))  # NumPy, not an eager JAX reduction (a compilation each)
    if init_kind == "values" and not bool(np.all(found)):
        raise _bad_init_error(posterior, positions, float(search["lp"]))
    if not bool(np.all(found)):
        raise _no_start_error(
            posterior,
            int(np.sum(~np.asarray(found))),
            num_chains,
            mode_search=init_kind == "mode",
        )
    # warmup, then every chain's step size set to the chains' median, then sampling
    carries, done = _run_in_chunks(programs.advance, carries, data, settings, bar, stop=num_warmup)
    adapted = None
    if done == num_warmup:
        if num_warmup:
            carries, adapted = _pool_step_size(carries)
        carries, done = _run_in_chunks(programs.advance, carries, data, settings, bar, begin=done)
    sampling_time = time.perf_counter() - start
    num_kept = max(done - num_warmup, 0)
    if num_kept == 0:
        raise KeyboardInterrupt(
            f"cm.nuts interrupted during warmup (step {done} of {num_warmup}); no draws were kept"
        )
    draws, stats, constrained, nonfinite = jax.tree.map(_on_host, programs.finish(carries, data))
    if num_kept < num_samples:
        draws, stats, constrained = jax.tree.map(
            lambda x: x[:, :num_kept], (draws, stats, constrained)
        )
    result = Posterior(
        Values((k, constrained[k]) for k in names),
        unconstrained=Values((k, draws[k]) for k in names),
        sample_stats={k: stats[k] for k in SAMPLE_STATS},
        observed=jax.tree.map(_on_host, dict(posterior.observed)),
        model=joint,
        attrs={
            "inference_library": "blackjax",
            "inference_library_version": blackjax.__version__,
            "num_warmup": num_warmup,
            "target_accept": float(target_accept),
            "mass_matrix": "dense" if dense_mass else "diagonal",
            "max_tree_depth": max_tree_depth,
            "chain_method": method,
            **({"adapted_step_sizes": adapted} if adapted is not None else {}),
            "compile_time": compile_time,
            "sampling_time": sampling_time,
            "init": init_kind,
            "nonfinite_warmup": int(np.sum(np.asarray(nonfinite["warmup"]))),
            "nonfinite_sampling": int(np.sum(np.asarray(nonfinite["sampling"]))),
            **(_search_attrs(search) if init_kind == "mode" else {}),
            **({"seed": int(seed)} if isinstance(seed, (int, np.integer)) else {}),
            **(
                {"partial": 1, "num_samples_requested": num_samples}
                if num_kept < num_samples
                else {}
            ),
        },
    )
    if num_kept < num_samples:
        warnings.warn(
            f"cm.nuts interrupted: returning the {num_kept} of {num_samples} draws per chain made "
            f"so far (post.attrs['partial'] = 1)",
            ConvergenceWarning,
            stacklevel=2,
        )
        return result
    messages = result.convergence_warnings()
    if result.attrs["nonfinite_sampling"]:
        messages.append(_nonfinite_message(posterior, nonfinite, num_kept * num_chains))
    for message in messages:
        warnings.warn(message, ConvergenceWarning, stacklevel=2)
    return result


def _nonfinite_message(posterior: PinnedModel, nonfinite: Mapping[str, Any], total: int) -> str:
    """One line: how many sampling transitions reached a non-finite log density, and the terms
    of the model that are not finite at one such point (the last of a chain that met one)."""
    counts = np.asarray(nonfinite["sampling"])
    chain = int(np.argmax(counts > 0))
    point = {k: np.asarray(v)[chain] for k, v in nonfinite["position"].items()}
    terms = _nonfinite_terms(posterior, point)
    where = (
        f"; at such a point (chain {chain}) the term of {terms}"
        if terms
        else f"; at such a point (chain {chain}) every term is finite but their sum is not"
    )
    per_chain = ", ".join(f"chain {c}: {int(n)}" for c, n in enumerate(counts) if n)
    return (
        f"{int(counts.sum())} of {total} sampling transitions reached a point where the log "
        f"density is not finite ({per_chain}), read there as zero density{where}: a value that "
        f"term does not accept (a prior wider than its use, e.g. a scale that can go negative); "
        f"give the parameters it reads priors on its support (post.attrs['nonfinite_sampling'])"
    )


def _nonfinite_terms(posterior: PinnedModel, point: Mapping[str, Any]) -> str:
    """The model terms (variables) with a NaN or infinite value at ``point`` (unconstrained)."""
    try:
        run = scoring.structure(
            posterior.joint.model, dict(posterior.observed), point, posterior.joint.max_paths
        )
    except Exception:  # noqa: BLE001 - a report, not a check: say nothing rather than fail
        return ""
    found = []
    for name, term, enumerated in run.plates.terms:
        term = np.asarray(term)
        # -inf is zero density: a real finding when no enumerated value is left (with summed-out
        # choices some of them may have zero probability)
        zero = np.isneginf(term).any() if not enumerated else np.isneginf(term).all()
        if np.isnan(term).any():
            found.append(f"{name!r} is NaN")
        elif np.isposinf(term).any() or zero:
            found.append(f"{name!r} is {float(term.flat[np.flatnonzero(~np.isfinite(term))[0]])}")
    return ", ".join(found[:3])


def _on_host(x: Any) -> Any:
    """``x`` readable in this process: an array spread over several processes' devices (data
    sharded over hosts) is gathered, a replicated one read from a local copy."""
    if bool(getattr(x, "is_fully_addressable", True)):
        return x
    if x.is_fully_replicated:
        return x.addressable_data(0)
    return multihost_utils.process_allgather(x, tiled=True)


def _logdensity(posterior: PinnedModel) -> Callable:
    """The log density NUTS samples: ``unconstrained_log_prob``, NaN read as ``-inf``."""

    def logdensity(u):
        lp = posterior.unconstrained_log_prob(u)
        return jnp.where(jnp.isnan(lp), -jnp.inf, lp)

    return logdensity


class _Settings(NamedTuple):
    """Everything about a fit except its data, seed and starting values: a program's key."""

    num_warmup: int
    num_samples: int
    num_chains: int
    target_accept: float
    dense_mass: bool
    max_tree_depth: int
    method: str
    init: str
    groups: int = 1  # "threads": the chains run as this many vmapped groups, one per thread


class _Programs(NamedTuple):
    """The compiled programs of one fit.

    ``start(seed_key, positions, observed) -> (carries, found, search)``: the chains' keys, their
    starting points and their initial NUTS and adaptation states, as a list of ``groups``
    carries of consecutive chains (one per thread; one carry in the other layouts);
    ``advance(carry, begin, end, observed) -> carry``: steps ``begin .. end - 1`` of every chain
    of one carry (it is donated); ``finish(carries, observed) -> (draws, stats, constrained
    draws, non-finite counts)`` of all chains.  The
    observed values are arguments (``observed``) of all three.
    """

    start: Callable
    advance: Callable
    finish: Callable
    chain_sharding: Any = None  # with chains split over devices: the carry's sharding


# Compiled programs kept per model (``JointDistributionCoroutine.program_cache``).
_CACHE_SIZE = 8


def _compiled_programs(
    joint: JointDistributionCoroutine,
    posterior: PinnedModel,
    settings: _Settings,
    seed_key: jax.Array,
    positions: Mapping[str, jax.Array],
    bar: _ProgressBar | None,
) -> _Programs:
    """The fit's programs, from the model's cache or traced and compiled now.

    The key is the model function and what it reads (:func:`~coromix.infer.programs.model_environment`),
    the settings, the precision and the names, shapes, dtypes and shardings of the observed values
    and the starting points; the data themselves are arguments.
    """
    observed = dict(posterior.observed)
    cache_key = (
        "coromix.nuts",
        model_environment(joint.model),
        joint.max_paths,
        settings,
        programs_signature(observed),
        programs_signature(dict(positions)),
        bool(jax.config.jax_enable_x64),
        jax.local_device_count(),
    )
    cached = joint.program_cache.get(cache_key)
    if cached is not None:
        return cached
    if bar is not None:
        what = " and the mode search" if settings.init == "mode" else ""
        bar.message(
            f"compiling NUTS{what} for {joint.name} ({settings.num_chains} chains, "
            f"{settings.method})"
        )
    # the model's values are never needed concrete while it is traced (pin already traced it
    # abstractly, event_shapes by sampling), so the observed values can always be arguments
    programs = _build_programs(joint, posterior, settings)
    programs = _compile(programs, seed_key, positions, observed)
    cache = joint.program_cache
    nuts_keys = [k for k in cache if isinstance(k, tuple) and k[:1] == ("coromix.nuts",)]
    for old in nuts_keys[: max(len(nuts_keys) - _CACHE_SIZE + 1, 0)]:
        del cache[old]
    cache[cache_key] = programs
    return programs


def _compile(
    programs: _Programs,
    seed_key: jax.Array,
    positions: Mapping[str, jax.Array],
    observed: Mapping[str, Any],
) -> _Programs:
    """Lower and compile the three programs for these argument shapes.  The start program is
    compiled on a thread while the chain programs are traced (XLA compiles without the GIL;
    about 5% of the whole compile phase of a small mixture, the tracing hidden).  Compiling the
    programs side by side gains nothing more: XLA's CPU compiler already uses the cores.  The
    chain steps are compiled for one carry of the start program's (one thread group's chains).
    """
    lowered = programs.start.lower(seed_key, positions, observed)
    index = jax.ShapeDtypeStruct((), jnp.int32)
    with ThreadPoolExecutor(1) as pool:
        start = pool.submit(lowered.compile)
        carries = lowered.out_info[0]
        if programs.chain_sharding is not None:
            carries = jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=programs.chain_sharding),
                carries,
            )
        advance = programs.advance.lower(carries[0], index, index, observed)
        finish = programs.finish.lower(carries, observed)
        advance = advance.compile()
        finish = finish.compile()
        start = start.result()
    # the chain programs were lowered before XLA chose the carry's layout, for the layout given
    # (chains over devices) or else one device; a carry that comes laid out otherwise (a model
    # that shards its own arrays over a mesh) gets them compiled again for its layout
    given = start.out_info[0]
    if programs.chain_sharding is None and not all(
        isinstance(x.sharding, SingleDeviceSharding) for x in jax.tree.leaves(given)
    ):
        advance = programs.advance.lower(given[0], index, index, observed).compile()
        stepped = [advance.out_info] * len(given)  # what finish gets: the chain steps' carries
        finish = programs.finish.lower(stepped, observed).compile()
    return programs._replace(start=start, advance=advance, finish=finish)


def _build_programs(
    joint: JointDistributionCoroutine,
    template: PinnedModel,
    settings: _Settings,
) -> _Programs:
    """The jitted (not yet compiled) programs of a fit; see :class:`_Programs`.  ``template`` is
    the fit's pinned model (its data's sharding decides where the chains' states live); inside
    the programs the model is pinned to the ``observed`` argument."""

    def pinned(observed):
        return joint.pin(observed)

    # One jitted function for the model's log density in all programs: the model is traced once
    # per program set (not once per use: the climbs, the curvature probe, the chains' first
    # gradients and the NUTS kernel), which was most of the tracing time of a long model.
    @jax.jit
    def density(observed, u):
        return _logdensity(pinned(observed))(u)

    def logdensity_of(observed):
        return lambda u: density(observed, u)

    chain = _chain_program(
        logdensity_of,
        num_warmup=settings.num_warmup,
        num_samples=settings.num_samples,
        dense_mass=settings.dense_mass,
        target_accept=settings.target_accept,
        max_tree_depth=settings.max_tree_depth,
    )
    chain_sharding = _chain_sharding(_data_mesh(template.observed))
    if settings.method in ("vectorized", "threads"):
        advance_chains = jax.vmap(chain.advance, in_axes=(0, None, None, None))
    else:
        mesh = Mesh(np.array(jax.local_devices()), ("chains",))
        spec, replicated = PartitionSpec("chains"), PartitionSpec()
        chain_sharding = NamedSharding(mesh, spec)
        advance_chains = jax.shard_map(
            jax.vmap(chain.advance, in_axes=(0, None, None, None)),
            mesh=mesh,
            in_specs=(spec, replicated, replicated, replicated),
            out_specs=spec,
            check_vma=False,
        )

    def start(seed_key, positions, observed):
        model = pinned(observed)
        logdensity = logdensity_of(observed)
        num_chains = settings.num_chains
        key = jax.random.wrap_key_data(seed_key)
        chain_keys = jax.random.key_data(jax.random.split(key, num_chains))
        search_key = jax.random.fold_in(key, 0x5EA2C4)
        # the first of each chain's three keys (the others are its warmup's and sampling's)
        start_keys = jax.vmap(lambda k: jax.random.split(jax.random.wrap_key_data(k), 3)[0])(
            chain_keys
        )
        found = jnp.ones(num_chains, bool)
        search: dict[str, jax.Array] = {}
        inverse_mass = at_starts = None
        if settings.init == "mode":
            find_mode = _mode_finder(model, logdensity)
            positions, inverse_mass, at_starts, search = find_mode(search_key, num_chains)
            found = jnp.broadcast_to(search["found"], found.shape)
        elif settings.init in ("uniform", "prior"):
            find = _start_finder(model, logdensity, from_prior=settings.init == "prior")
            positions, found = jax.vmap(find)(start_keys)
        else:  # "values": one point of constrained values for every chain
            point = model.to_unconstrained(positions)
            lp, grad = jax.value_and_grad(logdensity)(point)
            found = jnp.broadcast_to(_finite(lp, grad), found.shape)
            search = {"lp": lp}
            positions = jax.tree.map(lambda v: jnp.broadcast_to(v, (num_chains,) + v.shape), point)
        carry = jax.vmap(chain.init, in_axes=(0, 0, None, None, 0))(
            chain_keys, positions, observed, inverse_mass, at_starts
        )
        if chain_sharding is not None:
            carry = jax.lax.with_sharding_constraint(carry, chain_sharding)
        # one carry per thread group, cut here (eager slices of every array of the carry, and
        # their concatenation after, were 18 small compilations: about 0.6 s of a first fit)
        size = num_chains // settings.groups
        carries = [
            jax.tree.map(lambda x, i=i: x[i * size : (i + 1) * size], carry)
            for i in range(settings.groups)
        ]
        return carries, found, search

    def finish(carries, observed):
        carry = jax.tree.map(lambda *xs: jnp.concatenate(xs), *carries)
        draws, stats, nonfinite = jax.vmap(chain.finish)(carry)
        constrained = jax.vmap(jax.vmap(pinned(observed).to_constrained))(draws)
        return draws, stats, constrained, nonfinite

    return _Programs(
        jax.jit(start),
        jax.jit(advance_chains, donate_argnums=(0,)),
        jax.jit(finish),
        chain_sharding,
    )


def _pool_step_size(carries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[float]]:
    r"""Every chain's step size for sampling set to the median of the chains' adapted ones.

    Each chain's warmup ends with its own dual-averaging step size :math:`\epsilon_c`; sampling
    uses :math:`\tilde\epsilon = \exp(\operatorname{median}_c \log \epsilon_c)` in every chain
    (each keeps its own mass matrix).  The last window of dual averaging is short (50 steps of
    a 1000-step warmup), and on a posterior whose curvature varies (Hamilton's MS-AR(4)) single
    chains came out of it at twice or half the others' step size: one diverging in 5-9% of its
    draws at acceptance 0.35-0.45, another taking 1.5-2x the leapfrog steps at 0.95-0.98, and
    every chain that runs in lockstep with the slow one waits for it.  TFP's dual-averaging
    adaptation shares one step size across chains for the same reason (its ``reduce_fn``); the
    median keeps one chain that adapted in an odd place from setting it.  Takes and returns the
    carries of the thread groups (see :func:`_run_in_chunks`); also returns the chains' own step
    sizes (``post.attrs["adapted_step_sizes"]``).
    """
    own = np.concatenate([np.asarray(_on_host(c["tuning"].step_size)) for c in carries])
    if own.size < 2:
        return carries, own.tolist()
    pooled = np.exp(np.median(np.log(own)))

    def pool(carry):
        tuning = carry["tuning"]
        # placed as the carry's array is: it keeps its sharding (chains split over devices)
        old = tuning.step_size
        step_size = jax.device_put(np.full(old.shape, pooled, own.dtype), old.sharding)
        return {**carry, "tuning": tuning._replace(step_size=step_size)}

    return [pool(c) for c in carries], own.tolist()


# Wall time aimed at for one call of the chain program: Ctrl-C is seen between calls.
_CHUNK_SECONDS = 0.5
_FIRST_CHUNK = 10


def _run_in_chunks(
    advance: Callable,
    carries: list[Any],
    observed: Mapping[str, Any],
    settings: _Settings,
    bar: _ProgressBar | None,
    begin: int = 0,
    stop: int | None = None,
) -> tuple[list[Any], int]:
    """Run steps ``begin .. stop - 1`` (default: all) of all chains in calls of about
    ``_CHUNK_SECONDS`` each.

    Between calls the progress bar is updated and an interrupt (SIGINT, Ctrl-C) is looked for:
    during the run SIGINT only sets a flag (in the main thread), so a call in flight finishes and
    its steps are kept.  With ``settings.groups`` > 1 the chains are split into that many groups
    (``carries``, one carry of consecutive chains per group, as the start program cut them), each
    advanced by its own thread (a CPU device runs calls from several threads at once, so the
    groups use several cores; each group's vmapped steps wait only for the longest tree among
    its own chains).  Returns the carries and the number of steps every chain has made.
    """
    total = settings.num_warmup + settings.num_samples if stop is None else stop
    interrupted = threading.Event()
    restore = _catch_interrupt(interrupted)
    groups = settings.groups
    done_by_group = [begin] * groups
    lock = threading.Lock()

    def report(group: int, done: int) -> None:
        with lock:
            done_by_group[group] = done
            done = min(done_by_group)
        if bar is not None and done:
            if done <= settings.num_warmup:
                bar.update(0, done)
            else:
                bar.update(1, done - settings.num_warmup)

    def run(group: int, carry: Any) -> tuple[Any, int]:
        done, size = begin, _FIRST_CHUNK
        while done < total and not interrupted.is_set():
            end = min(done + size, total)
            if done < settings.num_warmup < end:
                end = settings.num_warmup  # the bar's warmup phase ends on its last step
            began = time.perf_counter()
            carry = jax.block_until_ready(advance(carry, np.int32(done), np.int32(end), observed))
            elapsed = time.perf_counter() - began
            steps, done = end - done, end
            report(group, done)
            rate = steps / max(elapsed, 1e-6)
            size = int(min(max(rate * _CHUNK_SECONDS, 1), 4 * steps))
        return carry, done

    try:
        if groups == 1:
            carry, done = run(0, carries[0])
            return [carry], done
        with ThreadPoolExecutor(groups, thread_name_prefix="coromix-chains") as pool:
            futures = [pool.submit(run, i, part) for i, part in enumerate(carries)]
            try:
                results = [future.result() for future in futures]
            finally:
                interrupted.set()  # on an error or a second Ctrl-C the other groups stop too
        carries, dones = zip(*results, strict=True)
        return list(carries), min(dones)
    finally:
        restore()


def _catch_interrupt(flag: threading.Event) -> Callable[[], None]:
    """Make SIGINT set ``flag`` (in the main thread); returns what puts the old handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:  # someone else handles it (or ignores it)
        return lambda: None

    def handler(signum, frame):
        if flag.is_set():  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        flag.set()

    signal.signal(signal.SIGINT, handler)
    return lambda: signal.signal(signal.SIGINT, previous)


def _check_settings(
    num_warmup: int, num_samples: int, num_chains: int, target_accept: float, max_tree_depth: int
) -> None:
    for name, value, least in [
        ("num_warmup", num_warmup, 0),
        ("num_samples", num_samples, 1),
        ("num_chains", num_chains, 1),
        ("max_tree_depth", max_tree_depth, 1),
    ]:
        if not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}; got {value!r}")
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must lie in (0, 1); got {target_accept!r}")


def _data_mesh(observed: Mapping[str, Any]) -> Mesh | None:
    """The mesh of the first observed array laid out over several devices, if any."""
    for leaf in jax.tree_util.tree_leaves(dict(observed)):
        sharding = getattr(leaf, "sharding", None)
        if isinstance(sharding, NamedSharding) and sharding.mesh.size > 1:
            return sharding.mesh
    return None


def _chain_sharding(mesh: Mesh | None) -> NamedSharding | None:
    """Where the chains' states live when the data are sharded over ``mesh``: split over its
    ``"chains"`` axis when it has one (a chains x data mesh), else replicated."""
    if mesh is None:
        return None
    axis = "chains" if "chains" in mesh.axis_names else None
    return NamedSharding(mesh, PartitionSpec(axis))


# "auto" runs the chains of a model with at most this many observed numbers as groups on threads
# (on one CPU device with several cores); above it XLA already spreads each operation over the
# cores and threads competing for them were slower (benchmarks/chain_layout.py).
_THREADS_MAX_OBSERVED = 20_000


def _observed_size(observed: Mapping[str, Any]) -> int:
    return sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(dict(observed)))


def _resolve_chain_method(
    chain_method: str,
    num_chains: int,
    data_mesh: Mesh | None = None,
    observed_size: int = 0,
) -> str:
    """The chain layout ``"auto"`` stands for, or the given one checked.

    ``"auto"``: ``"parallel"`` when there are several local devices and they divide
    ``num_chains``; else, on a CPU with several cores, ``"threads"`` for models with at most
    ``_THREADS_MAX_OBSERVED`` observed numbers (their gradient is a sequence of small operations
    that one core runs; a forward algorithm's scan is the extreme case); else ``"vectorized"``.
    """
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {CHAIN_METHODS}; got {chain_method!r}")
    if data_mesh is not None:
        # the data's sharding decides the layout: the chains are vmapped and XLA partitions
        # the density over the data's devices (and the chains over a "chains" axis)
        if chain_method in ("parallel", "threads"):
            raise ValueError(
                f"chain_method={chain_method!r} splits the chains, but the "
                f"observed values are sharded over a mesh {dict(data_mesh.shape)}; use "
                "chain_method='auto' (a 'chains' axis of that mesh splits the chains)"
            )
        return "vectorized"
    devices = jax.local_device_count()
    divides = num_chains % devices == 0
    if chain_method == "parallel" and not divides:
        raise ValueError(
            f"chain_method='parallel' splits the chains evenly over the "
            f"{devices} local devices; num_chains={num_chains} is not a multiple"
        )
    if chain_method != "auto":
        return chain_method
    if devices > 1 and divides:
        return "parallel"
    small = observed_size <= _THREADS_MAX_OBSERVED
    if jax.default_backend() == "cpu" and small and _thread_groups(num_chains) > 1:
        return "threads"
    return "vectorized"


def _cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _thread_groups(num_chains: int) -> int:
    """How many groups ``chain_method="threads"`` splits the chains into: the largest divisor of
    ``num_chains`` that is at most the number of cores."""
    most = min(_cores(), num_chains)
    return max(g for g in range(1, most + 1) if num_chains % g == 0)


def _finite(lp: jax.Array, grad: Any) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(grad)
    return jnp.isfinite(lp) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in leaves]))


def _given_values(posterior: PinnedModel, init: Mapping[str, Any]) -> dict[str, jax.Array]:
    """``init=`` (constrained values) as arrays, checked against the model's parameters by an
    abstract run (no model evaluation here: the start program maps them to unconstrained space
    and checks the log density there)."""
    shapes = posterior.parameter_shapes
    values = {k: jnp.asarray(v) for k, v in init.items()}
    try:
        jax.eval_shape(posterior.to_unconstrained, values)
    except ValueError as err:
        raise ValueError(
            f"init= does not fit model {posterior.joint.name!r} (its parameters: "
            f"{list(shapes)}): {err}"
        ) from err
    return values


def _bad_init_error(posterior: PinnedModel, values: Mapping[str, Any], lp: float) -> ValueError:
    """Why ``init=`` gave no finite log density: a value outside its support (found by the eager,
    checked run of the model, only on this error path) or a point of zero density."""
    shapes = list(posterior.parameter_shapes)
    try:
        posterior.to_unconstrained(values)
    except ValueError as err:
        return ValueError(
            f"init= does not fit model {posterior.joint.name!r} (its parameters: {shapes}): {err}"
        )
    return ValueError(
        f"init= is a point where the log density of {posterior.joint.name!r} is {lp} or its "
        f"gradient is not finite; give values inside the support of each parameter {shapes}"
    )


def _start_finder(
    posterior: PinnedModel, logdensity: Callable, from_prior: bool = False
) -> Callable:
    """``find(key) -> (position, found)``: a starting point with finite log density and gradient.

    Up to ``_INIT_TRIES`` points uniform in ``(-2, 2)`` on unconstrained space, as in Stan and
    NumPyro; with ``from_prior``, a draw from the prior first.  It runs inside the compiled chain
    program (about 0.5 s more compilation there, where a separate program cost 2 s; the prior
    draw adds about 1 s, which is why it is not the default).  When a chain finds no start, the
    error comes after the run.
    """

    def finite_at(point):
        return _finite(*jax.value_and_grad(logdensity)(point))

    def find(key):
        first, key = jax.random.split(key)
        if from_prior:
            point = posterior.prior_draw(first)
        else:
            point = posterior.init(first, radius=_INIT_RADIUS)

        def another(carry):
            _, _, tries, key = carry
            key, sub = jax.random.split(key)
            point = posterior.init(sub, radius=_INIT_RADIUS)
            return point, finite_at(point), tries + 1, key

        point, found, _, _ = jax.lax.while_loop(
            lambda carry: ~carry[1] & (carry[2] < _INIT_TRIES),
            another,
            (point, finite_at(point), jnp.ones((), jnp.int32), key),
        )
        return point, found

    return find


def _mode_finder(posterior: PinnedModel, logdensity: Callable) -> Callable:
    """``find(key, num_chains) -> (positions, variance, at_starts, search)``: chain starts in the
    dominant mode.

    L-BFGS climbs (:func:`coromix.infer.lbfgs.maximize`) from ``_SEARCH_PATHS`` points uniform in
    ``(-2, 2)`` on unconstrained space, at most ``_SEARCH_ITERATIONS`` steps each; the highest
    point reached is taken as the dominant mode.  Every chain starts at its own draw
    ``mode + sd * z``, ``z`` standard normal and ``sd`` the square root of the diagonal of the
    climb's inverse-Hessian approximation (at most 1): dispersed within that one mode on its own
    scale, so the chains of a mixture also share one labelling of its components.

    ``variance`` is the chains' first inverse mass matrix (see :func:`_tuner`), the posterior's
    scale on every axis at the mode: the larger of that diagonal and ``1 / c_i``, ``c_i`` the
    curvature ``-d^2 log p / dq_i^2`` from central differences of the gradient (half the climb's
    scale to each side; up to ``_MAX_PROBED`` parameters, ``2 d`` gradients), clipped to
    ``[_MIN_VARIANCE, _MAX_VARIANCE]``.  The climb's diagonal alone knows only the directions it
    moved along (an HMM's weakly identified initial distribution: 0.015 for a variance of 2).
    Starting from the identity, as Stan and BlackJAX do, the first 100 warmup steps of a model
    whose posterior scales are far from 1 (an HMM with 2000 observations: scales 0.01-1.4) take
    step sizes near 0.005 and hundreds of leapfrog steps each: three quarters of the gradient
    evaluations of that fit (86 thousand, against 22 thousand from the probed scales).

    The climbs, the probe and the chains' starts are evaluated by one loop, ``_SEARCH_PATHS``
    points per pass (the climbs' trial points, then the probe's and starts' points), so the
    program holds one copy of the model's value and gradient (start program of Hamilton's
    MS-AR(4): 5.2 -> 3.3 s to compile, same run).

    ``at_starts`` is ``(log density, gradient)`` at the chains' starts (raveled).  ``search``
    reports ``found`` (some climb reached a finite log density), the final log density
    ``lp`` and ``converged`` flag of each climb, and ``best``, the index of the climb used.
    """

    def find(key, num_chains):
        start_key, restart_key, draw_key = jax.random.split(key, 3)
        _, unravel = ravel_pytree(posterior.init(start_key))

        def uniform_point(k):
            return ravel_pytree(posterior.init(k, radius=_INIT_RADIUS))[0]

        # the one copy of the model's value and gradient in the program, over a batch of points
        value_and_grad = jax.vmap(jax.value_and_grad(lambda q: logdensity(unravel(q))))
        climb_settings = {"max_iterations": _SEARCH_ITERATIONS, "restart": uniform_point}
        width = _SEARCH_PATHS
        climbs = jax.vmap(lbfgs.start)(
            jax.vmap(uniform_point)(jax.random.split(start_key, width)),
            jax.random.split(restart_key, width),
        )
        d = climbs.x.shape[-1]
        dtype = climbs.x.dtype
        probed = d <= _MAX_PROBED
        # the points evaluated after the climbs: +-h along every axis around the mode (when
        # probed), then the chains' starts; ``width`` per pass of the loop
        num_points = (2 * d if probed else 0) + num_chains
        passes = -(-num_points // width)

        class Loop(NamedTuple):
            climbs: Any
            probing: jax.Array  # the climbs are done; the loop evaluates ``points``
            index: jax.Array  # the next pass over ``points``
            points: jax.Array
            lps: jax.Array
            grads: jax.Array
            spread: jax.Array

        def best_of(climbs):
            lp = jnp.where(jnp.isfinite(climbs.f), climbs.f, -jnp.inf)
            return lp, jnp.argmax(lp)

        def prepare(loop):
            # the climbs have ended: the highest is the mode; the chains start around it
            _, best = best_of(loop.climbs)
            end = lbfgs.result(jax.tree.map(lambda x: x[best], loop.climbs))
            spread = jnp.clip(end.inverse_hessian_diagonal, _MIN_VARIANCE, 1.0)
            mode = end.position
            noise = jax.random.normal(draw_key, (num_chains, d), dtype)
            starts = mode + jnp.sqrt(spread) * noise
            parts = [starts]
            if probed:
                h = 0.5 * jnp.sqrt(spread)
                parts = [mode + jnp.diag(h), mode - jnp.diag(h), starts]
            pad = jnp.broadcast_to(mode, (passes * width - num_points, d))
            points = jnp.concatenate(parts + [pad])
            return loop._replace(probing=jnp.asarray(True), points=points, spread=spread)

        def climb(loop, f, g):
            climbs = jax.vmap(lambda st, f, g: lbfgs.update(st, f, g, **climb_settings))(
                loop.climbs, f, g
            )
            loop = loop._replace(climbs=climbs)
            return jax.lax.cond(jnp.all(climbs.done), prepare, lambda x: x, loop)

        def record(loop, f, g):
            at = loop.index * width
            return loop._replace(
                index=loop.index + 1,
                lps=jax.lax.dynamic_update_slice_in_dim(loop.lps, f, at, 0),
                grads=jax.lax.dynamic_update_slice_in_dim(loop.grads, g, at, 0),
            )

        def body(loop):
            chunk = jax.lax.dynamic_slice_in_dim(loop.points, loop.index * width, width, 0)
            points = jnp.where(loop.probing, chunk, jax.vmap(lbfgs.trial)(loop.climbs))
            f, g = value_and_grad(points)
            return jax.lax.cond(loop.probing, record, climb, loop, f, g)

        loop = Loop(
            climbs,
            jnp.asarray(False),
            jnp.zeros((), jnp.int32),
            jnp.zeros((passes * width, d), dtype),
            jnp.zeros(passes * width, dtype),
            jnp.zeros((passes * width, d), dtype),
            jnp.ones(d, dtype),
        )
        loop = jax.lax.while_loop(lambda c: ~(c.probing & (c.index >= passes)), body, loop)
        lp, best = best_of(loop.climbs)
        first = 2 * d if probed else 0
        positions = loop.points[first : first + num_chains]
        at_starts = (loop.lps[first : first + num_chains], loop.grads[first : first + num_chains])
        variance = loop.spread
        if probed:
            # the curvature along each axis: central differences of the gradient, a step of
            # half the climb's scale to each side
            h = 0.5 * jnp.sqrt(loop.spread)
            upper, lower = jnp.diagonal(loop.grads[:d]), jnp.diagonal(loop.grads[d : 2 * d])
            curvature = -(upper - lower) / (2 * h)
            probed_var = jnp.where(
                curvature > 0, 1.0 / jnp.where(curvature > 0, curvature, 1.0), 0.0
            )
            probed_var = jnp.where(jnp.isfinite(probed_var), probed_var, 0.0)
            variance = jnp.clip(jnp.maximum(loop.spread, probed_var), _MIN_VARIANCE, _MAX_VARIANCE)
        search = {
            "found": jnp.isfinite(lp[best]),
            "lp": lp,
            "best": best,
            "converged": loop.climbs.converged,
        }
        return jax.vmap(unravel)(positions), variance, at_starts, search

    return find


def _search_attrs(search: Mapping[str, Any]) -> dict[str, Any]:
    """What the mode search found, as scalar attributes of the fit."""
    if not search:
        return {}
    lp = np.asarray(search["lp"])
    finite = np.isfinite(lp)
    best = float(lp[int(search["best"])])
    return {
        "search_climbs": int(lp.size),
        "search_climbs_finite": int(finite.sum()),
        "search_climbs_converged": int(np.sum(np.asarray(search["converged"]))),
        "search_best_lp": best,
        # climbs that ended more than 1 nat below the best: in other (minor) modes
        "search_climbs_below": int(np.sum(finite & (lp < best - 1.0))),
    }


def _no_start_error(
    posterior: PinnedModel, failed: int, num_chains: int, mode_search: bool = False
) -> ValueError:
    tried = (
        f"{_SEARCH_PATHS} climbs of up to 31 starting points each (uniform in "
        f"(-{_INIT_RADIUS:g}, {_INIT_RADIUS:g}) on unconstrained space)"
        if mode_search
        else f"{_INIT_TRIES} points per chain (uniform in (-{_INIT_RADIUS:g}, "
        f"{_INIT_RADIUS:g}) on unconstrained space, after a prior draw with init='prior')"
    )
    return ValueError(
        f"no starting point with a finite log density and gradient for model "
        f"{posterior.joint.name!r}: {tried} for its parameters "
        f"{dict(posterior.parameter_shapes)} all failed in {failed} of {num_chains} chains. "
        f"Check the observed values {list(posterior.observed)} against the supports of their "
        f"distributions, or give init= with constrained values for every parameter"
    )


# Stage of each step of the one loop: warmup steps by Stan's window schedule (BlackJAX's
# ``build_schedule``: fast, slow, last step of a slow window), then sampling with frozen tuning.
_FAST, _SLOW, _SLOW_END, _FROZEN = 0, 1, 2, 3


class _Tuning(NamedTuple):
    """The adaptation state carried through the loop, as BlackJAX's window adaptation keeps it.

    ``step_size`` and ``inverse_mass_matrix`` are what the NUTS kernel uses at the next step;
    ``dual_averaging`` and ``mass_matrix`` are BlackJAX's step size and Welford states.
    """

    dual_averaging: DualAveragingAdaptationState
    mass_matrix: MassMatrixAdaptationState
    step_size: jax.Array
    inverse_mass_matrix: jax.Array


def _stages(num_warmup: int, num_samples: int) -> np.ndarray:
    """The stage of every step: BlackJAX's (Stan's) window schedule, then ``_FROZEN``."""
    warmup = np.zeros(0, np.int32)
    if num_warmup:
        schedule = np.asarray(build_schedule(num_warmup), np.int32)
        warmup = schedule[:, 0] + schedule[:, 1]  # a window end is always a slow step
    return np.concatenate([warmup, np.full(num_samples, _FROZEN, np.int32)])


def _tuner(num_warmup: int, dense_mass: bool, target_accept: float) -> tuple[Callable, Callable]:
    """``init(position, variance=None) -> tuning`` and ``update(tuning, stage, index, position,
    accept)``.

    BlackJAX's pieces of ``window_adaptation`` (dual averaging of the step size, Welford estimate
    of the inverse mass matrix) composed as its engine composes them: fast steps adapt the step
    size; slow steps also feed the mass matrix estimate; the last step of a slow window sets the
    inverse mass matrix from that window (regularized as Stan's) and restarts dual averaging from
    the window's average step size.  After the last warmup step the step size is
    ``exp(log_step_size_avg)`` and the inverse mass matrix the last window's, as in BlackJAX's
    ``final``; sampling steps leave the tuning as it is.  The inverse mass matrix until the end of
    the first slow window is the identity, as in BlackJAX, or ``diag(variance)`` when given (the
    Welford estimate starts empty either way).
    """
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)
    mm_init, mm_update, mm_final = mass_matrix_adaptation(is_diagonal_matrix=not dense_mass)

    def init(position, variance=None):
        dtype = position.dtype
        mass_matrix = mm_init(position.shape[0])
        inverse_mass = mass_matrix.inverse_mass_matrix
        if variance is not None:  # the first windows' metric: the start's curvature
            inverse_mass = jnp.diag(variance) if dense_mass else variance
        tuning = _Tuning(
            da_init(jnp.ones((), dtype)),
            mass_matrix,
            jnp.ones((), dtype),
            jnp.asarray(inverse_mass, dtype),
        )
        # the dtypes a step gives them (BlackJAX starts some of them as Python numbers)
        return _like(tuning, jax.eval_shape(fast, tuning, position, jnp.ones((), dtype)))

    def fast(tuning, position, accept):
        state = da_update(tuning.dual_averaging, accept)
        return tuning._replace(dual_averaging=state, step_size=jnp.exp(state.log_step_size))

    def slow(tuning, position, accept):
        tuning = fast(tuning, position, accept)
        return tuning._replace(mass_matrix=mm_update(tuning.mass_matrix, position))

    def slow_end(tuning, position, accept):
        tuning = slow(tuning, position, accept)
        mass_matrix = mm_final(tuning.mass_matrix)
        state = da_init(da_final(tuning.dual_averaging))
        return _Tuning(
            state, mass_matrix, jnp.exp(state.log_step_size), mass_matrix.inverse_mass_matrix
        )

    def frozen(tuning, position, accept):
        return tuning

    def final(tuning):
        # after the last warmup step, as BlackJAX's window adaptation ends
        return tuning._replace(
            step_size=jnp.exp(tuning.dual_averaging.log_step_size_avg),
            inverse_mass_matrix=tuning.mass_matrix.inverse_mass_matrix,
        )

    def typed(step):
        # every branch returns the types it was given (the scalars BlackJAX starts from and
        # restarts dual averaging with are Python numbers)
        return lambda tuning, *args: _like(step(tuning, *args), tuning)

    branches = [typed(step) for step in (fast, slow, slow_end, frozen)]  # _FAST, _SLOW, ...

    def update(tuning, stage, index, position, accept):
        tuning = jax.lax.switch(stage, branches, tuning, position, accept)
        return jax.lax.cond(index == num_warmup - 1, typed(final), lambda t: t, tuning)

    return init, update


def _like(tree: Any, reference: Any) -> Any:
    """``tree`` with the dtypes of ``reference`` (a tree of arrays or shape structs)."""
    return jax.tree.map(lambda x, r: jnp.asarray(x, r.dtype), tree, reference)


class _Chain(NamedTuple):
    """One chain's program in three parts (see :func:`_chain_program`)."""

    init: Callable
    advance: Callable
    finish: Callable


def _chain_program(
    logdensity_of: Callable,
    *,
    num_warmup: int,
    num_samples: int,
    dense_mass: bool,
    target_accept: float,
    max_tree_depth: int,
) -> _Chain:
    """One chain: ``num_warmup`` adapting steps, then ``num_samples`` steps whose draws are kept.

    ``init(key_data, position, observed, inverse_mass=None, at_start=None) -> carry``
    (``inverse_mass``: the diagonal the first warmup windows use instead of the identity;
    ``at_start``: the log density and gradient at ``position`` when already known); ``advance(carry, begin, end,
    observed) -> carry`` runs steps ``begin .. end - 1`` of the ``num_warmup + num_samples`` steps of one NUTS
    kernel (BlackJAX's ``nuts.build_kernel``); ``finish(carry) -> (draws, sample_stats)``.
    ``logdensity_of(observed)`` is the log density on unconstrained space given the observed
    values.  The step size and inverse mass matrix are carried: during warmup they are adapted
    after every step as BlackJAX's ``window_adaptation`` adapts them (see :func:`_tuner`), during
    sampling they stay fixed.  The compiled program then holds one copy of the NUTS trajectory
    builder and of the model's density and gradient, where a window adaptation followed by a
    separate sampling loop held two (for the coal-mining change point the optimized program is a
    third smaller and compiles in 10-15% less CPU time).  The steps use the same random keys as
    that pair of loops did, and give the same draws, however the steps are split into calls.

    NUTS moves on the parameters raveled into one vector: every state it keeps (position,
    momentum, gradient, the ends of the trajectory) is then one array instead of one per variable,
    which halves the size of the compiled program.  The draws are written into buffers of
    ``num_samples`` rows in the carry (the warmup steps write row 0, which the first draw
    overwrites), so warmup leaves no trace in memory.
    """
    kernel = blackjax.nuts.build_kernel(velocity_verlet)
    init_tuning, update_tuning = _tuner(num_warmup, dense_mass, target_accept)
    stages = _stages(num_warmup, num_samples)

    def flat_density(observed, unravel):
        model_logdensity = logdensity_of(observed)
        return lambda q: model_logdensity(unravel(q))

    def init(key_data, position, observed, inverse_mass=None, at_start=None):
        flat, unravel = ravel_pytree(position)
        if at_start is None:
            state = blackjax.nuts.init(flat, flat_density(observed, unravel))
        else:  # the log density and its gradient there, already computed
            state = HMCState(flat, *at_start)
        tuning = init_tuning(flat, inverse_mass)
        real = jnp.result_type(flat, state.logdensity)
        stats_like = {  # the types of BlackJAX's NUTSInfo fields (its counts: default ints)
            "diverging": jnp.zeros((), bool),
            "tree_depth": jnp.zeros((), int),
            "n_steps": jnp.zeros((), int),
            "acceptance_rate": jnp.zeros((), real),
            "energy": jnp.zeros((), real),
            "step_size": tuning.step_size,
            "lp": state.logdensity,
        }
        buffers = jax.tree.map(
            lambda x: jnp.zeros((num_samples,) + x.shape, x.dtype), (flat, stats_like)
        )
        # the template of the parameters (zeros: only its structure is used), to unravel
        template = jax.tree.map(jnp.zeros_like, position)
        # transitions whose trajectory reached a non-finite log density, and the last such point
        nonfinite = {
            "warmup": jnp.zeros((), jnp.int32),
            "sampling": jnp.zeros((), jnp.int32),
            "position": jnp.zeros_like(flat),
        }
        return {
            "key": key_data,
            "state": state,
            "tuning": tuning,
            "buffers": buffers,
            "template": template,
            "nonfinite": nonfinite,
        }

    def advance(carry, begin, end, observed):
        _, unravel = ravel_pytree(carry["template"])
        logdensity = flat_density(observed, unravel)
        _, warmup_key, sample_key = jax.random.split(jax.random.wrap_key_data(carry["key"]), 3)
        keys = jnp.concatenate(
            [
                jax.random.split(warmup_key, num_warmup),
                jax.random.split(sample_key, num_samples),
            ]
        )
        all_stages = jnp.asarray(stages)

        def one_step(index, loop):
            state, tuning, buffers, nonfinite = loop
            state, info = kernel(
                keys[index],
                state,
                logdensity,
                tuning.step_size,
                tuning.inverse_mass_matrix,
                max_num_doublings=max_tree_depth,
            )
            stats = {
                "diverging": info.is_divergent,
                "tree_depth": info.num_trajectory_expansions,
                "n_steps": info.num_integration_steps,
                "acceptance_rate": info.acceptance_rate,
                "energy": info.energy,
                "step_size": tuning.step_size,
                "lp": state.logdensity,
            }
            row = jnp.maximum(index - num_warmup, 0)
            buffers = jax.tree.map(
                lambda b, x: jax.lax.dynamic_update_index_in_dim(b, x.astype(b.dtype), row, 0),
                buffers,
                (state.position, stats),
            )
            tuning = update_tuning(
                tuning, all_stages[index], index, state.position, info.acceptance_rate
            )
            nonfinite = _count_nonfinite(nonfinite, info, index >= num_warmup)
            return state, tuning, buffers, nonfinite

        loop = (carry["state"], carry["tuning"], carry["buffers"], carry["nonfinite"])
        state, tuning, buffers, nonfinite = jax.lax.fori_loop(begin, end, one_step, loop)
        return {
            **carry,
            "state": state,
            "tuning": tuning,
            "buffers": buffers,
            "nonfinite": nonfinite,
        }

    def finish(carry):
        _, unravel = ravel_pytree(carry["template"])
        positions, stats = carry["buffers"]
        nonfinite = {**carry["nonfinite"], "position": unravel(carry["nonfinite"]["position"])}
        return jax.vmap(unravel)(positions), stats, nonfinite

    return _Chain(init, advance, finish)


def _count_nonfinite(nonfinite: dict, info: Any, sampling: jax.Array) -> dict:
    """Count a transition whose trajectory reached a non-finite log density (an end of the
    trajectory: where the integration stopped) and keep that point."""
    left, right = info.trajectory_leftmost_state, info.trajectory_rightmost_state
    bad_left = ~jnp.isfinite(left.logdensity)
    bad = bad_left | ~jnp.isfinite(right.logdensity)
    return {
        "warmup": nonfinite["warmup"] + (bad & ~sampling),
        "sampling": nonfinite["sampling"] + (bad & sampling),
        "position": jnp.where(
            bad, jnp.where(bad_left, left.position, right.position), nonfinite["position"]
        ),
    }


class _ProgressBar:
    """A one-line text bar per phase on stderr, fed from the compiled loop by host callbacks.

    Callbacks may come from several devices and out of order, so each phase keeps the furthest
    step reported.  On a stream that is not a terminal only each finished phase is written.
    """

    def __init__(
        self, phases: Mapping[int, tuple[str, int]], stream: TextIO | None = None, width: int = 30
    ) -> None:
        self.phases = dict(phases)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.live = self.stream.isatty()
        self.done = {phase: 0 for phase in phases}
        self.started: dict[int, float] = {}
        self.lock = threading.Lock()

    def message(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, phase: Any, done: Any) -> None:
        phase, done = int(phase), int(done)
        with self.lock:
            self.started.setdefault(phase, time.perf_counter())
            if done <= self.done[phase]:
                return
            self.done[phase] = done
            label, total = self.phases[phase]
            if not self.live and done < total:
                return
            filled = self.width * done // total
            bar = "#" * filled + "." * (self.width - filled)
            elapsed = time.perf_counter() - self.started[phase]
            line = f"{label:<8} [{bar}] {done:>{len(str(total))}}/{total}  {elapsed:6.1f}s"
            end = "\n" if done == total else ""
            self.stream.write(("\r" if self.live else "") + line + end)
            self.stream.flush()
