"""From generated shards to a published, curated version: what is kept, what is recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from synthset.curation.clip import scorer_for
from synthset.curation.curate import curate, extend_pool, load_pool
from synthset.curation.score import score_shard
from synthset.generators.shard import generate_shard
from synthset.manifest import load_manifest
from synthset.plan import extend_plan, make_plan
from synthset.storage.formats import version_digest
from synthset.storage.publish import publish
from tests.conftest import write_manifest


def test_a_curated_version_keeps_scores_and_records_every_rejection(tiny_model):
    manifest = load_manifest(
        write_manifest(
            Path.cwd(),
            f"""
dataset: curated
generator: {{model: {tiny_model}, steps: 2, device: cpu}}
shard_size: 3
curation:
  tags: {{vocabulary: [a red seven, a blue three, a cat], top_k: 2}}
items:
  - {{prompt: a red seven, count: 3, seed: 1}}
  - {{prompt: a blue three, count: 3, seed: 50}}
""",
        )
    )
    plan = make_plan(manifest)
    for shard in plan.shards:
        generate_shard(manifest.generator, shard)
    copy_from = plan.shards[0].folder / "images" / f"{plan.requests[0].sample_id}.png"
    copy_to = plan.shards[0].folder / "images" / f"{plan.requests[1].sample_id}.png"
    shutil.copyfile(copy_from, copy_to)
    rows = pd.read_parquet(plan.shards[0].folder / "rows.parquet")
    rows.loc[1, "file_sha256"] = rows.loc[0, "file_sha256"]
    rows.to_parquet(plan.shards[0].folder / "rows.parquet")
    broken = plan.shards[1].folder / "images" / f"{plan.requests[4].sample_id}.png"
    broken.write_bytes(broken.read_bytes()[:80])
    scorer = scorer_for(manifest.curation.clip)
    for shard in plan.shards:
        score_shard(shard.folder, scorer, manifest.curation)

    counts, prompts = {0: 3, 1: 3}, {0: "a red seven", 1: "a blue three"}
    curation = curate(
        load_pool([s.folder for s in plan.shards]), manifest.curation, counts, prompts
    )
    published = publish(
        plan.layout, plan.digest, [s.folder for s in plan.shards], manifest, curation=curation
    )

    folder = published.path
    kept = pd.read_parquet(folder / "metadata.parquet")
    rejected = pd.read_parquet(folder / "rejected.parquet")
    ids = [r.sample_id for r in plan.requests]
    low, high = sorted(ids[:2])
    assert sorted(kept["sample_id"]) == sorted([low, ids[2], ids[3], ids[5]])
    assert sorted(rejected["sample_id"]) == sorted([high, ids[4]])
    assert len(kept) + len(rejected) == 6 == curation.metrics["generated"]
    why = dict(zip(rejected["sample_id"], rejected["reject_reason"], strict=True))
    assert why == {high: f"duplicate_of:{low}", ids[4]: "unreadable"}
    assert list(rejected.columns[:4]) == ["sample_id", "reject_reason", "detail", "file_name"]
    assert rejected["file_name"].isna().all()
    assert {"clip_score", "phash", "dup_of", "dup_tier"} <= set(rejected.columns)

    for column in ("clip_score", "pixel_hash", "phash", "sharpness", "entropy", "clip_tags"):
        assert kept[column].notna().all(), column
    assert not {"reject_reason", "status", "error", "decode_error"} & set(kept.columns)
    assert all(len(tags) == 2 for tags in kept["clip_tags"])
    assert sorted(p.name for p in (folder / "images").iterdir()) == sorted(
        Path(f).name for f in kept["file_name"]
    )
    assert version_digest(folder) == published.digest
    assert (published.images, published.rejected) == (4, 2)

    stored = np.load(folder / "index" / "embeddings.npy")
    assert stored.shape == (4, scorer.dim) and stored.dtype == np.float16
    id_map = pd.read_parquet(folder / "index" / "ids.parquet")["sample_id"].tolist()
    assert id_map == kept["sample_id"].tolist()
    report = json.loads((folder / "curation.json").read_text())
    assert report["rejected"] == {"duplicate": 1, "unreadable": 1}
    assert [row["shortfall"] for row in report["items"]] == [1, 1]
    assert report["scorer"]["clip"] == scorer.identity
    card = (folder / "README.md").read_text()
    assert "## Curation" in card and "Items short of their count" in card

    import datasets

    assert datasets.load_dataset("imagefolder", data_dir=str(folder), split="train").num_rows == 4


def test_a_pool_grows_with_top_up_shards_in_item_order(tiny_model):
    manifest = load_manifest(
        write_manifest(
            Path.cwd(),
            f"""
dataset: grow
generator: {{model: {tiny_model}, steps: 2, device: cpu}}
shard_size: 2
items:
  - {{prompt: a red seven, count: 2, seed: 1}}
  - {{prompt: a blue three, count: 1, seed: 50}}
""",
        )
    )
    plan = make_plan(manifest)
    scorer = scorer_for(manifest.curation.clip)
    for shard in plan.shards:
        generate_shard(manifest.generator, shard)
        score_shard(shard.folder, scorer, manifest.curation)
    pool = load_pool([s.folder for s in plan.shards])
    plan, new = extend_plan(plan, {0: 1})
    for shard in new:
        generate_shard(manifest.generator, shard)
        score_shard(shard.folder, scorer, manifest.curation)

    grown = extend_pool(pool, [s.folder for s in new])

    assert list(zip(grown.rows["item_index"], grown.rows["index"], strict=True)) == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
    ]
    assert grown.embeddings.shape == (4, scorer.dim)
    again = load_pool([s.folder for s in plan.shards])
    np.testing.assert_array_equal(again.embeddings, grown.embeddings)
    assert again.rows["sample_id"].tolist() == grown.rows["sample_id"].tolist()
