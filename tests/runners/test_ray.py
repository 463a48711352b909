"""Shards on a real local Ray cluster (two CPU workers on 127.0.0.1) through prefect-ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)

from synthset.cli import main
from synthset.flows.generate import run_flow
from synthset.runners.ray import RaySettings
from tests.conftest import write_manifest

pytest.importorskip("prefect_ray")
pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address():
    """`ray start --head --block` with 2 CPUs and no GPU in its own process group and a private
    temp folder (short: Ray's socket paths must fit in 107 bytes), stopped by signalling that
    group only: `ray stop` would stop every Ray cluster of the machine."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    start = [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}"]
    start += ["--num-cpus=2", "--num-gpus=0", f"--temp-dir={temp}", "--include-dashboard=false"]
    head = subprocess.Popen(
        start, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    _wait_for_port(port, head)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    yield f"127.0.0.1:{port}"
    import ray

    ray.shutdown()
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


def _wait_for_port(port: int, head: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError("the Ray head did not listen in time")


def _manifest(folder: Path, model: str, device: str = "cpu") -> Path:
    return write_manifest(
        folder,
        f"""
dataset: ray-run
generator: {{model: {model}, steps: 2, batch_size: 2, device: {device}}}
shard_size: 2
items:
  - {{prompt: a red seven, count: 4, seed: 1}}
  - {{prompt: a blue three, count: 4, seed: 9}}
""",
    )


def _local_run_in_a_fresh_process(path: Path, root: Path, tracking_uri: str) -> str:
    """The digest of `synthset run --runner local` in a process with one thread, as a Ray CPU
    worker has (CLIP scores are floats: thread counts change their last bits)."""
    command = [sys.executable, "-m", "synthset.cli", "run", str(path), "--runner", "local", "-q"]
    command += ["--datasets-root", str(root), "--tracking-uri", tracking_uri]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("digest:"))


def _overlapping(runs) -> bool:
    spans = sorted((r.start_time, r.end_time) for r in runs)
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def test_shards_run_concurrently_on_ray_and_match_the_local_runner(
    ray_address, prefect_api, tracking_uri, tiny_model, tmp_path
):
    path = _manifest(tmp_path, tiny_model)

    result = run_flow(
        str(path),
        "ray",
        RaySettings(ray_address),
        datasets_root=str(tmp_path / "ray"),
        tracking_uri=tracking_uri,
    )
    local = _local_run_in_a_fresh_process(path, tmp_path / "local", tracking_uri)

    assert result["images"] == 8 and local == result["digest"]
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[result["flow_run_id"]]))
        )
        shards = [t for t in tasks if t.name.startswith("shard-")]
        assert len(shards) == 4 and all(t.state.is_completed() for t in shards)
        assert _overlapping(shards)
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ray-run-shards"]))
        )
    table = json.loads(next(a for a in found if a.flow_run_id == shards[0].flow_run_id).data)
    workers = {row["worker"] for row in table}
    assert 2 <= len(workers) <= 4 and all(str(os.getpid()) not in w for w in workers)
    assert {row["model_loads"] for row in table} == {1}


def test_a_gpu_manifest_on_a_cpu_cluster_fails_at_once(
    ray_address, prefect_api, tiny_model, tmp_path, capsys
):
    path = _manifest(tmp_path, tiny_model, device="cuda")
    started = time.perf_counter()

    code = main(["run", str(path), "--runner", "ray", "--address", ray_address, "-q"])

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and time.perf_counter() - started < 60
    assert len(err) == 1 and "needs 1 GPU" in err[0] and "node 0: 2 CPU, 0 GPU" in err[0]
    assert not (tmp_path / "datasets" / "ray-run").exists() or not any(
        (tmp_path / "datasets" / "ray-run").glob("v*")
    )
