"""A model file for ``coromix fit``: a two-component Gaussian mixture of the column ``y``.

Fit it from the command line::

    coromix fit examples/fit_gmm.py --data examples/data/gmm.csv

The convention of ``coromix fit``: the file defines a generator function ``model(data)``, ``data``
being the CSV as a mapping column name -> 1-D array.  The model describes the whole data set; a
variable named like a column is observed (here ``y``, shape ``(N,)``), every other column must be
read by the model as data (``data["x"]``), and the remaining variables are inferred.

Each point has its own component ``z`` (a batch-shaped Categorical, summed out exactly during NUTS;
its posterior, the responsibilities, is saved in ``posterior.nc``).  The means are ordered, so
component 0 is the lower one and the labels cannot switch between chains.

``examples/data/gmm.csv`` is ``simulate()`` (200 points: 35% from N(-1.5, 0.6), 65% from N(2, 1)).
Run as a script, this file checks the model against that CSV.
"""

from pathlib import Path

import jax.numpy as jnp
import numpy as np

import coromix as cm

tfd = cm.distributions

DATA = Path(__file__).resolve().parent / "data" / "gmm.csv"


def model(data):
    n = len(data["y"])
    weights = yield tfd.Dirichlet(2.0 * jnp.ones(2))
    mu = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 5.0))
    sigma = yield tfd.HalfNormal(2.0 * jnp.ones(2))
    z = yield tfd.Categorical(probs=jnp.broadcast_to(weights, (n, 2)))
    y = yield tfd.Normal(mu[z], sigma[z])


def simulate(num_rows: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """The data set of ``examples/data/gmm.csv``."""
    rng = np.random.default_rng(seed)
    z = rng.random(num_rows) < 0.65
    y = np.where(z, rng.normal(2.0, 1.0, num_rows), rng.normal(-1.5, 0.6, num_rows))
    return {"y": np.round(y, 4)}


if __name__ == "__main__":
    from coromix.cli.data import read_csv
    from coromix.cli.user_files import bind

    bound = bind(model, read_csv(DATA), source=DATA.name)
    for column, values in bound.observed.items():
        print(
            f"{DATA.name}: observed {column!r}, {len(values)} rows, mean {values.mean():.3f}, "
            f"sd {values.std():.3f}"
        )
    print(f"parameters: {', '.join(bound.parameters)}")
    print("fit it with: coromix fit examples/fit_gmm.py --data examples/data/gmm.csv")
