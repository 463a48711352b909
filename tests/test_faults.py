"""Faults lose no work and make no surprise versions: a run killed at any step is finished by
the next with the same digest and no orphan; images changed after scoring are rejected, not
published; runs of one dataset at once all finish; a tracking store lost before publishing
fails the run in seconds and keeps its shards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from synthset.pipeline import RunObserver, run_dataset
from synthset.runners.local import LocalRunner
from synthset.storage.versioning import experiment_name, list_versions
from tests.conftest import write_manifest

BIN = Path(sys.executable).parent

KILLER = """
import os, signal, sys
import synthset.generators.shard, synthset.pipeline, synthset.storage.publish
import synthset.storage.versioning
from synthset.cli import main

point = sys.argv[1]
modules = {
    "generation": (synthset.generators.shard, "write_shard", True),
    "scoring": (synthset.pipeline, "score_shard", True),
    "curation": (synthset.pipeline, "_curate", False),
    "publish": (synthset.storage.publish, "rename_to_free_version", True),
    "record": (synthset.storage.versioning, "_upload_folder", False),
    "release": (synthset.pipeline, "release_staging", False),
}
module, name, after = modules[point]
real = getattr(module, name)

def killing(*args, **kwargs):
    out = real(*args, **kwargs) if after else None
    os.kill(os.getpid(), signal.SIGKILL)
    return out

setattr(module, name, killing)
sys.exit(main(sys.argv[2:]))
"""


def _text(name: str, model: str, seed: int = 1) -> str:
    return f"""
dataset: {name}
generator: {{model: {model}, steps: 2, batch_size: 2, device: cpu}}
shard_size: 2
items:
  - {{prompt: a red seven, count: 3, seed: {seed}}}
  - {{prompt: a blue three, count: 2, seed: {seed + 40}}}
"""


class _Heard(RunObserver):
    def __init__(self) -> None:
        self.resumes: list = []

    def resuming(self, resume) -> None:
        self.resumes.append(resume)


def _no_leftovers(root: Path, name: str, tracking_uri: str) -> None:
    """No staging, no version folder MLflow does not know, no run left RUNNING."""
    dataset = root / name
    assert not (dataset / ".staging").exists()
    recorded = [v.version for v in list_versions(name, tracking_uri)]
    assert sorted(int(p.name[1:]) for p in dataset.glob("v*")) == recorded
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment_name(name))
    runs = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'")
    assert runs == []


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Scores are floats whose last bits depend on torch's thread count, and other tests
    change it in this process: this one and its subprocesses use one thread, so a run and its
    resumption in another process give the same digest."""
    import torch

    before, omp = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(before)
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS")
    else:
        os.environ["OMP_NUM_THREADS"] = omp


