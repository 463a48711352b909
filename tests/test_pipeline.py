"""`run_dataset` as a library call: no Prefect, the same version as the Prefect flow."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from synthset.flows.generate import generate_dataset
from synthset.pipeline import RunObserver, run_dataset
from synthset.runners.local import LocalRunner
from tests.conftest import write_manifest


class _Heard(RunObserver):
    def __init__(self) -> None:
        self.progress_calls: list[tuple[int, int]] = []
        self.rounds: list[int] = []

    def progress(self, done, total, outcome) -> None:
        self.progress_calls.append((done, total))

    def curated(self, curation, round_) -> None:
        self.rounds.append(round_)


def _text(name: str, model: str) -> str:
    return f"""
dataset: {name}
generator: {{model: {model}, steps: 2, batch_size: 4, device: cpu}}
shard_size: 2
curation: {{keep_top_fraction: 0.5}}
items:
  - {{prompt: a red seven, count: 3, seed: 1}}
  - {{prompt: a blue three, count: 2, seed: 9}}
"""


def test_the_library_call_needs_no_prefect_and_matches_the_flow(
    prefect_api, tracking_uri, tiny_model, tmp_path
):
    path = write_manifest(tmp_path, _text("lib-run", tiny_model))
    heard = _Heard()

    result = run_dataset(
        path,
        LocalRunner(),
        datasets_root=tmp_path / "a",
        tracking_uri=tracking_uri,
        observers=[heard],
    )

    assert result.published.images == 5 and result.shortfall() == []
    assert result.topup_rounds >= 1 and heard.rounds == list(range(result.topup_rounds + 1))
    done = [d for d, _ in heard.progress_calls]
    assert done == sorted(done) and heard.progress_calls[-1][0] == result.generated
    assert len({o.model_loads for o in result.outcomes}) == 1
    meta = pd.read_parquet(result.published.path / "metadata.parquet")
    assert meta.groupby("item_index").size().to_dict() == {0: 3, 1: 2}
    run = MlflowClient(tracking_uri).get_run(result.mlflow_run_id)
    assert run.data.tags["synthset.digest"] == result.published.digest
    assert run.data.metrics["topup_rounds"] == result.topup_rounds

    flow = generate_dataset(str(path), datasets_root=str(tmp_path / "b"), tracking_uri=tracking_uri)

    assert flow["digest"] == result.published.digest
    assert flow["version"] == result.published.version + 1
    assert Path(flow["path"]).parent == tmp_path / "b" / "lib-run"
