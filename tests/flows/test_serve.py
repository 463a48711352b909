"""`synthset serve MANIFEST --cron ...`: the deployment it registers against a real Prefect API,
the blocking command itself in a subprocess, and one-line refusals of a bad cron, time zone or
manifest before anything is registered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL

from synthset.cli import main
from synthset.flows.serve import serve_deployment
from tests.conftest import write_manifest

MANIFEST = """
dataset: {name}
generator: {{kind: "tests.generators.test_kinds:Swatch"}}
curation: {{enabled: false}}
items:
  - {{prompt: a red swatch, count: 2, seed: 1}}
"""


def _read(name: str):
    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(f"generate_dataset/{name}")


@pytest.mark.slow
def test_serve_registers_the_scheduled_deployment(prefect_api, tmp_path):
    path = write_manifest(tmp_path, MANIFEST.format(name="served-swatches"))

    serve_deployment(path, "0 3 * * *", "Europe/Berlin", shards_per_gpu=2).apply()

    deployment = _read("served-swatches")
    (schedule,) = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 3 * * *", "Europe/Berlin")
    assert schedule.active
    assert deployment.parameters == {"manifest_path": str(path.resolve()), "shards_per_gpu": 2}
    assert deployment.entrypoint == "synthset.flows.generate.generate_dataset"
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.tags == ["dataset:served-swatches"]


@pytest.mark.slow
def test_the_serve_command_blocks_serving_its_deployment(prefect_api, tmp_path):
    path = write_manifest(tmp_path, MANIFEST.format(name="served-cli"))
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    cmd = [sys.executable, "-m", "synthset.cli", "serve", str(path), "--cron", "15 2 * * *"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deployment, deadline = None, time.monotonic() + 120
        while deployment is None and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            try:
                deployment = _read("served-cli")
            except ObjectNotFound:
                time.sleep(0.5)
        assert deployment is not None, "the deployment never appeared"
        (schedule,) = deployment.schedules
        assert (schedule.schedule.cron, schedule.schedule.timezone) == ("15 2 * * *", "UTC")
        time.sleep(1)
        assert proc.poll() is None, "serve returned instead of serving"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "61 3 * * *"], '--cron: Invalid cron string: "61 3 * * *"'),
        (["--cron", "every night"], "--cron: Invalid cron string"),
        (["--cron", "0 3 * * *", "--timezone", "Mars/Base"], '--timezone: Invalid timezone: "Mars'),
        (["--cron", "0 3 * * *", "--shards-per-gpu", "0"], "shards per GPU is 0"),
    ],
)
def test_a_bad_schedule_is_one_line(tmp_path, capsys, args, message):
    path = write_manifest(tmp_path, MANIFEST.format(name="served-bad"))

    started = time.monotonic()
    assert main(["serve", str(path), *args]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert time.monotonic() - started < 5


def test_a_bad_manifest_is_refused_before_serving(tmp_path, capsys):
    path = write_manifest(tmp_path, "dataset: Bad Name\nitems: []\n")

    assert main(["serve", str(path), "--cron", "0 3 * * *"]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(Path(path)) in err[0]
