"""The command line and the README's code run as documented."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import coromix
from coromix.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version():
    out = subprocess.run([sys.executable, "-m", "coromix.cli", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"coromix {coromix.__version__}"


@pytest.mark.slow
def test_demo_finds_species_and_recessions(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--chains", "2", "--warmup", "200",
                 "--samples", "200", "--quiet"]) == 0
    printed = capsys.readouterr().out
    rate = float(re.search(r"([\d.]+)% of flowers agree", printed).group(1))
    # the reference: EM on the same petals (scikit-learn, full covariances, best of 10 starts)
    from sklearn.mixture import GaussianMixture

    from coromix import demo

    _, table = demo.load_csv("iris_petals.csv")
    petals = table[:, :2].astype(float)
    em = GaussianMixture(3, covariance_type="full", n_init=10, random_state=0).fit(petals)
    em_rate = 100 * demo.agreement(em.predict(petals), table[:, 2])
    assert em_rate > 95.0 and rate >= em_rate - 2.0, (rate, em_rate)
    recessions = re.search(r"recession probability > 0.5:\n((?:  .*\n)+)", printed).group(1).split()
    for quarter in ("1974Q4", "1975Q1", "1980Q2", "1981Q4", "1982Q1", "1990Q4", "1991Q1",
                    "2008Q4", "2009Q1"):
        assert quarter in recessions, quarter
    for plot in ("iris_clusters.png", "gdp_regimes.png"):
        assert (tmp_path / plot).stat().st_size > 10_000
    assert f"plots written to {tmp_path}" in printed


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
