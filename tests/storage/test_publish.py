"""Shards in staging, assembled and published as an atomic, self-describing version folder."""

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from synthset.generators.pipeline import ImageGenerator
from synthset.generators.shard import ShardFailed, generate_shard
from synthset.manifest import load_manifest
from synthset.plan import make_plan
from synthset.storage.digest import content_digest
from synthset.storage.formats import version_digest
from synthset.storage.public import public
from synthset.storage.publish import pending_version, publish, release_staging
from tests.conftest import write_manifest

COLUMNS = [
    "sample_id",
    "file_name",
    "prompt",
    "negative_prompt",
    "seed",
    "model",
    "scheduler",
    "steps",
    "guidance",
    "width",
    "height",
    "tags",
    "source",
    "created_at",
]

ITEMS = [
    {"prompt": "a red seven", "count": 3, "tags": ["red", "digit"]},
    {"prompt": "a blue one", "seed": 9, "metadata": {"source": "test"}},
]


def plan_for(name, model, items=ITEMS, shard_size=2, **generator):
    """Write a manifest for the tiny model into the test's folder, load it and plan it."""
    settings = {"model": model, "steps": 2, "device": "cpu", "scheduler": "euler", **generator}
    text = yaml.safe_dump(
        {"dataset": name, "generator": settings, "shard_size": shard_size, "items": items}
    )
    manifest = load_manifest(write_manifest(Path.cwd(), text))
    return manifest, make_plan(manifest)


def load_imagefolder(folder):
    """The folder through Hugging Face's `imagefolder` builder, as users load it."""
    import datasets  # here, not at the top: ruff takes an ignored ./datasets for first-party

    return datasets.load_dataset("imagefolder", data_dir=str(folder), split="train")


def generate_and_publish(manifest, plan):
    reports = [generate_shard(manifest.generator, shard) for shard in plan.shards]
    published = publish(plan.layout, plan.digest, [s.folder for s in plan.shards], manifest)
    release_staging(plan.layout, plan.digest)
    return reports, published


def test_a_published_version_is_a_complete_folder(tiny_model):
    manifest, plan = plan_for("pub-layout", tiny_model)
    _, published = generate_and_publish(manifest, plan)

    assert published.name == "pub-layout"
    assert (published.version, published.images, published.rejected) == (1, 4, 0)
    folder = published.path
    assert folder == plan.layout.version_dir(1)
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "images",
        "manifest.yaml",
        "metadata.parquet",
        "rejected.parquet",
    ]
    meta = pd.read_parquet(folder / "metadata.parquet")
    assert list(meta.columns[:2]) == ["sample_id", "file_name"]
    assert set(COLUMNS) <= set(meta.columns)
    assert list(meta["sample_id"]) == [r.sample_id for r in plan.requests]
    assert list(meta["file_name"]) == [f"images/{r.sample_id}.png" for r in plan.requests]
    assert sorted(p.name for p in (folder / "images").iterdir()) == sorted(
        Path(f).name for f in meta["file_name"]
    )
    first = meta.iloc[0]
    assert (first["prompt"], list(first["tags"])) == ("a red seven", ["red", "digit"])
    assert (first["model"], first["scheduler"], first["steps"]) == (
        Path(tiny_model).name,
        "euler",
        2,
    )
    assert (first["width"], first["height"]) == (32, 32)
    assert "metadata" not in meta and list(meta["source"].isna()) == [True] * 3 + [False]
    assert meta.iloc[3]["source"] == "test"
    assert meta.iloc[3]["seed"] == 9
    with Image.open(folder / first["file_name"]) as image:
        assert image.size == (32, 32)

    rejected = pd.read_parquet(folder / "rejected.parquet")
    assert len(rejected) == 0
    assert {"sample_id", "reject_reason", "detail"} <= set(rejected.columns)

    stored = yaml.safe_load((folder / "manifest.yaml").read_text())
    assert stored == public(manifest.model_dump(mode="json"))
    assert stored["generator"]["model"] == Path(manifest.generator.model).name
    card = (folder / "README.md").read_text()
    assert card.startswith("# pub-layout v1\n")
    assert published.digest in card
    assert "| a red seven | 3 |" in card
    assert 'synthset.pull("pub-layout", version=1)' in card


