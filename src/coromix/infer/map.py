"""MAP: the mode of ``p(parameters | observed)`` in the model's own parametrization, by Adam.

The mode of the constrained density ``p(x | data)`` is found by optimizing over unconstrained ``u``
the value ``log p(T(u), data)`` *without* the log-det-Jacobian of ``T``: the reparametrization only
moves the search, it does not change which point is the mode (with the Jacobian it would be the mode
of the density of ``u``, a different point).  Finite discrete variables are summed out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from coromix.distributions.distribution import as_key
from coromix.infer.nuts import pin_model
from coromix.joint import JointDistributionCoroutine
from coromix.model import Values


class MAPEstimate(Values):
    """The mode: name -> constrained value, in model order; ``log_density``: ``log p(mode, data)``.

    ``log_density`` is an attribute, so a model variable with that name is read as ``est["..."]``.
    """

    def __init__(self, items: Iterable[tuple[str, Any]], log_density: float):
        super().__init__(items)
        self.log_density = log_density


def map(model: JointDistributionCoroutine | Callable[[], Any],
        observed: Mapping[str, Any] | None = None, *, num_restarts: int = 8,
        num_steps: int = 2000, learning_rate: float = 0.05, seed: Any = 0) -> MAPEstimate:
    """Maximum a posteriori values of the free continuous variables.

    Runs Adam from ``num_restarts`` random points (uniform in (-2, 2) on unconstrained space) at
    once, its step size decaying from ``learning_rate`` to 1% of it (cosine), and keeps the restart
    with the highest ``log p(values, observed)``.  A mode on the boundary of a support (a scale at
    0) is approached, never reached.
    """
    import optax  # imported here so that `import coromix` works where optax is not installed

    for name, value in [("num_restarts", num_restarts), ("num_steps", num_steps)]:
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    posterior = pin_model(model, observed)

    def log_density(u):
        lp = posterior.unnormalized_log_prob(posterior.to_constrained(u))
        return jnp.where(jnp.isnan(lp), -jnp.inf, lp)

    optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, num_steps, alpha=0.01))

    def climb(start):
        def step(carry, _):
            u, state = carry
            grad = jax.grad(lambda v: -log_density(v))(u)
            updates, state = optimizer.update(grad, state, u)
            return (optax.apply_updates(u, updates), state), None

        (u, _), _ = jax.lax.scan(step, (start, optimizer.init(start)), length=num_steps)
        return u, log_density(u)

    starts = jax.vmap(posterior.init)(jax.random.split(as_key(seed), num_restarts))
    ends, log_densities = jax.jit(jax.vmap(climb))(starts)
    if not bool(jnp.any(jnp.isfinite(log_densities))):
        raise ValueError(
            f"MAP of {posterior.joint.name!r}: all {num_restarts} restarts ended at a non-finite "
            f"log density for the parameters {list(posterior.parameter_shapes)}; check the "
            f"observed values {list(posterior.observed)} against their supports, or lower "
            f"learning_rate (now {learning_rate:g})")
    best = int(jnp.argmax(jnp.where(jnp.isfinite(log_densities), log_densities, -jnp.inf)))
    mode = posterior.to_constrained({k: v[best] for k, v in ends.items()})
    return MAPEstimate(mode.items(), float(log_densities[best]))
