"""coromix: mixture and regime-switching models written as coroutines.

A model is a generator function that yields distributions; its finite discrete choices are summed out
exactly, so NUTS can fit the continuous parameters, and the posterior of the choices comes back after.
"""

__version__ = "0.1.0"

from coromix import distributions
from coromix.distributions.factor import factor
from coromix.infer import map, nuts, relabel, smc
from coromix.results import Posterior

__all__ = ["Posterior", "__version__", "distributions", "factor", "map", "nuts", "relabel", "smc"]
