"""The GPU throughput bench runs on CPU at its smoke size (CI has no GPU)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "gpu_throughput.py"


@pytest.mark.slow
def test_gpu_bench_smoke_runs_every_family_on_cpu():
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--images", "2", "--batch-size", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    rows = [
        line.split()
        for line in done.stdout.splitlines()
        if line.split()[:1] in (["sd"], ["sdxl"], ["flux"])
    ]
    assert [r[0] for r in rows] == ["sd", "sdxl", "flux"]
    assert all(float(r[1]) > 0 and float(r[2]) > 0 for r in rows)