def _synthset(root: Path, *args: str, point: str | None = None) -> subprocess.CompletedProcess:
    """`synthset ARGS` in a fresh process (killing itself at `point`): a run, its resumption
    and the reference all start from the same process state, whatever earlier tests did here."""
    command = [sys.executable, "-c", KILLER, point] if point else [str(BIN / "synthset")]
    return subprocess.run(
        [*command, *args],
        env={**os.environ, "SYNTHSET_DATASETS": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _run_args(path: Path, uri: str) -> list[str]:
    return ["run", str(path), "--runner", "local", "--tracking-uri", uri, "-q"]


@pytest.fixture(scope="module")
def reference_digest(tiny_model, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("reference")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    path = write_manifest(folder, _text("killed", tiny_model))
    done = _synthset(folder / "d", *_run_args(path, uri))
    assert done.returncode == 0, done.stderr[-2000:]
    return list_versions("killed", uri)[0].digest


@pytest.mark.slow
@pytest.mark.parametrize(
    "point", ["generation", "scoring", "curation", "publish", "record", "release"]
)
def test_a_run_killed_at_any_step_is_finished_by_the_next_with_the_same_digest(
    point, tiny_model, tmp_path, reference_digest
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = write_manifest(tmp_path, _text("killed", tiny_model))
    root = tmp_path / "datasets"
    killed = _synthset(root, *_run_args(path, uri), point=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (root / "killed" / ".staging").is_dir()

    resumed = _synthset(root, *_run_args(path, uri))

    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (version,) = list_versions("killed", uri)
    assert version.version == 1
    assert ("unchanged:" in resumed.stdout) == (point == "release")
    assert "resuming:" in resumed.stderr and "was killed" in resumed.stderr
    if point in ("publish", "record"):
        assert "v1 was published but not recorded" in resumed.stderr
    if point == "record":
        assert "marked FAILED" in resumed.stderr
    _no_leftovers(root, "killed", uri)
    assert version.digest == reference_digest


def _spoil(shard_folder: Path, outside: Path) -> dict[str, str]:
    """Truncate, delete and replace by an outside link one image each; returns id → how."""
    rows = pd.read_parquet(shard_folder / "rows.parquet")
    images = [shard_folder / name for name in rows["file_name"]]
    images[0].write_bytes(images[0].read_bytes()[:60])
    images[1].unlink()
    images[2].unlink()
    images[2].symlink_to(outside)
    return dict(zip(rows["sample_id"][:3], ["truncated", "deleted", "link"], strict=True))


@pytest.mark.parametrize("curated", [True, False])
def test_images_changed_after_scoring_are_rejected_as_unreadable(
    curated, tiny_model, tmp_path, tracking_uri
):
    name = f"spoiled-{str(curated).lower()}"
    text = _text(name, tiny_model).replace("shard_size: 2", "shard_size: 3")
    if not curated:
        text += "curation: {enabled: false}\n"
    path = write_manifest(tmp_path, text)
    outside = tmp_path / "secret.png"
    outside.write_bytes((Path(tiny_model) / "model_index.json").read_bytes())
    spoiled: dict[str, str] = {}

    class Spoiler(RunObserver):
        def shard_done(self, outcome) -> None:
            if not spoiled:
                shard = next(p for p in (tmp_path / "datasets").rglob("shards/*") if p.is_dir())
                spoiled.update(_spoil(shard, outside))

    result = run_dataset(path, LocalRunner(), tracking_uri=tracking_uri, observers=[Spoiler()])

    folder = result.published.path
    kept = pd.read_parquet(folder / "metadata.parquet")
    rejected = pd.read_parquet(folder / "rejected.parquet").set_index("sample_id")
    assert not set(spoiled) & set(kept["sample_id"])
    assert set(rejected.loc[list(spoiled), "reject_reason"]) == {"unreadable"}
    assert not any(p.is_symlink() for p in (folder / "images").iterdir())
    assert len(list((folder / "images").iterdir())) == len(kept)
    secret = outside.read_bytes()
    assert all(p.read_bytes() != secret for p in (folder / "images").iterdir())
    if curated:
        assert result.shortfall() == [] and len(kept) == 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mlflow_server(folder: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
        + ["--artifacts-destination", str(folder / "artifacts")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        start_new_session=True,
    )
    import urllib.request

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("mlflow server did not start")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_runs_of_one_dataset_at_once_all_finish_with_distinct_versions(tiny_model, tmp_path):
    port = _free_port()
    server = _mlflow_server(tmp_path, port)
    uri = f"http://127.0.0.1:{port}"
    try:
        same = write_manifest(tmp_path, _text("together", tiny_model), "a.yaml")
        other = write_manifest(tmp_path, _text("together", tiny_model, seed=7), "b.yaml")
        env = {**os.environ, "SYNTHSET_DATASETS": str(tmp_path / "datasets")}
        procs = [
            subprocess.Popen(
                [str(BIN / "synthset"), "run", str(m), "--runner", "local", "-q"]
                + ["--tracking-uri", uri],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for m in (same, same, other)
        ]
        outputs = [p.communicate(timeout=600) for p in procs]
        for proc, (_out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err[-2000:]
        versions = list_versions("together", uri)
        assert [v.version for v in versions] == list(range(1, len(versions) + 1))
        assert len({v.digest for v in versions}) == 2
        assert "latest" in versions[-1].aliases
        assert sum("waiting for it" in err for _, err in outputs) <= 1
        _no_leftovers(tmp_path / "datasets", "together", uri)
    finally:
        _stop(server)


@pytest.mark.slow
def test_a_tracking_server_lost_before_publishing_fails_fast_and_keeps_the_shards(
    tiny_model, tmp_path
):
    from synthset.errors import SynthsetError

    port = _free_port()
    servers = [_mlflow_server(tmp_path, port)]
    uri = f"http://127.0.0.1:{port}"
    path = write_manifest(tmp_path, _text("lost", tiny_model))
    lost_at: list[float] = []

    class Outage(RunObserver):
        def curated(self, curation, round_) -> None:
            if not lost_at:
                _stop(servers[0])
                lost_at.append(time.monotonic())

    try:
        with pytest.raises(SynthsetError, match="does not answer.*shards are kept"):
            run_dataset(path, LocalRunner(), tracking_uri=uri, observers=[Outage()])
        assert time.monotonic() - lost_at[0] < 30
        dataset = tmp_path / "datasets" / "lost"
        assert list(dataset.glob("v*")) == []
        assert list(dataset.glob(".staging/*/shards/*/_DONE"))

        servers.append(_mlflow_server(tmp_path, port))
        heard = _Heard()
        result = run_dataset(path, LocalRunner(), tracking_uri=uri, observers=[heard])
        assert result.published.version == 1
        assert heard.resumes[0].shards_done == heard.resumes[0].shards
        _no_leftovers(tmp_path / "datasets", "lost", uri)
    finally:
        _stop(servers[-1])


@pytest.mark.slow
def test_a_killed_flow_run_is_marked_crashed_by_the_run_that_resumes_it(
    prefect_api, tiny_model, tmp_path, reference_digest
):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    from synthset.flows.generate import run_flow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = write_manifest(tmp_path, _text("killed", tiny_model))
    args = ["run", str(path), "--runner", "prefect", "--tracking-uri", uri, "-q"]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    env["SYNTHSET_DATASETS"] = str(tmp_path / "datasets")
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, "generation", *args], env=env, capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL

    result = run_flow(str(path), tracking_uri=uri)

    assert result["digest"] == reference_digest
    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs() if r.name == "killed"]
    states = sorted(r.state.type.value for r in runs)
    assert states == ["COMPLETED", "CRASHED"]
    crashed = next(r for r in runs if r.state.type.value == "CRASHED")
    assert result["flow_run_id"] in crashed.state.message
