"""`run_dataset` as a library call: no Prefect, the same version as the Prefect flow."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from synthset.flows.generate import generate_dataset
from synthset.pipeline import RunObserver, ShortfallError, run_dataset
from synthset.runners.local import LocalRunner
from synthset.storage.versioning import list_versions_or_none
from tests.conftest import write_manifest


class _Heard(RunObserver):
    def __init__(self) -> None:
        self.progress_calls: list[tuple[int, int]] = []
        self.rounds: list[int] = []

    def progress(self, done, total) -> None:
        self.progress_calls.append((done, total))

    def curated(self, curation, round_) -> None:
        self.rounds.append(round_)


def _text(name: str, model: str) -> str:
    return f"""
dataset: {name}
generator: {{model: {model}, steps: 2, batch_size: 4, device: cpu}}
shard_size: 2
curation: {{keep_top_fraction: 0.5, scorers: [{{kind: colourfulness}}]}}
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
    assert meta["colourfulness"].notna().all()
    run = MlflowClient(tracking_uri).get_run(result.mlflow_run_id)
    assert run.data.tags["synthset.digest"] == result.published.digest
    assert run.data.metrics["topup_rounds"] == result.topup_rounds

    flow = generate_dataset(str(path), datasets_root=str(tmp_path / "b"), tracking_uri=tracking_uri)

    assert flow["digest"] == result.published.digest
    assert flow["unchanged"] and flow["version"] == result.published.version
    assert not list((tmp_path / "b" / "lib-run").glob("v*"))


class _Warnings(RunObserver):
    def __init__(self) -> None:
        self.skipped: list[str] = []

    def prior_skipped(self, reason: str) -> None:
        self.skipped.append(reason)


def _seeds(name: str, model: str, first: int, count: int, prompt: str = "a red seven") -> str:
    return f"""
dataset: {name}
generator: {{model: {model}, steps: 2, device: cpu}}
curation: {{attempt_budget: 1}}
items: [{{prompt: "{prompt}", count: {count}, seed: {first}}}]
"""


def test_a_fresh_datasets_folder_dedups_against_the_registry(tracking_uri, tiny_model, tmp_path):
    """The second manifest's prompt has a trailing space: another sample id, the same pixels
    as v1's seed 2, so an exact duplicate of an image this folder has never held."""
    first = run_dataset(
        write_manifest(tmp_path, _seeds("lib-history", tiny_model, 1, 2), "one.yaml"),
        LocalRunner(),
        datasets_root=tmp_path / "machine-a",
        tracking_uri=tracking_uri,
    )
    old = pd.read_parquet(first.published.path / "metadata.parquet").set_index("seed")
    second = write_manifest(
        tmp_path, _seeds("lib-history", tiny_model, 2, 1, "a red seven "), "two.yaml"
    )

    again = run_dataset(
        second, LocalRunner(), datasets_root=tmp_path / "machine-b", tracking_uri=tracking_uri
    )

    rows = again.curation.rows
    assert again.curation.prior_versions == [1] and again.published.images == 0
    assert rows["dup_of"].tolist() == [old.loc[2, "sample_id"]]
    assert rows["dup_version"].tolist() == [1] and rows["dup_tier"].tolist() == ["exact"]
    assert not (tmp_path / "machine-b" / "lib-history" / "v1").exists()

    run = MlflowClient(tracking_uri).get_run(first.mlflow_run_id)
    shutil.rmtree(Path(run.info.artifact_uri.removeprefix("file://")))
    shutil.rmtree(Path(os.environ["SYNTHSET_CACHE"]) / "history" / first.mlflow_run_id)
    heard = _Warnings()

    blind = run_dataset(
        second,
        LocalRunner(),
        datasets_root=tmp_path / "machine-c",
        tracking_uri=tracking_uri,
        observers=[heard],
    )

    assert 1 not in blind.curation.prior_versions and blind.published.images == 1
    unreadable = [w for w in heard.skipped if w.startswith("v1: cannot be read from the registry")]
    assert len(unreadable) == 1 and unreadable[0] in blind.curation.prior_skipped
    card = (blind.published.path / "README.md").read_text()
    assert "**not deduplicated against** v1: cannot be read from the registry" in card


def test_fail_on_shortfall_fails_the_run_and_publishes_nothing(tracking_uri, tiny_model, tmp_path):
    text = f"""
dataset: lib-short
generator: {{model: {tiny_model}, steps: 2, device: cpu}}
curation: {{min_clip_score: 100, attempt_budget: 1}}
items: [{{prompt: a red seven, count: 2, seed: 1}}]
"""
    path = write_manifest(tmp_path, text)

    with pytest.raises(ShortfallError, match="1 items short of their count \\(2 images\\)"):
        run_dataset(path, LocalRunner(), tracking_uri=tracking_uri, fail_on_shortfall=True)

    assert not list((tmp_path / "datasets" / "lib-short").glob("v*"))
    assert list_versions_or_none("lib-short", tracking_uri) == []


def test_progress_moves_per_batch_and_counts_top_ups(tiny_model, tmp_path, tracking_uri):
    text = _text("per-batch", tiny_model).replace("shard_size: 2", "shard_size: 4")
    text = text.replace("batch_size: 4", "batch_size: 1")
    heard = _Heard()

    result = run_dataset(
        write_manifest(tmp_path, text), LocalRunner(), tracking_uri=tracking_uri, observers=[heard]
    )

    first_total = heard.progress_calls[0][1]
    assert first_total == 5 and result.topup_rounds >= 1
    firsts = [d for d, t in heard.progress_calls if t == first_total]
    assert firsts[:5] == [1, 2, 3, 4, 4]
    assert heard.progress_calls[-1] == (result.generated, result.generated) != (5, 5)
