"""A model file for ``coromix fit``: a two-regime Markov-switching mean of the column ``growth``.

Fit it from the command line::

    coromix fit examples/fit_switching.py --data examples/data/switching.csv

The convention of ``coromix fit``: the file defines a generator function ``model(data)``, ``data``
being the CSV as a mapping column name -> 1-D array.  The model describes the whole data set; a
variable named like a column is observed (here ``growth``, the whole series, shape ``(T,)``), every
other column must be read by the model as data (``data["x"]``), and the remaining variables are
inferred.

The series is written as ONE step of ``tfd.RegimeSwitching``: the regime follows a Markov chain
(probability ``stay[k]`` of staying in regime ``k``), and the observation is normal around the
regime's mean.  The regimes are summed out by the forward algorithm; their smoothed probabilities
are saved in ``posterior.nc`` (group ``discrete_posterior``, variable ``growth_regime``).  The means
are ordered: regime 0 is the low one.

``examples/data/switching.csv`` is ``simulate()`` (150 steps; means -0.5 and 1.0, scale 0.5,
staying probabilities 0.85 and 0.95).  Run as a script, this file checks the model against
that CSV.
"""

from pathlib import Path

import jax.numpy as jnp
import numpy as np

import coromix as cm

tfd = cm.distributions

DATA = Path(__file__).resolve().parent / "data" / "switching.csv"


def model(data):
    num_steps = len(data["growth"])
    stay = yield tfd.Beta(jnp.array([8.0, 8.0]), jnp.array([2.0, 2.0]))
    mean = yield tfd.Ordered(tfd.Normal(jnp.zeros(2), 2.0))
    sigma = yield tfd.HalfNormal(2.0)
    transition = jnp.stack([jnp.stack([stay[0], 1 - stay[0]]), jnp.stack([1 - stay[1], stay[1]])])

    def step(prev, inputs):
        first = jnp.array([0.5, 0.5])
        regime = yield tfd.Categorical(probs=first if prev is None else transition[prev.regime])
        growth = yield tfd.Normal(mean[regime], sigma)

    growth = yield tfd.RegimeSwitching(step, num_steps=num_steps)


def simulate(num_steps: int = 150, seed: int = 0) -> dict[str, np.ndarray]:
    """The data set of ``examples/data/switching.csv``."""
    rng = np.random.default_rng(seed)
    stay, mean = np.array([0.85, 0.95]), np.array([-0.5, 1.0])
    regime = np.empty(num_steps, dtype=int)
    regime[0] = 1
    for t in range(1, num_steps):
        previous = regime[t - 1]
        regime[t] = previous if rng.random() < stay[previous] else 1 - previous
    return {"growth": np.round(rng.normal(mean[regime], 0.5), 4)}


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
    print("fit it with: coromix fit examples/fit_switching.py --data examples/data/switching.csv")
