"""Make tests/data/hmm_gaussian_reference.json: a long NumPyro run of the 3-state Gaussian HMM.

The model, its priors and the starting point are those of ``benchmarks/nuts_whole_process.py``
(``numpyro_model("hmm_gaussian")``, ``hmm_init``): pi1 ~ Dirichlet(1, 1, 1), rows of A ~
Dirichlet(1, 1, 1), mu ordered with Normal(0, 20) priors, sigma_k ~ HalfNormal(5), on posteriordb's
``hmm_gaussian_simulated`` (T = 500); the hidden states enumerated inside NumPyro's
``contrib.control_flow.scan``.  NumPyro's NUTS with its default settings, float64.

The file keeps, per parameter element, the posterior mean, sd, the Monte Carlo standard errors of
both (ArviZ), the bulk ESS and R-hat: what ``tests/infer/test_hmm_posterior.py`` compares against.

Run (about 6 minutes on a shared, loaded 2-CPU machine):
    .venv/bin/python benchmarks/make_hmm_reference.py [--chains 4 --warmup 2000 --samples 10000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import nuts_whole_process as bench

OUT = HERE.parent / "tests" / "data" / "hmm_gaussian_reference.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import numpyro

    numpyro.enable_x64()
    import arviz as az
    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpyro.infer import MCMC, NUTS, init_to_value

    y = np.asarray(bench.load_data("hmm_gaussian"), np.float64)
    init = {k: np.asarray(v, np.float64) for k, v in bench.hmm_init(y).items()}
    kernel = NUTS(bench.numpyro_model("hmm_gaussian"), init_strategy=init_to_value(values=init))
    mcmc = MCMC(
        kernel,
        num_warmup=args.warmup,
        num_samples=args.samples,
        num_chains=args.chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(args.seed), jnp.asarray(y), extra_fields=("diverging",))
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    seconds = time.perf_counter() - start
    divergences = int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))

    parameters = {}
    for name in ("pi1", "A", "mu", "sigma"):
        draws = samples[name]
        for index in np.ndindex(draws.shape[2:]):
            x = draws[(slice(None), slice(None)) + index]
            parameters[f"{name}[{','.join(map(str, index))}]"] = {
                "name": name,
                "index": list(index),
                "mean": float(x.mean()),
                "sd": float(x.std()),
                "mcse_mean": float(az.mcse(x, method="mean")),
                "mcse_sd": float(az.mcse(x, method="sd")),
                "ess_bulk": float(az.ess(x, method="bulk")),
                "r_hat": float(az.rhat(x)),
            }
    worst_rhat = max(p["r_hat"] for p in parameters.values())
    reference = {
        "description": "posterior of the 3-state Gaussian HMM on posteriordb "
        "hmm_gaussian_simulated (T = 500), made by benchmarks/make_hmm_reference.py",
        "model": {
            "pi1": "Dirichlet(1, 1, 1)",
            "A[i]": "Dirichlet(1, 1, 1) per row (row i = p(z_t | z_{t-1} = i))",
            "mu": "ordered, Normal(0, 20) density per element",
            "sigma": "HalfNormal(5) per element",
            "y_t": "Normal(mu[z_t], sigma[z_t]), z_1 ~ Categorical(pi1)",
        },
        "sampler": {
            "library": "numpyro",
            "numpyro_version": numpyro.__version__,
            "jax_version": jax.__version__,
            "arviz_version": az.__version__,
            "kernel": "NUTS (default settings: target_accept_prob 0.8, max_tree_depth 10, "
            "diagonal mass)",
            "discrete": "z enumerated in numpyro.contrib.control_flow.scan",
            "precision": "float64",
            "num_chains": args.chains,
            "num_warmup": args.warmup,
            "num_samples": args.samples,
            "chain_method": "vectorized",
            "seed": args.seed,
            "init": {k: v.tolist() for k, v in init.items()},
            "divergences": divergences,
            "max_r_hat": worst_rhat,
            "seconds": round(seconds, 1),
            "date": datetime.date.today().isoformat(),
        },
        "parameters": parameters,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reference, indent=1) + "\n")
    print(
        f"wrote {args.out} ({seconds:.0f} s sampling, {divergences} divergences, "
        f"max R-hat {worst_rhat:.4f})"
    )
    for key, p in parameters.items():
        print(
            f"  {key:<9} mean {p['mean']:9.4f}  sd {p['sd']:8.4f}  mcse {p['mcse_mean']:.5f}  "
            f"ess {p['ess_bulk']:7.0f}  r_hat {p['r_hat']:.4f}"
        )


if __name__ == "__main__":
    main()
