"""`Factor`: an arbitrary term added to a model's log density (Stan's ``target +=``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from coromix import constraints
from coromix.distributions.distribution import Distribution, float_parameters, label_of
from coromix.utils import ArrayLike, Shape, is_concrete


class Factor(Distribution):
    r"""A term ``log_weight`` added to the joint log density; nothing is drawn.

    ``yield Factor(f(theta))`` (or ``yield coromix.factor(f(theta))``) makes the model's density

    .. math::

        \log p(x) = \sum_{\text{sites}} \log p(x_i \mid \ldots) + f(\theta),

    like Stan's ``target += f(theta)``, NumPyro's ``factor`` and PyMC's ``Potential``: soft
    constraints, penalties, the log-Jacobian of a transform of one's own, or a whole density.
    The term may depend on enumerated discrete choices (it is then summed out with them, element
    by element in a plate).  A factor is not a variable: sampling ignores it (a prior draw of a
    model with factors is a draw of the model *without* them, and tempered SMC counts factors
    with the likelihood), it has no value, it is never a parameter, and it appears in a
    pointwise log-likelihood only when its name is listed among the observed names.

    >>> import jax.numpy as jnp
    >>> import coromix.distributions as tfd
    >>> def model():
    ...     mu = yield tfd.Normal(0.0, 1.0)
    ...     yield Factor(-0.5 * mu**2, name="penalty")  # doubles the Gaussian curvature
    >>> jd = tfd.JointDistributionCoroutine(model)
    >>> float(jd.log_prob(mu=1.0))  # log N(1 | 0, 1) - 0.5 = -0.9189 - 0.5 - 0.5
    -1.9189...
    >>> list(jd.sample(seed=0))  # the factor is not a variable
    ['mu']
    """

    parameter_names = ("log_weight",)
    is_factor = True

    def __init__(self, log_weight: ArrayLike, *, name: str | None = None) -> None:
        label = label_of("Factor", name)
        (self.log_weight,) = float_parameters(label, log_weight=log_weight)
        if is_concrete(self.log_weight) and np.any(np.isnan(self.log_weight)):
            raise ValueError(
                f"{label}: parameter `log_weight` must be a number or -inf, not NaN; got "
                f"{np.asarray(self.log_weight)}"
            )
        self._init_common(name, validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.real

    def _sample(self, key: jax.Array, shape: Shape) -> jax.Array:
        return jnp.zeros(shape, self.dtype)

    def log_prob(self, value: ArrayLike = None) -> jax.Array:
        """``log_weight``, whatever the value (a factor has none)."""
        return self.log_weight


def factor(log_weight: ArrayLike, name: str | None = None) -> Factor:
    """``yield coromix.factor(f(theta), name=...)`` adds ``f(theta)`` to the log density.

    The same as ``yield coromix.distributions.Factor(f(theta), name=...)``; see :class:`Factor`.

    >>> import coromix as cm
    >>> float(cm.factor(-2.5).log_prob(None))
    -2.5
    """
    return Factor(log_weight, name=name)