def test_staging_stays_until_the_version_is_recorded_then_is_released(tiny_model):
    manifest, plan = plan_for("pub-staging", tiny_model)
    assert len(plan.shards) == 2
    for shard in plan.shards:
        generate_shard(manifest.generator, shard)
    assert all(s.done for s in plan.shards)

    publish(plan.layout, plan.digest, [s.folder for s in plan.shards], manifest)

    staging = plan.layout.staging_dir(plan.digest)
    assert sorted(p.name for p in staging.iterdir()) == ["publishing.json", "shards"]
    assert pending_version(plan.layout, plan.digest) == (
        1,
        version_digest(staging.parent.parent / "v1"),
    )
    release_staging(plan.layout, plan.digest)
    assert [p.name for p in plan.layout.dataset_dir.iterdir()] == ["v1"]


def test_a_killed_publish_is_adopted_when_the_result_is_the_same_and_replaced_when_not(
    tiny_model,
):
    manifest, plan = plan_for("pub-adopt", tiny_model)
    folders = [s.folder for s in plan.shards]
    for shard in plan.shards:
        generate_shard(manifest.generator, shard)
    first = publish(plan.layout, plan.digest, folders, manifest)
    pending = pending_version(plan.layout, plan.digest)
    stamp = (first.path / "metadata.parquet").stat().st_ino

    again = publish(plan.layout, plan.digest, folders, manifest, pending=pending)

    assert (again.version, again.digest) == (1, first.digest)
    assert (again.path / "metadata.parquet").stat().st_ino == stamp
    assert plan.layout.versions() == [1]

    changed = (1, "sha256:" + "0" * 64)
    replaced = publish(plan.layout, plan.digest, folders, manifest, pending=changed)
    assert (replaced.version, replaced.digest) == (1, first.digest)
    assert (replaced.path / "metadata.parquet").stat().st_ino != stamp
    assert plan.layout.versions() == [1]


def test_a_version_loads_with_hugging_face_imagefolder(tiny_model):
    manifest, plan = plan_for("pub-hf", tiny_model)
    _, published = generate_and_publish(manifest, plan)

    ds = load_imagefolder(published.path)

    assert ds.num_rows == 4
    assert ds["prompt"] == ["a red seven"] * 3 + ["a blue one"]
    assert ds["sample_id"] == [r.sample_id for r in plan.requests]
    assert ds[0]["image"].size == (32, 32)


def test_digest_is_stable_and_covers_every_image_byte_and_label(tiny_model, tmp_path):
    manifest, plan = plan_for("pub-digest", tiny_model)
    _, published = generate_and_publish(manifest, plan)
    folder = published.path

    assert published.digest.startswith("sha256:")
    assert version_digest(folder) == published.digest
    meta = pd.read_parquet(folder / "metadata.parquet")
    shuffled = meta.sample(frac=1.0, random_state=0)[meta.columns[::-1]]
    assert content_digest(folder, shuffled) == published.digest
    later = meta.assign(created_at=meta["created_at"] + pd.Timedelta(days=1))
    assert content_digest(folder, later) == published.digest
    for column, value in (("prompt", "a red eight"), ("seed", 99), ("guidance", 7.5000001)):
        edited = meta.copy()
        edited.loc[1, column] = value
        assert content_digest(folder, edited) != published.digest, column
    copy = shutil.copytree(folder, tmp_path / "copy")
    assert version_digest(copy) == published.digest

    image = copy / meta["file_name"][2]
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0x01
    image.write_bytes(bytes(data))
    assert version_digest(copy) != published.digest
    assert version_digest(folder) == published.digest


