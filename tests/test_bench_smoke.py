"""The GPU throughput bench runs on CPU at its smoke size (CI has no GPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "gpu_throughput.py"


@pytest.mark.slow
def test_gpu_bench_smoke_runs_every_family_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--images", "2", "--batch-size", "2"]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    printed = [line.split()[0] for line in done.stdout.splitlines() if line.split()]
    assert [f for f in printed if f in ("sd", "sdxl", "flux")] == ["sd", "sdxl", "flux"]
    rows = json.loads(out.read_text())["rows"]
    assert [r["family"] for r in rows] == ["sd", "sdxl", "flux"]
    for row in rows:
        assert row["raw_images_per_s"] > 0 and row["synthset_images_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["synthset_images_per_s"] / row["raw_images_per_s"])
        assert (row["resolution"], row["images"]) == (32, 2)
        assert row["max_pixel_diff"] <= 1


@pytest.mark.slow
def test_diversity_bench_smoke_prints_before_and_after_for_every_prompt(tmp_path):
    out = tmp_path / "diversity.json"
    bench = BENCH.parent / "diversity.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--images", "3", "--only", "off", "--only", "both"]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert "a red three on a white background" in done.stdout
    assert "duplicate rate, worst prompt %" in done.stdout
    figures = json.loads(out.read_text())
    assert [s["name"] for s in figures["settings"]] == ["off", "both"]
    for setting in figures["settings"]:
        assert len(setting["per_prompt"]) == 5
        assert 0 <= setting["overall"]["dup"] <= 1 and 0 <= setting["overall"]["adh"] <= 1
        assert setting["overall"]["fd_digits"] > 0
