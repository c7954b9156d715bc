r"""MAP: the mode of ``p(parameters | observed)`` in the model's own parametrization, by L-BFGS.

The mode of the constrained density ``p(x | data)`` is found by maximizing over unconstrained ``u``

.. math::

    \ell(u) = \log p(T(u), \mathrm{data})

*without* the log-det-Jacobian of ``T`` (each support's bijection onto the reals): the
reparametrization only moves the search, it does not change which point is the mode (with the
Jacobian it would be the mode of the density of ``u``, a different point).  Finite discrete
variables are summed out, so ``\ell`` is smooth.  With flat priors (``Uniform`` on a wide interval
for locations and scales, ``Dirichlet(ones)`` for probability vectors) the mode is the maximum
likelihood estimate.

Search: L-BFGS (``optax.lbfgs``, its zoom line search enforcing the strong Wolfe conditions) on
``-\ell`` from several starts at once (``jax.vmap`` over one compiled ``jax.lax.while_loop``); each
start stops on its own convergence criterion, and the highest end is kept (of ends equal up to
rounding, a converged one).  The value and gradient at each accepted point are read from the line
search's state, so the program holds the model's gradient three times (the start, and the zoom's
two phases); for data of thousands of points compilation, not the climb, takes most of the time.
(The mode search that starts NUTS uses the single-evaluation L-BFGS of
:mod:`coromix.infer.lbfgs` instead, for that reason.)

Standard errors (optional): at the mode ``\hat u`` the observed information on unconstrained space
is ``I = -\nabla^2 \ell(\hat u)``; the asymptotic covariance of ``x = T(u)`` follows by the delta
method, ``\Sigma_x = J I^{-1} J^\top`` with ``J = \partial T / \partial u`` at ``\hat u``.  Because
``\nabla \ell(\hat u) = 0`` this equals the inverse observed information in the model's own
parameters (restricted to the support's tangent space, e.g. the simplex for a ``Dirichlet``
variable), so it does not depend on the choice of ``T``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from coromix.infer.nuts import pin_model
from coromix.joint import JointDistributionCoroutine
from coromix.results import ConvergenceWarning
from coromix.runner import Values
from coromix.utils import as_key

# Default stopping tolerances by float precision: ``gtol`` on the largest gradient coordinate
# relative to ``max(1, |log density|)``, ``ftol`` on the relative change of the log density.
_GTOL = {"float64": 1e-8, "float32": 1e-5}
_FTOL = {"float64": 1e-13, "float32": 1e-7}

# Consecutive iterations within ftol that count as no change: in float32 the value often stays
# put for an iteration or two while the line search (on slopes) still makes progress.
_PATIENCE = 5

# A rise of the minimized objective by at most this many units in the last place (relative) is
# rounding, and the step is taken.
_ROUNDING = 16

# Why each climb stopped.
_RUNNING, _GRADIENT, _NO_CHANGE, _MAX_STEPS, _STALLED, _NOT_FINITE = range(6)


class MAPEstimate(Values):
    """The mode: name -> constrained value, in model order, with how it was found.

    Attributes:
        log_density: ``log p(mode, observed)`` (discrete variables summed out, no Jacobian).
        converged: whether the chosen restart stopped on the gradient or relative-change
            criterion (not on ``max_steps`` or a line search that could not rise).
        num_steps: L-BFGS iterations the chosen restart used.
        gradient_norm: ``max |d log p / du|`` at the mode, on unconstrained space.
        restart_log_densities: the final log density of every restart (``-inf`` for a restart
            that never had a finite one); restarts that agree at the top point to one mode.
        restart_converged: the ``converged`` flag of every restart.
        standard_errors: with ``standard_errors=True``, name -> asymptotic standard error (each
            variable's shape); otherwise ``None``.
        covariance: with ``standard_errors=True``, the asymptotic covariance of all constrained
            values, flattened in model order (``jax.flatten_util.ravel_pytree``); else ``None``.

    These are attributes, so a model variable with one of these names is read as ``est["..."]``.
    """

    def __init__(
        self,
        items: Iterable[tuple[str, Any]],
        log_density: float,
        *,
        converged: bool = True,
        num_steps: int = 0,
        gradient_norm: float = float("nan"),
        restart_log_densities: Any = None,
        restart_converged: Any = None,
        standard_errors: Values | None = None,
        covariance: Any = None,
    ) -> None:
        super().__init__(items)
        self.log_density = log_density
        self.converged = converged
        self.num_steps = num_steps
        self.gradient_norm = gradient_norm
        self.restart_log_densities = restart_log_densities
        self.restart_converged = restart_converged
        self.standard_errors = standard_errors
        self.covariance = covariance


class _Climb(NamedTuple):
    u: jax.Array
    state: Any
    value: jax.Array  # of the minimized objective -log p
    grad: jax.Array
    steps: jax.Array
    unchanged: jax.Array  # consecutive iterations whose change was within ftol
    status: jax.Array


def map(
    model: JointDistributionCoroutine | Callable[[], Any],
    observed: Mapping[str, Any] | None = None,
    *,
    num_restarts: int = 8,
    max_steps: int = 1000,
    gtol: float | None = None,
    ftol: float | None = None,
    prior_start: bool = False,
    standard_errors: bool = False,
    seed: Any = 0,
    num_steps: int | None = None,
) -> MAPEstimate:
    r"""Maximum a posteriori values of the free continuous variables.

    Maximizes ``log p(x, observed)`` (finite discrete variables summed out) over ``x = T(u)``,
    ``u`` unconstrained, by L-BFGS with a zoom (strong Wolfe) line search, from ``num_restarts``
    points uniform in ``(-2, 2)`` on unconstrained space (and the prior draw with
    ``prior_start=True``), all restarts in one compiled program; the restart with the highest
    log density is returned.

    Each restart is one ``jax.lax.while_loop`` that runs until its own stopping rule holds.  It
    has *converged* when, at an accepted step,

    - ``max_i |d log p / du_i| <= gtol * max(1, |log p|)``: the largest gradient coordinate on
      unconstrained space, relative to the size of the log density (as a log likelihood's
      gradient grows with the data); default ``1e-8`` in float64, ``1e-5`` in float32; or
    - the log density changed by at most ``ftol * max(1, |log p|)`` over each of 5 consecutive
      iterations (default ``1e-13`` in float64, ``1e-7`` in float32: the precision's
      resolution); or the line search found no point that rises after such an iteration (the
      value's rounding is reached: the usual end in float32).

    It stops *without converging* after ``max_steps`` iterations, or when the line search finds
    no point that rises (the last good point is kept).  A restart whose log density or gradient is
    not finite at its start is dropped (its ``restart_log_densities`` entry is ``-inf``); a step
    to a non-finite value is never taken.  When the best restart did not converge a
    :class:`~coromix.results.ConvergenceWarning` is issued.  A mode on the boundary of a support
    (a scale at 0) is approached, never reached, and such a climb usually ends unconverged.

    Args:
        model: a ``JointDistributionCoroutine`` or the generator function of one.
        observed: name -> observed value.
        num_restarts: random starts (uniform in ``(-2, 2)`` on unconstrained space).
        max_steps: most L-BFGS iterations per restart (``num_steps`` is an older name for it).
        gtol, ftol: the stopping tolerances above; ``None`` for the precision's default.
        prior_start: also start one climb from a draw of the prior.
        standard_errors: also compute asymptotic standard errors (below).
        seed: int or JAX key for the starting points.

    Returns:
        A :class:`MAPEstimate`: name -> constrained value, with ``log_density``, ``converged``,
        ``num_steps``, ``gradient_norm``, ``restart_log_densities`` (``restart_converged``), and
        with ``standard_errors=True`` also ``standard_errors`` and ``covariance``.

    Standard errors: the observed information ``I = -d^2 log p / du du^T`` at the mode (the
    exact Hessian of the raveled ``u``, reverse over reverse: ``jax.jacrev(jax.grad(.))``, as the
    forward algorithm's custom VJP has no forward mode for ``jax.hessian``), and the delta method
    to the model's own parameters, ``Cov(x) = J I^{-1} J^T`` with ``J = dT/du``; with flat
    priors these are the usual maximum likelihood standard errors (inverse observed
    information).  When ``I`` is not positive
    definite (not a strict maximum: a flat direction, a saddle) a ``ConvergenceWarning`` says so
    and every standard error is ``nan``.

    Example: with a flat prior the mode is the maximum likelihood estimate, here the mean of
    the data, 1.26, with standard error ``1 / sqrt(5)``:

    >>> import jax.numpy as jnp
    >>> import coromix as cm
    >>> tfd = cm.distributions
    >>> data = jnp.array([1.2, 0.4, 2.1, 0.9, 1.7])
    >>> def model():
    ...     mu = yield tfd.Uniform(-100.0, 100.0)
    ...     y = yield tfd.Normal(jnp.broadcast_to(mu, data.shape), 1.0)
    >>> est = cm.map(model, {"y": data}, standard_errors=True)
    >>> round(float(est.mu), 3), est.converged
    (1.26, True)
    >>> round(float(est.standard_errors.mu), 3)
    0.447
    """
    import optax  # imported here so that `import coromix` works where optax is not installed

    if num_steps is not None:  # the older name of max_steps
        if max_steps != 1000:
            raise ValueError("pass max_steps or its older name num_steps, not both")
        name, max_steps = "num_steps", num_steps
    else:
        name = "max_steps"
    for label, value in [("num_restarts", num_restarts), (name, max_steps)]:
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{label} must be an integer >= 1; got {value!r}")
    posterior = pin_model(model, observed)
    info = posterior.parameter_info()
    example = {k: jnp.zeros(shape, dtype) for k, (shape, dtype) in info.items()}
    flat_example, unravel = ravel_pytree(example)
    dtype = flat_example.dtype
    precision = "float64" if dtype == jnp.float64 else "float32"
    gtol = _GTOL[precision] if gtol is None else float(gtol)
    ftol = _FTOL[precision] if ftol is None else float(ftol)

    def log_density(u):
        lp = posterior.unnormalized_log_prob(posterior.to_constrained(unravel(u)))
        return jnp.where(jnp.isnan(lp), -jnp.inf, lp)

    def objective(u):
        return -log_density(u)

    optimizer = optax.lbfgs()

    def small_gradient(value, grad):
        return jnp.max(jnp.abs(grad)) <= gtol * jnp.maximum(1.0, jnp.abs(value))

    def climb(u0):
        value, grad = jax.value_and_grad(objective)(u0)
        finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
        # the line search stores the value and gradient at each accepted point in the state;
        # seeding it here means every iteration reads them from there (optax's
        # value_and_grad_from_state would, under vmap, evaluate the gradient a second time)
        state = optax.tree.set(optimizer.init(u0), value=value, grad=grad)
        status = jnp.where(
            ~finite, _NOT_FINITE, jnp.where(small_gradient(value, grad), _GRADIENT, _RUNNING)
        )

        def body(c: _Climb) -> _Climb:
            updates, state = optimizer.update(
                c.grad, c.state, c.u, value=c.value, grad=c.grad, value_fn=objective
            )
            u = optax.apply_updates(c.u, updates)
            value, grad = optax.tree.get(state, "value"), optax.tree.get(state, "grad")
            moved = jnp.any(u != c.u)
            scale = jnp.maximum(1.0, jnp.maximum(jnp.abs(value), jnp.abs(c.value)))
            # the zoom line search accepts a change within the value's rounding (its approximate
            # Wolfe conditions): a rise of a few units in the last place is no rise
            accepted = (
                moved
                & jnp.isfinite(value)
                & jnp.all(jnp.isfinite(grad))
                & (value - c.value <= _ROUNDING * jnp.finfo(dtype).eps * scale)
            )
            steps = c.steps + 1
            unchanged = jnp.where(c.value - value <= ftol * scale, c.unchanged + 1, 0)
            # a line search that cannot rise where the value has already stopped changing is at
            # the precision's floor (the usual end in float32): converged, not stalled
            status = jnp.select(
                [
                    ~accepted & (c.unchanged > 0) & jnp.isfinite(value),
                    ~accepted,
                    small_gradient(value, grad),
                    unchanged >= _PATIENCE,
                    steps >= max_steps,
                ],
                [_NO_CHANGE, _STALLED, _GRADIENT, _NO_CHANGE, _MAX_STEPS],
                _RUNNING,
            )
            keep = lambda new, old: jnp.where(accepted, new, old)
            return _Climb(
                keep(u, c.u),
                state,
                keep(value, c.value),
                keep(grad, c.grad),
                steps,
                unchanged,
                status,
            )

        end = jax.lax.while_loop(
            lambda c: c.status == _RUNNING,
            body,
            _Climb(
                u0, state, value, grad, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), status
            ),
        )
        return end.u, -end.value, jnp.max(jnp.abs(end.grad)), end.steps, end.status

    def program(key):
        starts = jax.vmap(posterior.init)(jax.random.split(key, num_restarts))
        if prior_start:
            prior = posterior.prior_draw(jax.random.fold_in(key, 1))
            starts = {
                k: jnp.concatenate([v, jnp.asarray(prior[k], v.dtype)[None]])
                for k, v in starts.items()
            }
        ends, *results = jax.vmap(climb)(jax.vmap(lambda s: ravel_pytree(s)[0])(starts))
        modes = jax.vmap(lambda u: posterior.to_constrained(unravel(u)))(ends)
        return ends, modes, *results

    ends, modes, log_densities, gradient_norms, steps, status = jax.jit(program)(as_key(seed))
    log_densities = np.asarray(log_densities)
    status = np.asarray(status)
    finite = np.isfinite(log_densities) & (status != _NOT_FINITE)
    total = len(log_densities)
    if not finite.any():
        raise ValueError(
            f"MAP of {posterior.joint.name!r}: all {total} restarts ended at a non-finite "
            f"log density for the parameters {list(posterior.parameter_shapes)}; check the "
            f"observed values {list(posterior.observed)} against their supports and the "
            f"priors' parameters"
        )
    log_densities = np.where(finite, log_densities, -np.inf)
    converged = np.isin(status, [_GRADIENT, _NO_CHANGE]) & finite
    best = int(np.argmax(log_densities))
    # restarts that end at the best value up to rounding found the same point: report one that
    # converged if there is one (in float32 some end on a line search at the value's rounding)
    top = log_densities[best]
    tie = log_densities >= top - _ROUNDING * np.finfo(dtype).eps * max(1.0, abs(top))
    if not converged[best] and (tie & converged).any():
        best = int(np.argmax(np.where(tie & converged, log_densities, -np.inf)))
    u_best = ends[best]
    mode = Values((k, v[best]) for k, v in modes.items())
    gradient_norm = float(gradient_norms[best])
    if not converged[best]:
        float32 = "" if precision == "float64" else "run in float64 (jax_enable_x64) or "
        if status[best] == _MAX_STEPS:
            why, remedy = "after max_steps", f"{float32}raise max_steps (now {max_steps})"
        else:
            why = "where its line search could not rise further"
            remedy = (
                f"{float32}check for a mode on the boundary of a support (a scale at 0, a "
                f"probability at 0 or 1) or a density that is not smooth there"
            )
        warnings.warn(
            f"MAP of {posterior.joint.name!r} did not converge: the best of {total} restarts "
            f"stopped {why} ({int(steps[best])} L-BFGS steps) with the largest gradient "
            f"coordinate at {gradient_norm:.3g} (tolerance {gtol:g} x max(1, |log p|)); "
            f"{remedy}",
            ConvergenceWarning,
            stacklevel=2,
        )
    errors = covariance = None
    if standard_errors:
        errors, covariance = _standard_errors(posterior, log_density, unravel, u_best, mode)
    return MAPEstimate(
        mode.items(),
        float(log_densities[best]),
        converged=bool(converged[best]),
        num_steps=int(steps[best]),
        gradient_norm=gradient_norm,
        restart_log_densities=log_densities,
        restart_converged=converged,
        standard_errors=errors,
        covariance=covariance,
    )


def _standard_errors(posterior, log_density, unravel, u, mode):
    """Delta-method standard errors of the constrained values at the unconstrained mode ``u``."""
    names = list(mode)
    _, unravel_constrained = ravel_pytree([mode[k] for k in names])

    def constrained(v):
        values = posterior.to_constrained(unravel(v))
        return ravel_pytree([values[k] for k in names])[0]

    # reverse mode only: a density may hold custom_vjp functions (the forward algorithm's)
    hessian, jacobian = jax.jit(
        lambda v: (jax.jacrev(jax.grad(log_density))(v), jax.jacrev(constrained)(v))
    )(u)
    information = -np.asarray(hessian, dtype=np.float64)
    information = (information + information.T) / 2
    jacobian = np.asarray(jacobian, dtype=np.float64)
    eigenvalues = (
        np.linalg.eigvalsh(information)
        if np.all(np.isfinite(information))
        else np.full(len(information), np.nan)
    )
    if np.all(np.isfinite(eigenvalues)) and eigenvalues.min() > 0:
        covariance = jacobian @ np.linalg.solve(information, jacobian.T)
    else:
        warnings.warn(
            f"MAP of {posterior.joint.name!r}: the negative Hessian of the log density at the "
            f"mode is not positive definite (smallest eigenvalue {np.min(eigenvalues):.3g}), so "
            f"the mode is not a strict maximum (a flat direction, an unidentified parameter, or "
            f"a climb that did not reach the top) and the standard errors are nan",
            ConvergenceWarning,
            stacklevel=3,
        )
        covariance = np.full((len(jacobian), len(jacobian)), np.nan)
    errors = unravel_constrained(
        jnp.asarray(np.sqrt(np.clip(np.diag(covariance), 0, None)), np.asarray(u).dtype)
    )
    return Values(zip(names, errors)), covariance
