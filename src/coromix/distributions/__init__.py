"""Distributions with TensorFlow Probability's names, parameters and shape semantics.

``JointDistributionCoroutine`` is here too, under TFP's name (``tfd.JointDistributionCoroutine``),
but it is defined above the distributions, in :mod:`coromix.joint` (which scores models made of
them): it is imported on first access, so that importing a distribution never imports the model
layer.

>>> import coromix.distributions as tfd
>>> from coromix.joint import JointDistributionCoroutine
>>> tfd.JointDistributionCoroutine is JointDistributionCoroutine
True
"""

from typing import Any

from coromix.distributions.bernoulli import Bernoulli
from coromix.distributions.beta import Beta
from coromix.distributions.binomial import Binomial
from coromix.distributions.categorical import Categorical
from coromix.distributions.cauchy import Cauchy
from coromix.distributions.dirichlet import Dirichlet
from coromix.distributions.distribution import Distribution
from coromix.distributions.exponential import Exponential
from coromix.distributions.factor import Factor
from coromix.distributions.gamma import Gamma
from coromix.distributions.half_cauchy import HalfCauchy
from coromix.distributions.half_normal import HalfNormal
from coromix.distributions.hidden_markov_model import HiddenMarkovModel
from coromix.distributions.hidden_semi_markov_model import HiddenSemiMarkovModel
from coromix.distributions.independent import Independent
from coromix.distributions.inverse_gamma import InverseGamma
from coromix.distributions.laplace import Laplace
from coromix.distributions.log_normal import LogNormal
from coromix.distributions.markov_chain import Forecast, MarkovChain
from coromix.distributions.mixture import Mixture
from coromix.distributions.mixture_same_family import MixtureSameFamily
from coromix.distributions.mvn_tril import MultivariateNormalTriL
from coromix.distributions.negative_binomial import NegativeBinomial
from coromix.distributions.normal import Normal
from coromix.distributions.ordered import Ordered
from coromix.distributions.poisson import Poisson
from coromix.distributions.regime_switching import RegimeSwitching
from coromix.distributions.sample import Sample
from coromix.distributions.student_t import StudentT
from coromix.distributions.uniform import Uniform

__all__ = [
    "Bernoulli",
    "Beta",
    "Binomial",
    "Categorical",
    "Cauchy",
    "Dirichlet",
    "Distribution",
    "Exponential",
    "Factor",
    "Forecast",
    "Gamma",
    "HalfCauchy",
    "HalfNormal",
    "HiddenMarkovModel",
    "HiddenSemiMarkovModel",
    "Independent",
    "InverseGamma",
    "JointDistributionCoroutine",
    "Laplace",
    "LogNormal",
    "MarkovChain",
    "Mixture",
    "MixtureSameFamily",
    "MultivariateNormalTriL",
    "NegativeBinomial",
    "Normal",
    "Ordered",
    "Poisson",
    "RegimeSwitching",
    "Sample",
    "StudentT",
    "Uniform",
]


def __getattr__(name: str) -> Any:
    """``JointDistributionCoroutine``, from :mod:`coromix.joint` when first read (PEP 562)."""
    if name == "JointDistributionCoroutine":
        from coromix.joint import JointDistributionCoroutine

        return JointDistributionCoroutine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
