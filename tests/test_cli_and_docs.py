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
    out = subprocess.run(
        [sys.executable, "-m", "coromix.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"coromix {coromix.__version__}"


def test_library_import_leaves_out_the_command_line_and_matplotlib():
    """``import coromix`` loads neither :mod:`coromix.cli` nor matplotlib; the CLI loads matplotlib
    only to draw."""
    code = (
        "import sys, coromix; loaded = lambda p: sorted(m for m in sys.modules if m.startswith(p)); "
        "print(loaded('coromix.cli'), loaded('matplotlib')); import coromix.cli; "
        "print(loaded('matplotlib'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split("\n")[:2] == ["[] []", "[]"], out


@pytest.mark.slow
def test_demo_finds_species_and_recessions(tmp_path, capsys):
    assert (
        main(
            [
                "demo",
                "--out",
                str(tmp_path),
                "--chains",
                "2",
                "--warmup",
                "200",
                "--samples",
                "200",
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    rate = float(re.search(r"([\d.]+)% of flowers agree", printed).group(1))
    # the reference: EM on the same petals (scikit-learn, one shared covariance as in the demo's
    # model, best of 10 starts)
    from sklearn.mixture import GaussianMixture

    from coromix.cli import demo

    _, table = demo.load_csv("iris_petals.csv")
    petals = table[:, :2].astype(float)
    em = GaussianMixture(3, covariance_type="tied", n_init=10, random_state=0).fit(petals)
    em_rate = 100 * demo.agreement(em.predict(petals), table[:, 2])
    assert em_rate > 95.0 and rate >= em_rate - 2.0, (rate, em_rate)
    recessions = re.search(r"recession probability > 0.5:\n((?:  .*\n)+)", printed).group(1).split()
    for quarter in (
        "1974Q4",
        "1975Q1",
        "1980Q2",
        "1981Q4",
        "1982Q1",
        "1990Q4",
        "1991Q1",
        "2008Q4",
        "2009Q1",
    ):
        assert quarter in recessions, quarter
    for plot in ("iris_clusters.png", "gdp_regimes.png"):
        assert (tmp_path / plot).stat().st_size > 10_000
    assert f"plots written to {tmp_path}" in printed


@pytest.mark.slow
def test_full_demo_converges_cleanly(tmp_path, capsys):
    """``make demo`` as shipped: no warning lines, every summary row R-hat <= 1.01 and bulk ESS
    >= 400 (the rows are the lines of the two summary tables)."""
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "warning" not in printed.lower(), printed
    rows = [
        line.split()
        for line in printed.splitlines()
        if re.match(r"^[a-z_]+(\[[\d, ]+\])?\s+-?\d", line)
    ]
    # a table row: a name and numbers only (not the header line "coromix 0.1.0 demo: ...")
    rows = [r for r in rows if len(r) >= 10 and all(re.fullmatch(r"-?[\d.]+", x) for x in r[-9:])]
    assert len(rows) >= 12 + 5, printed
    for row in rows:
        ess_bulk, r_hat = float(row[-3]), float(row[-1])
        assert r_hat <= 1.01 and ess_bulk >= 400, row


README_BLOCKS = re.findall(
    r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL
)


def test_readme_has_python_blocks():
    assert len(README_BLOCKS) >= 4


@pytest.mark.parametrize(
    "block", README_BLOCKS, ids=[f"block{i}" for i in range(len(README_BLOCKS))]
)
def test_readme_python_blocks_run(block):
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102 (the README blocks)
