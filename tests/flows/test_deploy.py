"""deploy/prefect.yaml is a valid Prefect project: `prefect deploy` creates the nightly schedule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")


@pytest.mark.slow
def test_prefect_deploy_creates_the_scheduled_deployment(prefect_api):
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    for cmd in (
        [PREFECT, "work-pool", "create", "synthset", "--type", "process", "--overwrite"],
        [PREFECT, "deploy", "--prefect-file", "deploy/prefect.yaml", "--all", "--no-prompt"],
    ):
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("generate_dataset/quickstart-nightly")
    assert deployment.work_pool_name == "synthset"
    assert deployment.parameters == {"manifest_path": "examples/quickstart.yaml"}
    (schedule,) = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 3 * * *", "UTC")
    assert deployment.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
    ]
