"""Dataset versions as MLflow runs in a real SQLite tracking store: record, list, aliases."""

import tarfile
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from synthset.errors import DatasetNotFound, SynthsetError
from synthset.manifest import folder_identity, plan_digest
from synthset.storage.publish import PublishedVersion
from synthset.storage.versioning import (
    list_datasets,
    list_versions,
    record_version,
    resolve_version,
    set_alias,
    set_experiment_tag,
)
from tests.conftest import generate_and_publish


def new_published(name, model, seed=1, count=2):
    """Generate and publish one version; a different `seed` gives different images."""
    text = (
        f"dataset: {name}\n"
        f"generator: {{model: {model}, steps: 2, device: cpu}}\n"
        f"items: [{{prompt: a red seven, count: {count}, seed: {seed}}}]\n"
    )
    return generate_and_publish(text)


def record(manifest, plan, published, uri):
    metrics = {"images": published.images, "rejected": published.rejected, "seconds": 0.5}
    return record_version(published, manifest, plan.requests_frame(), metrics, uri)


def new_version(name, model, uri, seed=1, count=2):
    """Generate, publish and record one version."""
    manifest, plan, published = new_published(name, model, seed, count)
    return manifest, published, record(manifest, plan, published, uri)


def test_a_version_is_a_finished_run_with_tags_params_metrics_input_and_artifacts(
    tiny_model, tracking_uri, tmp_path
):
    manifest, published, run_id = new_version("ver-run", tiny_model, tracking_uri, count=3)
    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)

    assert run.info.status == "FINISHED"
    assert run.info.run_name == "ver-run-v1"
    tags = run.data.tags
    assert tags["synthset.dataset"] == "ver-run"
    assert tags["synthset.version"] == "1"
    assert tags["synthset.digest"] == published.digest
    params = run.data.params
    assert params["dataset"] == "ver-run"
    assert params["generator.model"] == Path(tiny_model).name
    assert params["generator.weights"] == folder_identity(Path(tiny_model))
    assert params["generator.steps"] == "2"
    assert params["images_requested"] == "3"
    assert params["plan"] == plan_digest(manifest)
    assert run.data.metrics == {"images": 3.0, "rejected": 0.0, "seconds": 0.5}

    (logged,) = run.inputs.dataset_inputs
    assert logged.dataset.name == "ver-run-manifest"
    assert logged.dataset.digest == plan_digest(manifest)
    assert [(t.key, t.value) for t in logged.tags] == [("mlflow.data.context", "manifest")]
    assert '"num_rows": 3' in logged.dataset.profile

    top = {a.path for a in client.list_artifacts(run_id, "dataset")}
    assert top == {
        "dataset/README.md",
        "dataset/shards",
        "dataset/manifest.yaml",
        "dataset/metadata.parquet",
        "dataset/rejected.parquet",
    }
    (shard,) = client.list_artifacts(run_id, "dataset/shards")
    assert shard.path == "dataset/shards/images-00000.tar"
    with tarfile.open(client.download_artifacts(run_id, shard.path, str(tmp_path))) as tar:
        assert len(tar.getnames()) == 3 and all(n.startswith("images/") for n in tar.getnames())
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "synthset/ver-run"


def test_versions_are_listed_oldest_first_and_latest_moves(tiny_model, tracking_uri):
    _, first, run1 = new_version("ver-latest", tiny_model, tracking_uri, seed=1)
    assert [(v.version, v.aliases) for v in list_versions("ver-latest", tracking_uri)] == [
        (1, ("latest",))
    ]

    _, second, run2 = new_version("ver-latest", tiny_model, tracking_uri, seed=2)

    v1, v2 = list_versions("ver-latest", tracking_uri)
    assert (v1.version, v1.run_id, v1.digest, v1.aliases) == (1, run1, first.digest, ())
    assert (v2.version, v2.run_id, v2.digest, v2.aliases) == (2, run2, second.digest, ("latest",))
    assert v1.digest != v2.digest
    assert v1.images == v2.images == 2
    assert isinstance(v2.created, pd.Timestamp)
    assert v1.created <= v2.created
    assert resolve_version("ver-latest", None, tracking_uri).version == 2
    assert resolve_version("ver-latest", "latest", tracking_uri).version == 2


def test_latest_stays_on_the_highest_version_when_runs_finish_out_of_order(
    tiny_model, tracking_uri
):
    """Two overlapping runs: v2 is recorded first, v1 (published earlier) finishes last."""
    first = new_published("ver-race", tiny_model, seed=1)
    second = new_published("ver-race", tiny_model, seed=2)
    assert (first[2].version, second[2].version) == (1, 2)

    record(*second, tracking_uri)
    record(*first, tracking_uri)

    assert resolve_version("ver-race", None, tracking_uri).version == 2
    assert [v.aliases for v in list_versions("ver-race", tracking_uri)] == [(), ("latest",)]


def test_resolve_by_number_v_prefix_and_alias(tiny_model, tracking_uri):
    for seed in (1, 2, 3):
        new_version("ver-resolve", tiny_model, tracking_uri, seed=seed)
    set_alias("ver-resolve", 2, "production", tracking_uri)

    assert resolve_version("ver-resolve", 3, tracking_uri).version == 3
    assert resolve_version("ver-resolve", "3", tracking_uri).version == 3
    assert resolve_version("ver-resolve", "v1", tracking_uri).version == 1
    assert resolve_version("ver-resolve", "production", tracking_uri).version == 2
    assert resolve_version("ver-resolve", None, tracking_uri).version == 3


