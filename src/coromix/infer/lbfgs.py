"""A compact L-BFGS maximizer for the mode search that starts NUTS.

Why not ``optax.lbfgs``: inside the NUTS program every copy of the model's gradient is compiled
again, and optax's L-BFGS with its zoom line search holds several (about 5 s more compilation
for a small mixture, against 0.5 s here).  This one evaluates the log density and its gradient
at exactly one place: each pass of its loop tries one point ``x + t d`` along the quasi-Newton
direction ``d``, accepts it when it rises enough (Armijo's condition), and otherwise halves ``t``.

The direction is the two-loop recursion (Nocedal and Wright, Algorithm 7.4) over the last
``memory`` accepted steps ``s = x_{k+1} - x_k`` and gradient changes ``y``, with the initial
inverse Hessian ``gamma I``, ``gamma = s.y / y.y`` of the newest pair; pairs with ``s.y <= 0`` are
not stored (the approximation stays positive definite).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

# Armijo's constant: accept a step that rises at least this share of the linear prediction.
_ARMIJO = 1e-4
# Halvings of one step before the search gives up on the direction.
_MAX_HALVINGS = 30


class LBFGSResult(NamedTuple):
    """Where the climb ended.

    ``position``: the best point found; ``value`` and ``grad``: the log density and its gradient
    there; ``iterations``: accepted steps; ``converged``: whether it stopped on the gradient or
    relative-change criterion (not on ``max_iterations`` or a failed line search);
    ``inverse_hessian_diagonal``: the diagonal of the L-BFGS approximation of ``-H^{-1}`` at the
    end (the curvature the climb saw; ``1`` where it saw none).
    """

    position: jax.Array
    value: jax.Array
    grad: jax.Array
    iterations: jax.Array
    converged: jax.Array
    inverse_hessian_diagonal: jax.Array


class _State(NamedTuple):
    x: jax.Array
    f: jax.Array
    g: jax.Array
    direction: jax.Array
    step: jax.Array
    halvings: jax.Array
    s: jax.Array  # (memory, d), newest last
    y: jax.Array
    iterations: jax.Array
    done: jax.Array
    converged: jax.Array
    key: jax.Array


def _two_loop(g: jax.Array, s: jax.Array, y: jax.Array) -> jax.Array:
    """``H g`` with ``H`` the L-BFGS inverse Hessian of the (minimized) objective."""
    sy = jnp.sum(s * y, axis=1)
    used = sy > 0
    rho = jnp.where(used, 1.0 / jnp.where(used, sy, 1.0), 0.0)

    def backward(q, pair):
        s_i, y_i, rho_i = pair
        a = rho_i * jnp.dot(s_i, q)
        return q - a * y_i, a

    q, alphas = jax.lax.scan(backward, g, (s, y, rho), reverse=True)
    yy = jnp.dot(y[-1], y[-1])
    gamma = jnp.where(used[-1] & (yy > 0), sy[-1] / jnp.where(yy > 0, yy, 1.0), 1.0)

    def forward(r, pair):
        s_i, y_i, rho_i, a = pair
        b = rho_i * jnp.dot(y_i, r)
        return r + s_i * (a - b), None

    r, _ = jax.lax.scan(forward, gamma * q, (s, y, rho, alphas))
    return r


def start(x0: jax.Array, key: jax.Array | None = None, memory: int = 6) -> _State:
    """The state of a climb from ``x0`` before its first evaluation (see :func:`maximize`).

    >>> state = start(jnp.zeros(2))
    >>> [float(v) for v in trial(state)]     # the first point evaluated is x0 itself
    [0.0, 0.0]
    """
    d = x0.shape[0]
    zeros = jnp.zeros((memory, d), x0.dtype)
    return _State(
        x0,
        jnp.asarray(-jnp.inf, x0.dtype),
        jnp.zeros_like(x0),
        jnp.zeros_like(x0),
        jnp.zeros((), x0.dtype),
        jnp.zeros((), jnp.int32),
        zeros,
        zeros,
        jnp.zeros((), jnp.int32),
        jnp.asarray(False),
        jnp.asarray(False),
        jax.random.key(0) if key is None else key,
    )


def trial(state: _State) -> jax.Array:
    """The point the climb evaluates next: ``x + t d``."""
    return state.x + state.step * state.direction


def update(
    st: _State,
    f: jax.Array,
    g: jax.Array,
    *,
    max_iterations: int = 200,
    gtol: float = 1e-3,
    ftol: float = 1e-7,
    restart: Callable[[jax.Array], jax.Array] | None = None,
) -> _State:
    """The climb after ``f, g``, the log density and its gradient at :func:`trial` ``(st)``: the
    point accepted or the step halved, and the next direction (see :func:`maximize`).  A climb
    that is done stays as it is."""
    trial_x = trial(st)
    finite = jnp.isfinite(f) & jnp.all(jnp.isfinite(g))
    first = ~jnp.isfinite(st.f)
    rises = finite & (first | (f >= st.f + _ARMIJO * st.step * jnp.dot(st.g, st.direction)))
    # accepted: store the pair (for the minimized -f: s and y = -(g_new - g_old))
    s_new, y_new = trial_x - st.x, -(g - st.g)
    keep = rises & (jnp.dot(s_new, y_new) > 1e-12 * jnp.dot(y_new, y_new))
    s = jnp.where(keep, jnp.concatenate([st.s[1:], s_new[None]]), st.s)
    y = jnp.where(keep, jnp.concatenate([st.y[1:], y_new[None]]), st.y)
    x = jnp.where(rises, trial_x, st.x)
    next_key, sub = jax.random.split(st.key)
    if restart is not None:  # no finite point yet: the next pass tries a fresh start
        x = jnp.where(first & ~finite, restart(sub), x)
    f_new = jnp.where(rises, f, st.f)
    g_new = jnp.where(rises, g, st.g)
    direction = _two_loop(g_new, s, y)
    # an ascent direction, or the gradient itself
    direction = jnp.where(jnp.dot(direction, g_new) > 0, direction, g_new)
    small_grad = jnp.max(jnp.abs(g_new)) < gtol
    small_change = rises & ~first & (jnp.abs(f - st.f) <= ftol * jnp.maximum(1.0, jnp.abs(f)))
    iterations = st.iterations + (rises & ~first).astype(jnp.int32)
    halvings = jnp.where(rises, 0, st.halvings + 1)
    # the first step along the gradient moves no coordinate by more than about 1
    unit = jnp.where(first, 1.0 / jnp.maximum(1.0, jnp.max(jnp.abs(g_new))), 1.0)
    step = jnp.where(rises, unit.astype(st.step.dtype), st.step * 0.5)
    converged = rises & (small_grad | small_change)
    done = converged | (iterations >= max_iterations) | (halvings >= _MAX_HALVINGS)
    new = _State(
        x, f_new, g_new, direction, step, halvings, s, y, iterations, done, converged, next_key
    )
    return jax.tree.map(lambda old, upd: jnp.where(st.done, old, upd), st, new)


def result(end: _State) -> LBFGSResult:
    """Where a climb ended, with the diagonal of its inverse-Hessian approximation."""
    d = end.x.shape[0]
    diagonal = (
        jax.vmap(lambda e: jnp.dot(e, _two_loop(e, end.s, end.y)))(jnp.eye(d, dtype=end.x.dtype))
        if d <= 4096
        else jnp.ones(d, end.x.dtype)
    )
    diagonal = jnp.where(jnp.isfinite(diagonal) & (diagonal > 0), diagonal, 1.0)
    return LBFGSResult(end.x, end.f, end.g, end.iterations, end.converged, diagonal)


def maximize(
    value_and_grad: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
    x0: jax.Array,
    *,
    max_iterations: int = 200,
    memory: int = 6,
    gtol: float = 1e-3,
    ftol: float = 1e-7,
    restart: Callable[[jax.Array], jax.Array] | None = None,
    key: jax.Array | None = None,
) -> LBFGSResult:
    """Climb ``f`` from ``x0``: ``value_and_grad(x) -> (f(x), grad f(x))`` on a flat vector.

    With ``restart`` (a function of a PRNG key giving a new starting point) and ``key``, a start
    where ``f`` or its gradient is not finite is replaced by ``restart(key)``, up to 30 times,
    inside the same loop (no second copy of ``value_and_grad``).  Stops when
    ``max|grad f| < gtol``, when an accepted step changes ``f`` by less than
    ``ftol * max(1, |f|)``, after ``max_iterations`` accepted steps, or when no step along the
    direction rises (then from the best point so far).  A non-finite ``f`` at a trial point counts
    as no rise.  Jit-, vmap- and grad-free: it is meant to run inside a larger compiled program.
    The pieces (:func:`start`, :func:`trial`, :func:`update`, :func:`result`) let a caller drive
    several climbs and other evaluations of ``f`` through one loop, so that ``f``'s gradient is
    compiled once.

    >>> f = lambda x: -jnp.sum((x - jnp.array([1.0, -2.0])) ** 2)   # top at (1, -2), f'' = -2
    >>> end = maximize(jax.value_and_grad(f), jnp.zeros(2))
    >>> [round(float(v), 3) for v in end.position], bool(end.converged)
    ([1.0, -2.0], True)
    >>> [round(float(v), 3) for v in end.inverse_hessian_diagonal]   # -1 / f'' = 1/2
    [0.5, 0.5]
    """
    # the first pass of the loop evaluates x0 itself (step 0 from a value of -inf), so that the
    # log density and its gradient appear once in the compiled program
    settings = {"max_iterations": max_iterations, "gtol": gtol, "ftol": ftol, "restart": restart}

    def body(st: _State) -> _State:
        return update(st, *value_and_grad(trial(st)), **settings)

    end = jax.lax.while_loop(lambda st: ~st.done, body, start(x0, key, memory))
    return result(end)
