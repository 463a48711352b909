"""Pulling a version from the MLflow store: verified by digest, handed to pandas/torch/HF."""

import io
import shutil
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow import MlflowClient
from torch.utils.data import DataLoader

from synthset.errors import DigestMismatch, SynthsetError
from synthset.storage.pull import ImageDataset, pull
from synthset.storage.versioning import record_version, set_alias
from tests.conftest import generate_and_publish


def new_version(name, model, uri, seed=1):
    """Generate, publish and record a version of 3 images (2 of a red seven, 1 of a blue one)."""
    text = (
        f"dataset: {name}\n"
        f"generator: {{model: {model}, steps: 2, device: cpu}}\n"
        f"items: [{{prompt: a red seven, count: 2, seed: {seed}, tags: [red, digit]}},\n"
        f"        {{prompt: a blue one, seed: {seed}}}]\n"
    )
    manifest, plan, published = generate_and_publish(text)
    record_version(published, manifest, plan.requests_frame(), {"images": 3}, uri)
    return published


def artifact_folder(uri, name, version=1) -> Path:
    """The version's `dataset/` folder inside the local MLflow artifact store."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"synthset/{name}")
    (run,) = client.search_runs(
        [experiment.experiment_id], f"tags.`synthset.version` = '{version}'"
    )
    return Path(run.info.artifact_uri.removeprefix("file://")) / "dataset"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHSET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_pull_to_pandas(tiny_model, tracking_uri, cache):
    published = new_version("pull-pandas", tiny_model, tracking_uri)

    ds = pull("pull-pandas", tracking_uri=tracking_uri)

    assert (ds.name, ds.version, ds.digest) == ("pull-pandas", 1, published.digest)
    assert ds.path == cache / "datasets" / "pull-pandas" / "v1"
    frame = ds.to_pandas()
    assert list(frame.columns[:3]) == ["sample_id", "file_name", "image_path"]
    assert list(frame["prompt"]) == ["a red seven", "a red seven", "a blue one"]
    assert all(Path(p).is_file() and Path(p).is_relative_to(ds.path) for p in frame["image_path"])
    assert (ds.path / "README.md").is_file()
    assert [p.name for p in ds.path.parent.iterdir()] == ["v1"]


def test_pull_to_torch(tiny_model, tracking_uri, cache):
    new_version("pull-torch", tiny_model, tracking_uri)

    dataset = pull("pull-torch", 1, tracking_uri=tracking_uri).to_torch()

    assert len(dataset) == 3
    sample = dataset[0]
    image = sample["image"]
    assert image.shape == (3, 32, 32)
    assert image.dtype == torch.float32
    assert 0.0 <= image.min() < image.max() <= 1.0
    assert (sample["prompt"], sample["tags"]) == ("a red seven", ["red", "digit"])

    batches = list(DataLoader(dataset, batch_size=2, collate_fn=ImageDataset.collate))
    assert [b["image"].shape for b in batches] == [(2, 3, 32, 32), (1, 3, 32, 32)]
    assert batches[0]["tags"] == [["red", "digit"], ["red", "digit"]]
    assert batches[1]["prompt"] == ["a blue one"]
    assert batches[1]["tags"] == [[]]


def test_pull_with_a_transform(tiny_model, tracking_uri, cache):
    new_version("pull-transform", tiny_model, tracking_uri)
    dataset = pull("pull-transform", tracking_uri=tracking_uri).to_torch(lambda im: im.size)
    assert dataset[2]["image"] == (32, 32)


def test_pull_to_hugging_face(tiny_model, tracking_uri, cache, tmp_path):
    new_version("pull-hf", tiny_model, tracking_uri)

    hf = pull("pull-hf", "latest", tracking_uri=tracking_uri, to=tmp_path / "out").to_hf()

    assert hf.num_rows == 3
    assert hf["prompt"] == ["a red seven", "a red seven", "a blue one"]
    assert hf[0]["image"].size == (32, 32)


def test_pull_by_version_and_alias_into_a_chosen_folder(tiny_model, tracking_uri, tmp_path):
    first = new_version("pull-refs", tiny_model, tracking_uri, seed=1)
    second = new_version("pull-refs", tiny_model, tracking_uri, seed=10)
    set_alias("pull-refs", 1, "production", tracking_uri)

    old = pull("pull-refs", "production", tracking_uri=tracking_uri, to=tmp_path / "prod")
    new = pull("pull-refs", tracking_uri=tracking_uri, to=tmp_path / "new")

    assert (old.version, old.digest, old.path) == (1, first.digest, tmp_path / "prod")
    assert (new.version, new.digest) == (2, second.digest)
    assert set(old.to_pandas()["sample_id"]).isdisjoint(new.to_pandas()["sample_id"])


def test_pull_into_an_empty_existing_folder(tiny_model, tracking_uri, tmp_path):
    new_version("pull-empty", tiny_model, tracking_uri)
    (tmp_path / "out").mkdir()
    ds = pull("pull-empty", tracking_uri=tracking_uri, to=tmp_path / "out")
    assert len(ds.to_pandas()) == 3


def test_a_verified_local_copy_is_reused(tiny_model, tracking_uri, tmp_path, cache):
    new_version("pull-reuse", tiny_model, tracking_uri)
    target = tmp_path / "out"
    first = pull("pull-reuse", tracking_uri=tracking_uri, to=target)
    cached = pull("pull-reuse", tracking_uri=tracking_uri)
    shutil.rmtree(artifact_folder(tracking_uri, "pull-reuse"))

    again = pull("pull-reuse", tracking_uri=tracking_uri, to=target)
    again_cached = pull("pull-reuse", tracking_uri=tracking_uri)

    assert (again.path, again.digest) == (first.path, first.digest)
    assert again_cached.path == cached.path
    assert len(again.to_pandas()) == len(again_cached.to_pandas()) == 3


def test_a_tampered_artifact_is_refused_and_nothing_is_kept(tiny_model, tracking_uri, tmp_path):
    new_version("pull-tampered", tiny_model, tracking_uri)
    (shard,) = (artifact_folder(tracking_uri, "pull-tampered") / "shards").iterdir()
    with tarfile.open(shard) as tar:
        members = [(m, bytearray(tar.extractfile(m).read())) for m in tar.getmembers()]
    members[0][1][-20] ^= 0xFF
    with tarfile.open(shard, "w") as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(bytes(data)))
    target = tmp_path / "out" / "ds"

    with pytest.raises(DigestMismatch, match="pull-tampered@v1: downloaded files hash to"):
        pull("pull-tampered", tracking_uri=tracking_uri, to=target)

    assert not target.exists()
    assert list((tmp_path / "out").rglob("*")) == []


def test_a_tampered_local_cache_is_downloaded_again(tiny_model, tracking_uri, cache):
    published = new_version("pull-cache-fix", tiny_model, tracking_uri)
    ds = pull("pull-cache-fix", tracking_uri=tracking_uri)
    image = next((ds.path / "images").iterdir())
    original = image.read_bytes()
    image.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))

    again = pull("pull-cache-fix", tracking_uri=tracking_uri)

    assert again.path == ds.path
    assert image.read_bytes() == original
    assert again.digest == published.digest


def test_a_label_edited_in_a_pulled_copy_fails_verification(tiny_model, tracking_uri, tmp_path):
    new_version("pull-label", tiny_model, tracking_uri)
    ds = pull("pull-label", tracking_uri=tracking_uri, to=tmp_path / "copy")
    meta = pd.read_parquet(ds.path / "metadata.parquet")
    meta.loc[0, "prompt"] = "a red eight"
    meta.to_parquet(ds.path / "metadata.parquet")

    with pytest.raises(SynthsetError, match="does not hold pull-label@v1"):
        pull("pull-label", tracking_uri=tracking_uri, to=tmp_path / "copy")


def test_pull_into_an_unrelated_non_empty_folder_is_an_error(tiny_model, tracking_uri, tmp_path):
    new_version("pull-occupied", tiny_model, tracking_uri)
    target = tmp_path / "occupied"
    target.mkdir()
    (target / "notes.txt").write_text("mine")

    with pytest.raises(SynthsetError, match="is not empty and does not hold pull-occupied@v1"):
        pull("pull-occupied", tracking_uri=tracking_uri, to=target)

    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert (target / "notes.txt").read_text() == "mine"


def test_a_curated_version_brings_its_clip_embeddings(tiny_model, tracking_uri, cache):
    from synthset.curation.clip import scorer_for
    from synthset.curation.curate import curate, load_pool
    from synthset.curation.score import score_shard
    from synthset.generators.shard import generate_shard
    from synthset.manifest import load_manifest
    from synthset.plan import make_plan
    from synthset.storage.publish import publish
    from tests.conftest import write_manifest

    text = (
        f"dataset: pull-emb\ngenerator: {{model: {tiny_model}, steps: 2, device: cpu}}\n"
        "items: [{prompt: a red seven, count: 3, seed: 4}]\n"
    )
    manifest = load_manifest(write_manifest(Path.cwd(), text))
    plan = make_plan(manifest)
    scorer = scorer_for(manifest.curation.clip)
    for shard in plan.shards:
        generate_shard(manifest.generator, shard)
        score_shard(shard.folder, scorer, manifest.curation)
    folders = [s.folder for s in plan.shards]
    curation = curate(load_pool(folders), manifest.curation, {0: 3}, {0: "a red seven"})
    published = publish(plan.layout, plan.digest, folders, manifest, curation=curation)
    record_version(published, manifest, plan.requests_frame(), {"images": 3}, tracking_uri)

    ds = pull("pull-emb", tracking_uri=tracking_uri)

    embeddings = ds.embeddings()
    frame = ds.to_pandas()
    assert str(embeddings.dtype) == "float16"
    assert embeddings.shape == (len(frame), scorer.dim)
    kept = curation.rows.set_index("sample_id").index[curation.kept]
    expected = dict(zip(kept, curation.embeddings[curation.kept], strict=True))
    for sample_id, row in zip(frame["sample_id"], embeddings, strict=True):
        assert (row == expected[sample_id]).all()

    plain = new_version("pull-noemb", tiny_model, tracking_uri)
    with pytest.raises(SynthsetError, match="published without curation"):
        pull(plain.name, tracking_uri=tracking_uri).embeddings()
