"""The command line and the README's code run as documented."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import coromix
from coromix.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version_and_demo(capsys):
    out = subprocess.run([sys.executable, "-m", "coromix.cli", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"coromix {coromix.__version__}"
    assert main(["demo", "--draws", "2000"]) == 0
    printed = capsys.readouterr().out
    for name in ("component_selection", "mu1", "mu2", "sigma", "observed_data"):
        assert re.search(rf"^{name}\s+-?\d", printed, flags=re.M), name
    share = float(re.search(r"share of draws from component 0: ([\d.]+)", printed).group(1))
    assert abs(share - 0.6) < 4 * np.sqrt(0.24 / 2000)


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