def test_a_second_publish_gets_the_next_version(tiny_model):
    manifest, plan = plan_for("pub-v2", tiny_model)
    _, first = generate_and_publish(manifest, plan)
    before = sorted(p.name for p in (first.path / "images").iterdir())

    reports, second = generate_and_publish(manifest, plan)

    assert not any(r.skipped for r in reports)
    assert (first.version, second.version) == (1, 2)
    assert second.path == plan.layout.version_dir(2)
    assert second.digest == first.digest
    assert "# pub-v2 v2" in (second.path / "README.md").read_text()
    assert sorted(p.name for p in (first.path / "images").iterdir()) == before
    assert plan.layout.versions() == [1, 2]


def test_first_version_is_respected(tiny_model):
    manifest, plan = plan_for("pub-first", tiny_model)
    for shard in plan.shards:
        generate_shard(manifest.generator, shard)
    published = publish(plan.layout, plan.digest, [s.folder for s in plan.shards], manifest, 5)
    assert published.version == 5
    assert published.path.name == "v5"


def test_done_shards_are_skipped(tiny_model):
    manifest, plan = plan_for("pub-resume", tiny_model)
    first = generate_shard(manifest.generator, plan.shards[0])
    marker = plan.shards[0].folder / "_DONE"
    stamp = marker.stat().st_mtime_ns

    reports = [generate_shard(manifest.generator, shard) for shard in plan.shards]

    assert (first.images, first.errors, first.skipped) == (2, 0, False)
    assert [(r.skipped, r.images) for r in reports] == [(True, 0), (False, 2)]
    assert marker.stat().st_mtime_ns == stamp
    again = make_plan(manifest)
    assert [s.id for s in again.shards] == [s.id for s in plan.shards]
    assert all(s.done for s in again.shards)


def test_failed_generations_are_published_as_rejected_rows(tiny_model):
    Image.new("RGB", (32, 32), (200, 40, 40)).save("good.png")
    Path("broken.png").write_bytes(b"not an image at all")
    manifest, plan = plan_for(
        "pub-rejected",
        tiny_model,
        items=[
            {"prompt": "a red seven", "count": 2, "conditions": {"image": "good.png"}},
            {"prompt": "a broken one", "conditions": {"image": "broken.png"}},
        ],
        shard_size=3,
        pipeline="img2img",
        strength=0.5,
    )

    reports, published = generate_and_publish(manifest, plan)

    assert [(r.images, r.errors) for r in reports] == [(2, 1)]
    assert (published.images, published.rejected) == (2, 1)
    kept = pd.read_parquet(published.path / "metadata.parquet")
    assert list(kept["prompt"]) == ["a red seven", "a red seven"]
    rejected = pd.read_parquet(published.path / "rejected.parquet")
    row = rejected.iloc[0]
    assert (row["prompt"], row["reject_reason"]) == ("a broken one", "generation_failed")
    assert row["detail"].startswith("unreadable condition image") and "broken.png" in row["detail"]
    assert row["file_name"] is None or pd.isna(row["file_name"])
    assert len(os.listdir(published.path / "images")) == 2
    ds = load_imagefolder(published.path)
    assert ds.num_rows == 2


def test_a_shard_of_unreadable_inputs_is_written_with_every_row_rejected(tiny_model):
    Path("broken.png").write_bytes(b"not an image at all")
    manifest, plan = plan_for(
        "pub-allinput",
        tiny_model,
        items=[{"prompt": "x", "count": 2, "conditions": {"image": "broken.png"}}],
        pipeline="img2img",
    )

    report = generate_shard(manifest.generator, plan.shards[0])

    assert (report.images, report.errors) == (0, 2)
    assert plan.shards[0].done


def test_a_shard_where_every_generation_fails_raises_and_is_not_marked_done(
    tiny_model, monkeypatch
):
    """A model that fails on every image is a problem of the run, not of the samples."""
    manifest, plan = plan_for(
        "pub-allfail", tiny_model, items=[{"prompt": "x", "count": 2, "seed": 1}]
    )

    def broken_model(self, batch):
        raise RuntimeError("weights are corrupt")

    monkeypatch.setattr(ImageGenerator, "_call", broken_model)
    with pytest.raises(
        ShardFailed, match="all 2 images failed; first error: RuntimeError: weights are corrupt"
    ):
        generate_shard(manifest.generator, plan.shards[0])
    assert not plan.shards[0].done
