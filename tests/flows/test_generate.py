"""The generate_dataset flow end to end, against a real Prefect API and a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)

from synthset.flows.generate import generate_dataset
from synthset.generators.shard import generate_shard
from synthset.manifest import load_manifest
from synthset.plan import make_plan
from synthset.storage.digest import version_digest
from tests.conftest import write_manifest

pytestmark = pytest.mark.slow


def _manifest(folder: Path, name: str, model: str) -> Path:
    return write_manifest(
        folder,
        f"""
dataset: {name}
generator: {{model: {model}, steps: 2, batch_size: 4, scheduler: euler}}
shard_size: 5
items:
  - {{prompt: a red seven, count: 6, seed: 1, tags: [seven], metadata: {{digit: 7}}}}
  - {{prompt: a blue three, count: 3, seed: 9}}
""",
    )


def test_flow_publishes_and_versions(prefect_api, tracking_uri, tiny_model, tmp_path):
    result = generate_dataset(
        str(_manifest(tmp_path, "flow-e2e", tiny_model)), tracking_uri=tracking_uri
    )

    assert (result["name"], result["version"], result["images"]) == ("flow-e2e", 1, 9)
    folder = Path(result["path"])
    assert folder == tmp_path / "datasets" / "flow-e2e" / "v1"
    assert version_digest(folder) == result["digest"]
    meta = pd.read_parquet(folder / "metadata.parquet")
    assert sorted(meta["prompt"].value_counts().items()) == [
        ("a blue three", 3),
        ("a red seven", 6),
    ]
    assert not (tmp_path / "datasets" / "flow-e2e" / ".staging").exists()

    run = MlflowClient(tracking_uri).get_run(result["mlflow_run_id"])
    assert run.data.tags["synthset.version"] == "1"
    assert run.data.tags["synthset.digest"] == result["digest"]
    assert run.data.metrics["images"] == 9
    assert run.data.metrics["images_per_s"] > 0
    assert run.data.params["generator.scheduler"] == "euler"

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(result["flow_run_id"])
        assert flow_run.state.is_completed()
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
        )
        shard_runs = [t for t in tasks if t.name.startswith("shard-")]
        assert len(shard_runs) == 2 and all(t.state.is_completed() for t in shard_runs)
        keys = ["flow-e2e-progress", "flow-e2e-shards"]
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
        by_type = {a.type: a for a in artifacts if a.flow_run_id == flow_run.id}
        assert by_type["progress"].data == 100.0
        assert "shard_id" in str(by_type["table"].data)


def test_rerun_skips_done_shards_and_versions_again(
    prefect_api, tracking_uri, tiny_model, tmp_path
):
    path = _manifest(tmp_path, "flow-resume", tiny_model)
    plan = make_plan(load_manifest(path))
    first = plan.shards[0]
    generate_shard(plan.manifest.generator, first)
    staged = {p.name: p.stat().st_ino for p in (first.folder / "images").iterdir()}

    result = generate_dataset(str(path), tracking_uri=tracking_uri)

    run = MlflowClient(tracking_uri).get_run(result["mlflow_run_id"])
    assert run.data.metrics["shards_skipped"] == 1
    images = Path(result["path"]) / "images"
    assert {name: (images / name).stat().st_ino for name in staged} == staged

    again = generate_dataset(str(path), tracking_uri=tracking_uri)
    assert again["version"] == 2
    assert again["digest"] == result["digest"]
