"""Multivariate normal distribution parameterized by a lower-triangular scale matrix."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from coromix import constraints
from coromix.distributions.distribution import Distribution, float_parameters, label_of
from coromix.utils import ArrayLike, Shape

_half_log_2pi = 0.5 * math.log(2 * math.pi)


class MultivariateNormalTriL(Distribution):
    """MultivariateNormalTriL(loc, scale_tril): ``X = loc + L Z`` with ``Z ~ Normal(0, I_d)``, so
    covariance ``L L^T`` and density
    ``exp(-|L^{-1}(x - loc)|**2 / 2) / ((2 pi)**(d/2) |det L|)``.

    ``loc`` has shape ``(..., d)`` and ``scale_tril`` shape ``(..., d, d)``; the batch shape is the
    broadcast of their leading dimensions and ``event_shape`` is ``(d,)``.  As in TFP, only the
    lower triangle of ``scale_tril`` is used.

    >>> d = MultivariateNormalTriL(jnp.zeros(2), jnp.eye(2))
    >>> d.batch_shape, d.event_shape
    ((), (2,))
    >>> round(float(d.log_prob(jnp.zeros(2))), 4)   # -log(2 pi)
    -1.8379
    """

    parameter_names = ("loc", "scale_tril")

    def __init__(
        self,
        loc: ArrayLike,
        scale_tril: ArrayLike,
        *,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        label = label_of("MultivariateNormalTriL", name)
        self.loc, self.scale_tril = float_parameters(label, loc=loc, scale_tril=scale_tril)
        if self.loc.ndim < 1 or self.scale_tril.ndim < 2:
            raise ValueError(
                f"{label}: `loc` needs shape (..., d) and `scale_tril` shape "
                f"(..., d, d); got {self.loc.shape} and {self.scale_tril.shape}"
            )
        d = self.loc.shape[-1]
        if self.scale_tril.shape[-2:] != (d, d):
            raise ValueError(
                f"{label}: `scale_tril` must have shape (..., {d}, {d}) to match `loc` "
                f"of shape {self.loc.shape}; got {self.scale_tril.shape}"
            )
        try:
            jnp.broadcast_shapes(self.loc.shape[:-1], self.scale_tril.shape[:-2])
        except ValueError:
            raise ValueError(
                f"{label}: batch shapes of `loc` {self.loc.shape[:-1]} and "
                f"`scale_tril` {self.scale_tril.shape[:-2]} do not broadcast"
            ) from None
        self._init_common(name, validate_args)

    def _parameter_checks(self) -> list[tuple[str, Any, str]]:
        diag = jnp.diagonal(self.scale_tril, axis1=-2, axis2=-1)
        return [
            ("loc", jnp.isfinite(self.loc), "finite"),
            (
                "scale_tril",
                jnp.all(diag != 0) & jnp.all(jnp.isfinite(self.scale_tril)),
                "finite with a nonzero diagonal (nonsingular; only its lower triangle is used)",
            ),
        ]

    @property
    def batch_shape(self) -> Shape:
        return tuple(jnp.broadcast_shapes(self.loc.shape[:-1], self.scale_tril.shape[:-2]))

    @property
    def event_shape(self) -> Shape:
        return tuple(self.loc.shape[-1:])

    @property
    def support(self) -> constraints.Constraint:
        return constraints.real_vector

    @property
    def _tril(self):
        return jnp.tril(self.scale_tril)

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        z = jax.random.normal(key, shape + self.event_shape, self.dtype)
        return self.loc + jnp.matmul(self._tril, z[..., None])[..., 0]

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        x = jnp.asarray(value)
        x = x.astype(jnp.result_type(x, self.dtype))
        d = self.event_shape[0]
        diff = x - self.loc
        tril = self._tril
        shape = jnp.broadcast_shapes(diff.shape[:-1], tril.shape[:-2])
        diff = jnp.broadcast_to(diff, shape + (d,))
        tril = jnp.broadcast_to(tril, shape + (d, d))
        z = solve_triangular(tril, diff[..., None], lower=True)[..., 0]
        log_det_tril = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(tril, axis1=-2, axis2=-1))), axis=-1)
        return -0.5 * jnp.sum(z**2, axis=-1) - log_det_tril - d * _half_log_2pi

    def mean(self) -> jax.Array:
        return jnp.broadcast_to(self.loc, self.batch_shape + self.event_shape)

    def covariance(self) -> jax.Array:
        tril = self._tril
        cov = jnp.matmul(tril, jnp.swapaxes(tril, -1, -2))
        d = self.event_shape[0]
        return jnp.broadcast_to(cov, self.batch_shape + (d, d))

    def variance(self) -> jax.Array:
        var = jnp.sum(self._tril**2, axis=-1)
        return jnp.broadcast_to(var, self.batch_shape + self.event_shape)
