"""The generate_dataset flow end to end, against a real Prefect API and a real MLflow store."""

from __future__ import annotations

import json
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

from synthset.curation.clip import load_scorer
from synthset.flows.generate import generate_dataset
from synthset.generators.shard import generate_shard
from synthset.manifest import load_manifest
from synthset.plan import make_plan
from synthset.storage.formats import version_digest
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


def _artifacts(client, flow_run_id, keys):
    found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    return {a.key: a for a in found if a.flow_run_id == flow_run_id}


def test_flow_publishes_and_versions(prefect_api, tracking_uri, tiny_model, tmp_path):
    loads = load_scorer.cache_info()
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
    metrics = run.data.metrics
    assert metrics["generated"] == metrics["kept"] + metrics["rejected"]
    for name in ("kept_fraction", "duplicate_rate", "mean_clip_score", "diversity.vendi_mean"):
        assert name in metrics
    assert run.data.params["curation.clip.model"] == "synthset-tiny-clip"
    assert run.data.params["curation.dedup.exact"] == "True"
    history = MlflowClient(tracking_uri).get_metric_history(result["mlflow_run_id"], "item.kept")
    assert sorted((m.step, m.value) for m in history) == [(0, 6.0), (1, 3.0)]
    assert (folder / "index" / "semantic.faiss").is_file() and (folder / "curation.json").is_file()
    assert load_scorer.cache_info().misses - loads.misses <= 1

    assert run.data.tags["prefect.flow_run_id"] == result["flow_run_id"]
    assert "synthset.parent_version" not in run.data.tags
    artifacts = {a.path for a in MlflowClient(tracking_uri).list_artifacts(result["mlflow_run_id"])}
    assert "sample_grid.png" in artifacts
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(result["flow_run_id"])
        assert flow_run.state.is_completed()
        assert flow_run.name == "flow-e2e"
        assert {"dataset:flow-e2e", "version:v1"} <= set(flow_run.tags)
        (card,) = _artifacts(client, flow_run.id, ["flow-e2e-card"]).values()
        assert result["mlflow_run_id"] in card.data and "## Curation" in card.data
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
        )
        shard_runs = [t for t in tasks if t.name.startswith("shard-")]
        assert len(shard_runs) == 2 and all(t.state.is_completed() for t in shard_runs)
        first_shard = min(t.start_time for t in shard_runs).timestamp() * 1000
        assert run.info.start_time <= first_shard, "the MLflow run covers the whole job"
        assert [t.name for t in tasks if t.name.startswith("curate-")] == ["curate-0"]
        tables = _artifacts(client, flow_run.id, ["flow-e2e-rejections", "flow-e2e-items"])
        assert json.loads(tables["flow-e2e-rejections"].data) == [{"reason": "kept", "images": 9}]
        items = json.loads(tables["flow-e2e-items"].data)
        assert [(i["item"], i["kept"], i["shortfall"]) for i in items] == [(0, 6, 0), (1, 3, 0)]
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
    assert (again["version"], again["unchanged"]) == (1, True)
    assert again["mlflow_run_id"] == result["mlflow_run_id"]
    assert not (tmp_path / "datasets" / "flow-resume" / "v2").exists()
    assert not (tmp_path / "datasets" / "flow-resume" / ".staging").exists()

    forced = generate_dataset(str(path), tracking_uri=tracking_uri, force=True)
    assert (forced["version"], forced["unchanged"]) == (2, False)
    assert forced["digest"] == result["digest"]
    tags = MlflowClient(tracking_uri).get_run(forced["mlflow_run_id"]).data.tags
    assert tags["synthset.parent_version"] == "1"
    assert again["digest"] == result["digest"]


def test_items_are_topped_up_to_their_count(prefect_api, tracking_uri, tiny_model, tmp_path):
    path = write_manifest(
        tmp_path,
        f"""
dataset: flow-topup
generator: {{model: {tiny_model}, steps: 2, batch_size: 4}}
shard_size: 4
curation: {{keep_top_fraction: 0.5}}
items:
  - {{prompt: a red seven, count: 3, seed: 1}}
  - {{prompt: a blue three, count: 2, seed: 90}}
""",
    )

    result = generate_dataset(str(path), tracking_uri=tracking_uri)

    assert result["images"] == 5 and result["shortfall"] == []
    assert result["topup_rounds"] >= 1 and result["generated"] > 5
    assert result["generated"] == result["images"] + result["rejected"]
    meta = pd.read_parquet(Path(result["path"]) / "metadata.parquet")
    assert meta.groupby("item_index").size().to_dict() == {0: 3, 1: 2}
    assert meta["index"].max() >= 3
    rejected = pd.read_parquet(Path(result["path"]) / "rejected.parquet")
    assert set(rejected["reject_reason"]) <= {"not_in_top_fraction", "surplus"}
    metrics = MlflowClient(tracking_uri).get_run(result["mlflow_run_id"]).data.metrics
    assert metrics["topup_images"] == result["generated"] - 5
    assert metrics["shortfall"] == 0


def test_a_shortfall_is_reported_per_item_when_the_budget_is_spent(
    prefect_api, tracking_uri, tiny_model, tmp_path
):
    path = write_manifest(
        tmp_path,
        f"""
dataset: flow-short
generator: {{model: {tiny_model}, steps: 2, batch_size: 4}}
curation: {{min_clip_score: 100, attempt_budget: 2}}
items:
  - {{prompt: a red seven, count: 2, seed: 1}}
  - {{prompt: a blue three, count: 1, seed: 90}}
""",
    )

    result = generate_dataset(str(path), tracking_uri=tracking_uri)

    assert result["images"] == 0 and result["generated"] == 6
    assert result["rejected_by_reason"] == {"clip_below_threshold": 6}
    fields = ("item", "kept", "attempted", "budget", "shortfall")
    short = [tuple(r[f] for f in fields) for r in result["shortfall"]]
    assert short == [(0, 0, 4, 4, 2), (1, 0, 2, 2, 1)]
    assert result["shortfall"][0]["prompt"] == "a red seven"
    metrics = MlflowClient(tracking_uri).get_run(result["mlflow_run_id"]).data.metrics
    assert (metrics["shortfall"], metrics["items_short"]) == (3, 2)
    card = (Path(result["path"]) / "README.md").read_text()
    assert "| 0 | a red seven | 2 | 0 | 4 |" in card


def test_curation_can_be_switched_off(prefect_api, tracking_uri, tiny_model, tmp_path):
    path = write_manifest(
        tmp_path,
        f"""
dataset: flow-raw
generator: {{model: {tiny_model}, steps: 2}}
curation: {{enabled: false}}
items: [{{prompt: a red seven, count: 2, seed: 1}}]
""",
    )

    result = generate_dataset(str(path), tracking_uri=tracking_uri)

    folder = Path(result["path"])
    assert (result["images"], result["rejected_by_reason"], result["shortfall"]) == (2, {}, [])
    assert not (folder / "index").exists() and not (folder / "curation.json").exists()
    assert "clip_score" not in pd.read_parquet(folder / "metadata.parquet").columns
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[result["flow_run_id"]]))
        )
    assert sorted(t.name.split("-")[0] for t in tasks) == ["publish", "quality", "record", "shard"]
