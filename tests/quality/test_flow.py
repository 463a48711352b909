"""In the Prefect flow the report is a step of its own and its headline a markdown artifact."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)

from synthset.flows.generate import generate_dataset
from tests.conftest import write_manifest

pytestmark = pytest.mark.slow


def test_the_flow_runs_the_report_step_and_shows_its_headline(
    prefect_api, tracking_uri, tiny_model, tmp_path
):
    text = f"""
dataset: flow-quality
generator: {{model: {tiny_model}, steps: 2, batch_size: 4, device: cpu}}
shard_size: 4
report: {{reference: synthset/digits}}
items:
  - {{prompt: a red seven, count: 3, seed: 1}}
"""
    result = generate_dataset(str(write_manifest(tmp_path, text)), tracking_uri=tracking_uri)
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[result["flow_run_id"]]))
        )
        started = {t.name: t.start_time for t in tasks}
        assert started["publish-version"] < started["quality-report"] < started["record-version"]
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["flow-quality-quality"]))
        )
        (artifact,) = [a for a in found if str(a.flow_run_id) == result["flow_run_id"]]
    assert artifact.type == "markdown"
    assert "flow-quality v1: quality" in artifact.data and result["mlflow_run_id"] in artifact.data
    assert "Fréchet distance to the reference" in artifact.data
