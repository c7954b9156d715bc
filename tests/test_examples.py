"""The scripts in examples/ run as documented."""

import runpy
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))
# in the slow suite: three SMC fits with their compilations (about a minute); four NUTS fits of
# a mixture (about a minute; label switching and relabelling are tested in
# tests/infer/test_relabel.py); three regime-switching models sampled and scored eagerly (about
# 50 s; each model is tested in tests/distributions/test_regime_switching.py); 100 models of the
# seed's second model built and sampled one step at a time (about 15 s; tests/test_seed.py runs
# the seed's models that branch in Python, tests/distributions/test_regime_switching.py the second)
SLOW = {"choose_components", "label_switching", "switching_models", "seed_dynamic_mixture"}


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in SLOW else [])
        for p in EXAMPLES
    ],
)
def test_example_runs(script, capsys):
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.strip()
