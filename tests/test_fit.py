"""``coromix fit MODEL.py --data DATA.csv``: outputs, ``--map``, and one-line errors (exit code 2)."""

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import arviz as az
import numpy as np
import pytest

from coromix.cli import main
from coromix.cli.data import read_csv

ROOT = Path(__file__).resolve().parents[1]

REGRESSION = """
    import coromix as cm
    tfd = cm.distributions

    def model(data):
        slope = yield tfd.Normal(0.0, 2.0)
        sigma = yield tfd.HalfNormal(1.0)
        y = yield tfd.Normal(slope * data["x"], sigma)
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    x = np.linspace(-1.0, 1.0, 30)
    y = 1.5 * x + np.random.default_rng(0).normal(0.0, 0.3, 30)
    rows = "".join(f"{a:.4f},{b:.4f}\n" for a, b in zip(x, y))
    return {
        "folder": folder,
        "model": write(folder / "regression.py", REGRESSION),
        "data": write(folder / "data.csv", "# simulated: y = 1.5 x + noise\nx,y\n" + rows),
    }


@pytest.fixture(scope="module")
def nuts_fit(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("fit")
    code = main(
        [
            "fit",
            str(files["model"]),
            "--data",
            str(files["data"]),
            "--out",
            str(out),
            "--chains",
            "2",
            "--warmup",
            "100",
            "--samples",
            "100",
            "--quiet",
        ]
    )
    return code, out


def test_fit_writes_every_output(nuts_fit):
    code, out = nuts_fit
    assert code == 0
    idata = az.from_netcdf(out / "posterior.nc")
    assert "posterior" in idata.groups()
    assert idata.posterior["slope"].shape == (2, 100)
    assert abs(float(idata.posterior["slope"].mean()) - 1.5) < 0.3
    np.testing.assert_allclose(idata.observed_data["y"].shape, (30,))
    with open(out / "summary.csv") as file:
        table = list(csv.DictReader(file))
    assert [row["parameter"] for row in table] == ["slope", "sigma"]
    assert {"mean", "sd", "r_hat", "ess_bulk"} <= set(table[0])
    for plot in ("trace.png", "posterior.png", "posterior_predictive.png"):
        assert (out / plot).stat().st_size > 5_000, plot


def test_map_writes_map_csv_in_a_fresh_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = ROOT / "examples" / "fit_switching.py"
    data = ROOT / "examples" / "data" / "switching.csv"
    assert main(["fit", str(model), "--data", str(data), "--map"]) == 0
    printed = capsys.readouterr().out
    (folder,) = tmp_path.glob("coromix-fit-*")
    with open(folder / "map.csv") as file:
        table = {row["parameter"]: float(row["value"]) for row in csv.DictReader(file)}
    assert list(table) == ["stay[0]", "stay[1]", "mean[0]", "mean[1]", "sigma"]
    assert table["mean[0]"] < 0 < table["mean[1]"]  # simulated with means -0.5 and 1.0
    assert 0.3 < table["sigma"] < 0.8  # simulated with 0.5
    assert "log density at the mode" in printed and f"outputs written to {folder}" in printed


def test_read_csv_skips_notes_and_keeps_integers(files):
    path = write(files["folder"] / "mixed.csv", "# a note\n\ncount,level\n3,0.5\n4,1e-3\n")
    columns = read_csv(path)
    assert columns["count"].dtype == np.int64 and columns["count"].tolist() == [3, 4]
    assert columns["level"].dtype == np.float64 and columns["level"].tolist() == [0.5, 0.001]


def run_error(capsys, *args):
    """Runs `coromix fit` expecting a failure; returns its stderr."""
    assert main(["fit", *map(str, args), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("coromix fit: error: ")
    assert "coromix/" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    return err


def test_missing_files(files, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = run_error(capsys, tmp_path / "nope.py", "--data", files["data"])
    assert "model file" in err and "nope.py not found" in err
    err = run_error(capsys, files["model"], "--data", tmp_path / "nope.csv")
    assert "data file" in err and "nope.csv not found" in err
    assert not list(tmp_path.glob("coromix-fit-*"))  # no output folder for a failed fit


def test_model_file_without_model(files, capsys):
    path = write(files["folder"] / "other.py", "def mixture(data):\n    yield None\n")
    err = run_error(capsys, path, "--data", files["data"])
    assert "defines no `model`" in err and "mixture" in err


@pytest.mark.parametrize(
    "text, expected",
    [
        ("import numpy\nvalue = 1 / 0\n", "ZeroDivisionError"),
        ("def model(data):\n    y = data['x'][0] + undefined_name\n    yield y\n", "NameError"),
    ],
)
def test_user_errors_show_only_the_users_frames(files, capsys, text, expected):
    path = write(files["folder"] / "broken.py", text)
    assert main(["fit", str(path), "--data", str(files["data"]), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    frames = [line for line in err if line.strip().startswith("File ")]
    assert frames and all(str(path) in line for line in frames)
    assert err[-1].startswith("coromix fit: error: ") and expected in err[-1]
    assert sum(line.startswith("coromix fit:") for line in err) == 1


def test_user_traceback_from_the_command_line(files):
    path = write(files["folder"] / "typo.py", REGRESSION.replace('data["x"]', 'data["z"]'))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "coromix.cli",
            "fit",
            str(path),
            "--data",
            str(files["data"]),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert [line for line in lines if line.strip().startswith("File ")] == [
        f'  File "{path}", line 7, in model'
    ]
    assert lines[-1] == (
        f"coromix fit: error: running model(data) from {path} failed (KeyError: "
        f"the data ({files['data']}) has no column 'z'; its columns: x, y; "
        f"traceback above)"
    )


def test_columns_and_variables_must_match(files, capsys):
    folder = files["folder"]
    extra = write(folder / "extra.csv", "x,y,weight\n1,2,3\n2,4,5\n")
    err = run_error(capsys, files["model"], "--data", extra)
    assert "'weight'" in err and "slope ()" in err and "sigma ()" in err and "y (2,)" in err
    covariates_only = write(folder / "nothing.py", REGRESSION.replace("y = yield", "obs = yield"))
    err = run_error(capsys, covariates_only, "--data", files["data"])
    assert "none of the columns" in err and "x, y" in err and "obs (30,)" in err


def test_bad_values_name_the_column_and_rows(files, capsys):
    path = write(files["folder"] / "holes.csv", "x,y\n1,2\n2,NA\n3,\n4,nan\n5,6\n")
    err = run_error(capsys, files["model"], "--data", path)
    assert "column 'y' in data rows 2 ('NA'), 3 (''), 4 ('nan')" in err


@pytest.mark.parametrize(
    "text, expected",
    [("", "is empty"), ("x,y\n", "no data rows"), ("x,y\n1,2\n3\n", "data row 2 (line 3) has 1")],
)
def test_empty_or_ragged_csv(files, capsys, text, expected):
    path = files["folder"] / "short.csv"
    path.write_text(text)
    err = run_error(capsys, files["model"], "--data", path)
    assert expected in err
