"""coromix: mixture and regime-switching models written as coroutines.

A model is a generator function that yields distributions; its finite discrete choices are summed out
exactly, so NUTS can fit the continuous parameters, and the posterior of the choices comes back after.
"""

__version__ = "0.1.0"

from coromix import distributions  # noqa: E402
from coromix.infer import map, nuts  # noqa: E402
from coromix.results import Posterior  # noqa: E402

__all__ = ["distributions", "nuts", "map", "Posterior", "__version__"]
