"""Ordered: a batch of K scalars restricted to strictly increasing (optionally positive) vectors."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from coromix import constraints
from coromix.distributions.distribution import Distribution, batch_of
from coromix.utils import ArrayLike, Shape, as_float, is_concrete

#: Base draws per batch member in the check, before a rejection loop, that sampling can succeed.
_PILOT_DRAWS = 8192
#: The check fails when fewer than this many accepted draws are expected in ``max_tries`` tries.
_PILOT_EXPECTED_ACCEPTS = 20.0


class Ordered(Distribution):
    """Ordered(distribution): the base's K scalars restricted to strictly increasing vectors.

    The base's last batch dimension (length K) becomes the event dimension, like ``Independent``
    with one reinterpreted dimension.  Use it to break label switching in mixtures::

        mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(3), 5.0))   # mu[0] < mu[1] < mu[2]

    or, as in Stan's ``ordered[K] phi; phi[1] ~ normal(0, 1); phi[2] ~ normal(3, 1);``, with a
    parameter per element::

        phi = yield tfd.Ordered(tfd.Normal(jnp.array([0.0, 3.0]), 1.0))

    **Density.** With ``p_k`` the base's density of element ``k`` and ``C`` the support below,

        log_prob(x) = sum_k log p_k(x_k) + [exchangeable] log(K!)   for x in C, -inf elsewhere.

    *Exchangeable base* (every parameter the same for all K, e.g. ``Normal(jnp.zeros(3), 5.0)``):
    the K values are iid, and ``K! prod_k p(x_k)`` is exactly the density of their sorted vector,
    normalized over the ordered cone.  *Any other base* (``Normal(jnp.array([0.0, 3.0]), 1.0)``):
    Stan's meaning, the base density evaluated at the ordered vector, ``prod_k p_k(x_k)``, with no
    ``K!``.  It is **unnormalized**: its integral over the ordered cone is
    ``Z = P(a base draw is increasing) < 1`` (``Phi(3 / sqrt 2) = 0.983`` for the example), a
    constant that changes neither NUTS nor MAP (nor their posteriors) but is off by ``log Z`` in
    anything that integrates ``exp(log_prob)`` itself as a normalized prior (``jd.log_prob``, a
    Laplace or bridge-sampling evidence).  The distribution it stands for, and what ``sample``
    draws, is the normalized one, the base conditioned on being increasing: SMC starts from such
    draws and tempers only the likelihood, so its ``log_evidence`` is that of the normalized prior,
    and prior predictive draws are right too.  Which case applies is decided from the parameter
    values along the K axis (also under ``jit``): ``log(K!)`` is added exactly where they are all
    equal, a set a continuous random parameter vector hits with probability zero.

    **Support.** ``ordered_vector`` (``x_1 < ... < x_K``, reached by NUTS/MAP through
    ``x_1 = y_1, x_k = x_{k-1} + exp(y_k)``), or ``positive_ordered_vector`` (``0 < x_1 < ... <
    x_K``, Stan's ``positive_ordered``, through ``x_k = sum_{j<=k} exp(y_j)``) when
    ``positive=True`` or when the base's support is ``positive``.  ``positive=True`` with a real
    base (``positive_ordered[K] phi; phi ~ normal(...)``) truncates it to ``x_1 > 0``, which again
    leaves the density unnormalized (``Z = P(a base draw, sorted if exchangeable, is increasing
    and positive)``).

    **Sampling** is exact.  Exchangeable base with nothing truncated: sort K base draws.
    Otherwise rejection: draw the whole K-vector from the base (and sort it where exchangeable)
    until it lies in the support, all draws at once in one ``jax.lax.while_loop`` of at most
    ``max_tries`` rounds.  Each accepted draw is independent of the rounds it took, so it has the
    conditional distribution exactly.  The expected number of rounds per draw is ``1 / Z``: when the
    parameters are concrete a pilot of base draws estimates ``Z`` first and raises a
    ``ValueError`` (which names the variable inside a model) if fewer than 20 acceptances are
    expected in ``max_tries`` rounds; a draw still not accepted after ``max_tries`` raises one too
    (under ``jit`` or ``vmap`` from a host callback on the accepted flags, as JAX's runtime error
    carrying the message), never returning NaN or an unsorted vector.  Order the base's
    parameters increasingly to make ``Z`` large.  ``log_prob`` (all that NUTS and MAP use) needs
    no sampling.

    Args:
        distribution: the base, continuous with scalar events, support ``real`` or ``positive``
            and a last batch dimension of K.
        positive: restrict to ``x_1 > 0`` (Stan's ``positive_ordered``); implied by a positive
            base.
        max_tries: the most rejection rounds per ``sample`` call (static).

    >>> from coromix.distributions import Normal
    >>> d = Ordered(Normal(jnp.zeros(2), 1.0))
    >>> d.batch_shape, d.event_shape
    ((), (2,))
    >>> print(d.support)
    ordered vector (strictly increasing)
    >>> round(float(d.log_prob([-1.0, 1.0])), 4)   # 2 log N(1 | 0, 1) + log(2!) = -log(pi) - 1
    -2.1447
    >>> d.log_prob([1.0, -1.0])   # not increasing
    Traceback (most recent call last):
    ...
    ValueError: Ordered: value outside the support (ordered vector (strictly increasing)); ...
    >>> float(Ordered(Normal(jnp.zeros(2), 1.0), validate_args=False).log_prob([1.0, -1.0]))
    -inf

    A parameter per element (Stan's meaning, no ``log(2!)``), and its positive-ordered variant:

    >>> phi = Ordered(Normal(jnp.array([0.0, 3.0]), 1.0))
    >>> round(float(phi.log_prob([0.5, 2.5])), 4)  # log N(0.5 | 0, 1) + log N(2.5 | 3, 1)
    -2.0879
    >>> draws = phi.sample(1000, seed=0)          # exact rejection sampling
    >>> draws.shape, bool(jnp.all(draws[:, 0] < draws[:, 1]))
    ((1000, 2), True)
    >>> pos = Ordered(Normal(jnp.array([0.0, 3.0]), 1.0), positive=True, validate_args=False)
    >>> print(pos.support)
    positive ordered vector
    >>> float(pos.log_prob([-0.5, 2.5])), bool(jnp.all(pos.sample(1000, seed=0) > 0))
    (-inf, True)
    """

    parameter_names = ("distribution",)
    static_names = ("positive", "max_tries")

    def __init__(
        self,
        distribution: Distribution,
        *,
        positive: bool = False,
        max_tries: int = 10_000,
        validate_args: bool = True,
        name: str | None = None,
    ) -> None:
        label = f"Ordered '{name}'" if name else "Ordered"
        if not isinstance(distribution, Distribution):
            raise TypeError(
                f"{label}: needs a coromix distribution; got {type(distribution).__name__}"
            )
        if distribution.is_discrete:
            raise TypeError(
                f"{label}: the base {distribution._label()} is discrete; "
                "Ordered needs a continuous base"
            )
        if tuple(distribution.event_shape) != ():
            raise ValueError(
                f"{label}: the base must have scalar events; got event_shape "
                f"{tuple(distribution.event_shape)}"
            )
        if len(distribution.batch_shape) == 0:
            raise ValueError(
                f"{label}: the base needs a last batch dimension of K values to order "
                f"(e.g. Normal(jnp.zeros(K), 1.0)); got batch_shape ()"
            )
        if _ordered_support(distribution.support, False) is None:
            raise ValueError(
                f"{label}: the base's support must be real or positive; got "
                f"'{distribution.support}'"
            )
        if not isinstance(positive, (bool, np.bool_)):
            raise TypeError(f"{label}: positive must be True or False; got {positive!r}")
        if isinstance(max_tries, bool) or not isinstance(max_tries, (int, np.integer)):
            raise TypeError(f"{label}: max_tries must be an int; got {max_tries!r}")
        if max_tries < 1:
            raise ValueError(f"{label}: max_tries must be at least 1; got {max_tries}")
        self.distribution = distribution
        self.positive = bool(positive)
        self.max_tries = int(max_tries)
        self._init_common(name, validate_args)

    @property
    def num_values(self) -> int:
        """K, the length of the ordered vector."""
        return int(self.distribution.batch_shape[-1])

    @property
    def batch_shape(self) -> Shape:
        return tuple(self.distribution.batch_shape[:-1])

    @property
    def event_shape(self) -> Shape:
        return (self.num_values,)

    @property
    def support(self) -> constraints.Constraint:
        return _ordered_support(self.distribution.support, self.positive)

    @property
    def dtype(self) -> DTypeLike:
        return self.distribution.dtype

    def exchangeable(self) -> bool | np.ndarray | jax.Array:
        """Where the base is exchangeable: its parameters all equal along the K axis.

        ``True`` when the parameters' shapes alone say so (none has a K axis); otherwise a
        boolean array of shape ``batch_shape``, NumPy when the parameters are concrete, traced
        under ``jit``.  A base whose parameters do not broadcast to its batch shape (a mixture,
        say) counts as not exchangeable: Stan's unnormalized density and rejection sampling,
        both still right up to the constant.

        >>> from coromix.distributions import Normal
        >>> Ordered(Normal(0.0, jnp.ones((2, 1)) * jnp.ones(3))).exchangeable()
        array([ True,  True])
        >>> Ordered(Normal(jnp.array([[0.0, 0.0], [0.0, 3.0]]), 1.0)).exchangeable()
        array([ True, False])
        """
        leaves = jax.tree_util.tree_leaves(self.distribution)
        base_batch = tuple(self.distribution.batch_shape)
        try:
            aligned = batch_of(*leaves) == base_batch if leaves else False
        except ValueError:
            aligned = False
        if not aligned:
            return np.zeros(self.batch_shape, bool)
        # Parameters broadcast from the right, so a leaf's last axis is the K axis.
        along_k = [leaf for leaf in leaves if jnp.ndim(leaf) > 0 and jnp.shape(leaf)[-1] != 1]
        if not along_k:
            return True
        same = jnp.ones(self.batch_shape, bool)
        for leaf in along_k:
            same = same & jnp.all(leaf == leaf[..., :1], axis=-1)
        return np.asarray(same) if is_concrete(same) else same

    def _truncates(self) -> bool:
        """Whether ``positive`` cuts the base's support (a real base made positive)."""
        return self.positive and not isinstance(self.distribution.support, constraints.Positive)

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        k = self.num_values
        shape = tuple(shape)
        draws = self.distribution._sample(key, shape + (k,))
        exchangeable = self.exchangeable()
        static = isinstance(exchangeable, (bool, np.ndarray))
        if static and not self._truncates() and np.all(exchangeable):
            return jnp.sort(draws, axis=-1)
        if isinstance(exchangeable, np.ndarray):
            self._check_acceptance(exchangeable)
        return self._rejection(key, shape, draws, exchangeable)

    def _candidate(self, draws: jax.Array, exchangeable: ArrayLike) -> tuple[jax.Array, jax.Array]:
        """A proposal from K base draws (sorted where exchangeable) and whether it is accepted."""
        x = jnp.where(jnp.asarray(exchangeable)[..., None], jnp.sort(draws, axis=-1), draws)
        ok = jnp.all(jnp.diff(x, axis=-1) > 0, axis=-1)
        if self._truncates():
            ok = ok & (x[..., 0] > 0)
        return x, ok

    def _rejection(
        self, key: jax.Array, shape: Shape, draws: jax.Array, exchangeable: ArrayLike
    ) -> jax.Array:
        k = self.num_values
        exchangeable = jnp.broadcast_to(jnp.asarray(exchangeable), shape)
        value, accepted = self._candidate(draws, exchangeable)

        def going(carry):
            tries, _, accepted = carry
            return (tries < self.max_tries) & ~jnp.all(accepted)

        def step(carry):
            tries, value, accepted = carry
            fresh = self.distribution._sample(jax.random.fold_in(key, tries), shape + (k,))
            x, ok = self._candidate(fresh, exchangeable)
            value = jnp.where((ok & ~accepted)[..., None], x, value)
            return tries + 1, value, accepted | ok

        _, value, accepted = jax.lax.while_loop(going, step, (jnp.int32(1), value, accepted))
        if is_concrete(accepted):
            _raise_if_rejected(np.asarray(accepted), self._failure_message())
            return value
        # Under jit or vmap: a host check of the accepted flags raises the same error.
        checked = jax.pure_callback(
            lambda a: _raise_if_rejected(np.asarray(a), self._failure_message()),
            jax.ShapeDtypeStruct(accepted.shape, jnp.bool_),
            accepted,
            vmap_method="expand_dims",
        )
        return jnp.where(checked[..., None], value, jnp.nan)

    def _what_is_accepted(self) -> str:
        return "increasing and positive" if self._truncates() else "increasing"

    def _failure_message(self) -> str:
        return (
            f"{self._label()}: rejection sampling drew no {self._what_is_accepted()} vector from "
            f"the base {self.distribution._label()} in max_tries={self.max_tries} tries; the "
            "probability that a base draw is accepted is too small (order the base's parameters "
            "increasingly, or pass a larger max_tries=).  log_prob, all that NUTS and MAP use, "
            "is unaffected: only drawing from this distribution fails"
        )

    def _check_acceptance(self, exchangeable: np.ndarray) -> None:
        """Raise before the rejection loop when a pilot says it would need too many tries."""
        leaves = jax.tree_util.tree_leaves(self.distribution)
        if not all(is_concrete(leaf) for leaf in leaves):
            return
        k = self.num_values
        size = max(int(np.prod(self.batch_shape, dtype=int)), 1) * k
        n = max(min(_PILOT_DRAWS, 2**22 // size), 256)
        draws = self.distribution._sample(jax.random.key(0), (n,) + self.batch_shape + (k,))
        _, ok = self._candidate(draws, exchangeable)
        if not is_concrete(ok):
            return
        counts = np.sum(np.asarray(ok), axis=0)
        rate = counts / n
        worst = np.unravel_index(np.argmin(rate), rate.shape) if rate.ndim else ()
        if rate[worst] * self.max_tries >= _PILOT_EXPECTED_ACCEPTS:
            return
        member = f" (batch member {tuple(int(i) for i in worst)})" if worst else ""
        accepted = int(counts[worst])
        tries = f"about {1 / rate[worst]:.3g}" if accepted else f"more than {n}"
        raise ValueError(
            f"{self._label()}: only {accepted} of {n} pilot draws from the base "
            f"{self.distribution._label()}{member} were {self._what_is_accepted()}, so exact "
            f"rejection sampling would need {tries} tries per draw, too many for "
            f"max_tries={self.max_tries}; order the base's parameters "
            "increasingly, or pass a larger max_tries=.  log_prob, all that NUTS and MAP use, is "
            "unaffected: only drawing from this distribution fails"
        )

    def log_prob(self, value: ArrayLike) -> jax.Array:
        self._check_value(value)
        value = as_float(value)
        k = self.num_values
        lp = jnp.sum(self.distribution.log_prob(value), axis=-1)
        exchangeable = self.exchangeable()
        if exchangeable is True:
            lp = lp + math.lgamma(k + 1)
        else:
            log_k_factorial = jnp.asarray(math.lgamma(k + 1), lp.dtype)
            lp = lp + jnp.where(exchangeable, log_k_factorial, jnp.zeros((), lp.dtype))
        inside = jnp.all(jnp.diff(value, axis=-1) > 0, axis=-1)
        if self.support is constraints.positive_ordered_vector:
            inside = inside & (value[..., 0] > 0)
        return jnp.where(inside, lp, -jnp.inf)


def _raise_if_rejected(accepted: np.ndarray, message: str) -> np.ndarray:
    if not np.all(accepted):
        missing = int(np.size(accepted) - np.count_nonzero(accepted))
        raise ValueError(f"{message} ({missing} of {np.size(accepted)} draws not accepted)")
    return accepted.astype(bool)


def _ordered_support(base_support, positive):
    if isinstance(base_support, constraints.Positive):
        return constraints.positive_ordered_vector
    if isinstance(base_support, constraints.Real):
        return constraints.positive_ordered_vector if positive else constraints.ordered_vector
    return None
