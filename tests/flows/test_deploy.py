"""deploy/prefect.yaml is a valid Prefect project: the work pools are created from the files in
deploy/prefect/ and `prefect deploy --all` registers every deployment, with the parameters,
schedules, pools, job variables and pull steps the file says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from synthset.manifest import parse_manifest
from synthset.privacy.tabular.config import parse_config

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
PROJECT = yaml.safe_load((REPO / "deploy" / "prefect.yaml").read_text())
POOLS = {
    "synthset": ("process", None),
    "synthset-docker": ("docker", "deploy/prefect/docker-job-template.json"),
    "synthset-kubernetes": ("kubernetes", "deploy/prefect/kubernetes-job-template.json"),
}
FLOWS = {"generate_dataset", "release_synthetic_table"}
IN_IMAGE = [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/synthset"}}]

pytestmark = pytest.mark.slow


def _prefect(*args: str) -> None:
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    proc = subprocess.run([PREFECT, *args], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def deployed(prefect_api) -> dict:
    """Pools as docs/deploy.md creates them, then `prefect deploy --all`; the API's view."""
    for pool, (kind, template) in POOLS.items():
        extra = ["--base-job-template", template] if template else []
        _prefect("work-pool", "create", pool, "--type", kind, "--overwrite", *extra)
    _prefect("deploy", "--prefect-file", "deploy/prefect.yaml", "--all", "--no-prompt")
    with get_client(sync_client=True) as client:
        pools = {name: client.read_work_pool(name) for name in POOLS}
        deployments = {}
        for spec in PROJECT["deployments"]:
            flow = _flow_name(spec["entrypoint"])
            deployments[spec["name"]] = client.read_deployment_by_name(f"{flow}/{spec['name']}")
    return {"pools": pools, "deployments": deployments}


def _flow_name(entrypoint: str) -> str:
    return {
        "generate_dataset": "generate_dataset",
        "generate_dataset_on_ray": "generate_dataset",
        "release_synthetic_table": "release_synthetic_table",
    }[entrypoint.split(":")[1]]


def test_the_project_has_a_deployment_per_flow_on_every_pool():
    flows = {_flow_name(d["entrypoint"]) for d in PROJECT["deployments"]}
    pools = {d["work_pool"]["name"] for d in PROJECT["deployments"]}
    assert flows == FLOWS
    assert pools == set(POOLS)
    for spec in PROJECT["deployments"]:
        for schedule in spec["schedules"]:
            assert schedule["cron"] and schedule["timezone"], spec["name"]


def test_work_pools_have_their_types_and_templates(deployed):
    for name, (kind, template) in POOLS.items():
        pool = deployed["pools"][name]
        assert pool.type == kind
        if template:
            assert pool.base_job_template == json.loads((REPO / template).read_text())
    k8s = deployed["pools"]["synthset-kubernetes"].base_job_template
    limits = k8s["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert limits["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_count }}"


def test_every_deployment_is_registered_as_written(deployed):
    for spec in PROJECT["deployments"]:
        deployment = deployed["deployments"][spec["name"]]
        pool = spec["work_pool"]
        assert deployment.entrypoint == spec["entrypoint"]
        assert deployment.work_pool_name == pool["name"]
        assert deployment.work_queue_name == pool["work_queue_name"]
        assert deployment.parameters == spec["parameters"]
        assert deployment.job_variables == pool.get("job_variables", {})
        assert deployment.global_concurrency_limit.limit == spec["concurrency_limit"]
        assert sorted(deployment.tags) == sorted(spec["tags"])
        got = sorted((s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules)
        want = sorted((s["cron"], s["timezone"], s.get("active", True)) for s in spec["schedules"])
        assert got == want, spec["name"]
        steps = deployment.pull_steps
        if pool["name"] == "synthset":
            where = {"directory": str(REPO)}
            assert steps == [{"prefect.deployments.steps.set_working_directory": where}]
        else:
            assert steps == IN_IMAGE


def test_the_nightly_quickstart_is_unchanged(deployed):
    deployment = deployed["deployments"]["quickstart-nightly"]
    assert deployment.work_pool_name == "synthset"
    assert deployment.parameters == {"manifest_path": "examples/quickstart.yaml"}
    (schedule,) = deployment.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 3 * * *", "UTC")


def test_inline_parameters_are_valid_inputs(deployed, tmp_path):
    """What the deployments carry inline is a manifest / release config synthset accepts."""
    params = deployed["deployments"]["digits-weekly"].parameters
    manifest = parse_manifest(params["manifest"], tmp_path, "<inline manifest>")
    assert manifest.dataset == "digits-weekly" and manifest.images == 128
    config = parse_config(deployed["deployments"]["patients-monthly"].parameters["config"])
    assert config.dataset == "patients-synth"
    for spec in PROJECT["deployments"]:
        path = spec["parameters"].get("manifest_path")
        if path:
            assert (REPO / path).is_file(), path
