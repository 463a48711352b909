"""The command line: exit codes, one-line errors, and a run → ls → tag → pull round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from synthset.cli import main
from tests.conftest import write_manifest


def test_bad_manifest_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    path = write_manifest(
        tmp_path, "dataset: d\ngenerator: {scheduler: fast}\nitems: [{prompt: x}]\n"
    )
    for command in ("validate", "run"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0
        assert str(path) in err and "scheduler" in err and "euler_a" in err
    assert not (tmp_path / "datasets").exists()


def test_validate_reports_the_plan(tmp_path, capsys):
    path = write_manifest(
        tmp_path, "dataset: d\nshard_size: 4\nitems:\n  - {prompt: x, count: 10}\n"
    )
    assert main(["validate", str(path)]) == 0
    assert "10 images in 3 shards" in capsys.readouterr().out


def test_usage_error_from_installed_script_has_no_traceback(tmp_path):
    missing = tmp_path / "nope.yaml"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "synthset"), "validate", str(missing)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"synthset: error: {missing}: no such file"


def test_unknown_dataset_is_a_usage_error(tracking_uri, capsys):
    assert main(["pull", "nothing-here@3", "--tracking-uri", tracking_uri]) == 2
    assert "no dataset named 'nothing-here'" in capsys.readouterr().err


@pytest.mark.slow
def test_run_ls_tag_pull(prefect_api, tracking_uri, tiny_model, tmp_path, capsys):
    path = write_manifest(
        tmp_path,
        f"""
dataset: cli-roundtrip
generator: {{model: {tiny_model}, steps: 2, batch_size: 8}}
items: [{{prompt: a green one, count: 4, seed: 5}}]
""",
    )
    assert main(["run", str(path), "--tracking-uri", tracking_uri, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "version:     v1" in out and "Prefect UI:" in out
    assert str(tmp_path / "datasets" / "cli-roundtrip" / "v1") in out

    assert main(["tag", "cli-roundtrip@1", "production", "--tracking-uri", tracking_uri]) == 0
    assert main(["ls", "cli-roundtrip", "--tracking-uri", tracking_uri]) == 0
    listing = capsys.readouterr().out
    assert "v1" in listing and "latest, production" in listing

    target = tmp_path / "pulled"
    assert (
        main(
            [
                "pull",
                "cli-roundtrip@production",
                "--to",
                str(target),
                "--tracking-uri",
                tracking_uri,
            ]
        )
        == 0
    )
    assert "verified" in capsys.readouterr().out
    assert len(pd.read_parquet(target / "metadata.parquet")) == 4

    assert main(["tag", "cli-roundtrip@1", "latest", "--tracking-uri", tracking_uri]) == 2
    assert "'latest' moves by itself" in capsys.readouterr().err


def test_run_refuses_to_start_when_mlflow_does_not_answer(tmp_path, capsys):
    path = write_manifest(tmp_path, "dataset: d\nitems: [{prompt: x}]\n")
    assert main(["run", str(path), "--tracking-uri", "http://127.0.0.1:9"]) == 2
    assert "the mlflow server does not answer at http://127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "datasets").exists()


@pytest.mark.slow
def test_run_prints_rejections_and_warns_of_each_short_item(
    prefect_api, tracking_uri, tiny_model, tmp_path, capsys
):
    path = write_manifest(
        tmp_path,
        f"""
dataset: cli-short
generator: {{model: {tiny_model}, steps: 2, batch_size: 4}}
curation: {{min_clip_score: 100, attempt_budget: 2}}
items:
  - {{prompt: a red seven, count: 2, seed: 1}}
  - {{prompt: a blue three, count: 1, seed: 90}}
""",
    )
    assert main(["run", str(path), "--tracking-uri", tracking_uri, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "rejected:    clip_below_threshold 6" in captured.out
    warnings = [line for line in captured.err.splitlines() if "synthset: warning:" in line]
    assert warnings == [
        "synthset: warning: items[0] 'a red seven': 0 of 2 kept after 4 images (budget 4)",
        "synthset: warning: items[1] 'a blue three': 0 of 1 kept after 2 images (budget 2)",
    ]
