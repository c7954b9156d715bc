"""Distributions with TensorFlow Probability's names, parameters and shape semantics."""

from coromix.distributions.distribution import Distribution
from coromix.distributions.normal import Normal
from coromix.distributions.categorical import Categorical

__all__ = ["Distribution", "Normal", "Categorical"]
