"""`synthset tabular ...`: one-line errors with exit 2 and nothing written, exit 3 for a
blocked release, and fit → sample through saved models."""

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from synthset.privacy.tabular.cli import main
from tests.privacy.conftest import UTILITY_RELAXED

TINY_ARGS = ["--steps", "20", "--threads", "1"]


def run_cli(args, capsys):
    code = main(["tabular", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_inspect_lists_kinds(csv_file, capsys):
    code, out, _ = run_cli(["inspect", csv_file, "--id", "patient", "--target", "risk"], capsys)
    assert code == 0
    assert "240 rows, 6 modelled columns" in out and "dropped: patient" in out
    assert "visit" in out and "datetime" in out and "(target)" in out


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["inspect", "{csv}", "--type", "age=integer"], "column 'age': unknown type 'integer'"),
        (["inspect", "{csv}", "--type", "age"], "expected COLUMN=VALUE"),
        (["inspect", "{missing}"], "no such file"),
        (["run", "--data", "{csv}", "--name", "x", "--id", "nope"], "column 'nope'"),
        (
            ["run", "--data", "{csv}", "--name", "x", "--id", "patient", "--holdout", "0.99"],
            "too few",
        ),
        (["run", "--data", "{csv}", "--name", "x", "--delta", "1e-5"], "delta is given without"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    args, expected, csv_file, tmp_path, capsys, tracking_uri
):
    filled = [a.format(csv=csv_file, missing=tmp_path / "missing.csv") for a in args]
    if filled[0] == "run":
        filled += ["--datasets-root", str(tmp_path / "ds"), "--tracking-uri", tracking_uri]
        filled += ["--no-prefect"]
    code, _, err = run_cli(filled, capsys)
    assert code == 2
    assert err.count("\n") == 1 and expected in err
    assert not (tmp_path / "ds").exists()


def test_run_without_prefect_then_blocked(csv_file, tmp_path, capsys, tracking_uri):
    common = ["--data", csv_file, "--id", "patient", "--target", "risk", *TINY_ARGS]
    common += ["--datasets-root", tmp_path / "ds", "--tracking-uri", tracking_uri, "--no-prefect"]
    config = tmp_path / "release.yaml"
    gate = yaml.safe_dump({"gate": {"max_dcr_share": 1.0} | UTILITY_RELAXED})
    config.write_text("dataset: cli-tab\ndata: unused.csv\n" + gate)
    code, out, err = run_cli(["run", config, *common], capsys)
    assert code == 0, err
    assert "version:     v1" in out and "no differential privacy" in out
    config.write_text("dataset: cli-tab\ndata: unused.csv\ngate: {max_mia_auc: 0.0}\n")
    code, out, err = run_cli(["run", config, *common], capsys)
    assert code == 3
    assert "release blocked" in err and "mia_auc" in err
    assert not (tmp_path / "ds" / "cli-tab" / "v2").exists()


def test_fit_then_sample(csv_file, tmp_path, capsys):
    model = tmp_path / "model"
    args = ["fit", csv_file, "--out", model, "--id", "patient", *TINY_ARGS]
    code, out, _ = run_cli([*args, "--epsilon", "5"], capsys)
    assert code == 0 and '"epsilon"' in out
    code, _, err = run_cli(["fit", csv_file, "--out", model, "--id", "patient"], capsys)
    assert code == 2 and "not empty" in err
    target = tmp_path / "rows.csv"
    code, out, _ = run_cli(["sample", model, "-n", 25, "--seed", 4, "--out", target], capsys)
    assert code == 0 and "25 rows" in out
    rows = pd.read_csv(target)
    assert len(rows) == 25 and "patient" not in rows


def test_module_entry_point_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "synthset.privacy.tabular.cli",
            "tabular",
            "inspect",
            tmp_path / "x.csv",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"synthset: error: {tmp_path / 'x.csv'}: no such file"


def test_hooked_into_the_main_command(csv_file, capsys):
    from synthset.cli import main as synthset_main

    assert synthset_main(["tabular", "inspect", str(csv_file), "--id", "patient"]) == 0
    assert "6 modelled columns" in capsys.readouterr().out