def test_set_alias_sets_and_moves_an_alias(tiny_model, tracking_uri):
    new_version("ver-alias", tiny_model, tracking_uri, seed=1)
    new_version("ver-alias", tiny_model, tracking_uri, seed=2)

    info = set_alias("ver-alias", "v1", "production", tracking_uri)
    assert (info.version, info.aliases) == (1, ("production",))
    set_alias("ver-alias", 2, "staging-2", tracking_uri)

    moved = set_alias("ver-alias", 2, "production", tracking_uri)

    assert moved.aliases == ("latest", "production", "staging-2")
    assert [v.aliases for v in list_versions("ver-alias", tracking_uri)] == [
        (),
        ("latest", "production", "staging-2"),
    ]
    assert resolve_version("ver-alias", "production", tracking_uri).version == 2


def test_set_alias_refuses_latest_and_bad_names(tiny_model, tracking_uri):
    new_version("ver-badalias", tiny_model, tracking_uri)

    for alias in ["latest", "Production", "1st", "with space", "", "a/b", "x" * 65]:
        with pytest.raises(SynthsetError, match="is not allowed"):
            set_alias("ver-badalias", 1, alias, tracking_uri)

    assert list_versions("ver-badalias", tracking_uri)[0].aliases == ("latest",)


def test_set_alias_on_a_missing_version_is_not_found(tiny_model, tracking_uri):
    new_version("ver-alias-missing", tiny_model, tracking_uri)
    with pytest.raises(DatasetNotFound, match="ver-alias-missing@7 does not exist; versions: v1"):
        set_alias("ver-alias-missing", 7, "production", tracking_uri)


def test_unknown_dataset_version_or_alias_is_not_found(tiny_model, tracking_uri):
    new_version("ver-missing", tiny_model, tracking_uri)

    with pytest.raises(DatasetNotFound, match="no dataset named 'ver-nothing'"):
        list_versions("ver-nothing", tracking_uri)
    with pytest.raises(DatasetNotFound, match="no dataset named 'ver-nothing'"):
        resolve_version("ver-nothing", None, tracking_uri)
    with pytest.raises(DatasetNotFound, match="ver-missing@9 does not exist; versions: v1"):
        resolve_version("ver-missing", 9, tracking_uri)
    with pytest.raises(DatasetNotFound, match="ver-missing@v2 does not exist"):
        resolve_version("ver-missing", "v2", tracking_uri)
    with pytest.raises(DatasetNotFound, match="ver-missing@production does not exist"):
        resolve_version("ver-missing", "production", tracking_uri)


def test_list_datasets_names_every_recorded_dataset(tiny_model, tracking_uri):
    new_version("ver-list-a", tiny_model, tracking_uri)
    new_version("ver-list-b", tiny_model, tracking_uri)

    names = list_datasets(tracking_uri)

    assert {"ver-list-a", "ver-list-b"} <= set(names)
    assert names == sorted(names)
    assert not any(n.startswith("synthset/") for n in names)


def test_a_run_that_failed_half_way_is_not_a_version(tiny_model, tracking_uri):
    from mlflow.exceptions import MlflowException

    manifest, published, _ = new_version("ver-failed", tiny_model, tracking_uri)
    again = PublishedVersion("ver-failed", 2, published.path, published.digest, 2, 0)

    with pytest.raises(MlflowException, match="bad\\?"):
        record_version(
            again, manifest, pd.DataFrame({"sample_id": ["a"]}), {"bad?": 1.0}, tracking_uri
        )

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("synthset/ver-failed")
    statuses = sorted(r.info.status for r in client.search_runs([experiment.experiment_id]))
    assert statuses == ["FAILED", "FINISHED"]
    assert [(v.version, v.aliases) for v in list_versions("ver-failed", tracking_uri)] == [
        (1, ("latest",))
    ]


def test_tags_written_at_once_by_many_writers_all_land(tmp_path):
    """Real SQLite store, writers racing on tags that do not exist yet (the MLflow store
    reads, then inserts: one of two racing writers hits the unique key and tries again)."""
    from concurrent.futures import ThreadPoolExecutor

    client = MlflowClient(f"sqlite:///{tmp_path / 'race.db'}")
    exp = client.create_experiment("race")
    writes = [(f"key{k}", f"v{w}") for k in range(15) for w in range(4)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: set_experiment_tag(client, exp, *kv), writes))
    tags = client.get_experiment(exp).tags
    assert all(tags[f"key{k}"] in {"v0", "v1", "v2", "v3"} for k in range(15))


class _Conflicts:
    """A real client whose first tag writes fail as a racing writer's would."""

    def __init__(self, client, message, times):
        self.client, self.message, self.times = client, message, times

    def set_experiment_tag(self, *args):
        if self.times:
            self.times -= 1
            raise RuntimeError(self.message)
        self.client.set_experiment_tag(*args)


def test_a_tag_write_is_tried_again_only_after_a_unique_key_conflict(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'tags.db'}")
    exp = client.create_experiment("tags")
    race = "(sqlite3.IntegrityError) UNIQUE constraint failed: experiment_tags.key"
    set_experiment_tag(_Conflicts(client, race, 1), exp, "alias", "3")
    assert client.get_experiment(exp).tags["alias"] == "3"
    with pytest.raises(RuntimeError, match="readonly"):
        set_experiment_tag(
            _Conflicts(client, "attempt to write a readonly database", 1), exp, "a", "1"
        )
    with pytest.raises(RuntimeError, match="UNIQUE"):
        set_experiment_tag(_Conflicts(client, race, 5), exp, "b", "1")
