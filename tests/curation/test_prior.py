"""Dedup against earlier versions: through their stored hashes and FAISS index, never their
images; the same sample published again is not a duplicate of itself."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from synthset.curation.config import CurationConfig
from synthset.curation.curate import curate, load_pool
from synthset.curation.prior import load_prior_versions
from synthset.curation.score import score_shard
from synthset.layout import DatasetLayout
from synthset.manifest import Manifest
from synthset.storage.history import local_versions
from synthset.storage.publish import publish
from tests.curation.conftest import prompt_of, reasons, write_image_shard

CONFIG = CurationConfig(dedup={"semantic": True, "semantic_threshold": 0.99})


def noisy(image: Image.Image) -> Image.Image:
    a = np.asarray(image, dtype=int)
    jitter = np.random.default_rng(0).integers(-3, 4, a.shape)
    return Image.fromarray(np.clip(a + jitter, 0, 255).astype(np.uint8))


def shifted(image: Image.Image) -> Image.Image:
    return Image.fromarray(np.roll(np.asarray(image), 1, axis=1))


@pytest.fixture(scope="module")
def distinct(digit_images):
    images, labels = digit_images
    first = [int(np.flatnonzero(labels == k)[0]) for k in range(10)]
    return [images[i] for i in first], [prompt_of(k) for k in range(10)]


def run(layout, name, scorer, config, images, prompts, ids):
    """Write, score and curate one shard against the versions on disk, then publish it."""
    folder = write_image_shard(layout.shard_dir(name, "s"), images, prompts, ids=ids)
    score_shard(folder, scorer, config)
    prior = load_prior_versions(
        local_versions(layout, config.dedup.prior_versions), scorer.identity
    )
    curation = curate(load_pool([folder]), config, {0: len(images)}, {0: "digits"}, prior)
    manifest = Manifest.model_validate(
        {
            "dataset": layout.name,
            "items": [{"prompt": "digits", "count": len(images)}],
            "curation": config.model_dump(),
        }
    )
    return curation, publish(layout, name, [folder], manifest, curation=curation)


def test_a_new_version_is_deduplicated_against_the_previous_one(tmp_path, scorer, distinct):
    images, prompts = distinct
    layout = DatasetLayout(tmp_path, "prior")
    run(layout, "p1", scorer, CONFIG, images[:6], prompts[:6], [f"old{n}" for n in range(6)])
    again = [images[0], images[1], shifted(images[2]), noisy(images[3]), images[6], images[7]]
    ids = ["old0", "new-exact", "new-semantic", "new-perceptual", "new-a", "new-b"]

    curation, published = run(layout, "p2", scorer, CONFIG, again, prompts[:4] + prompts[6:8], ids)

    assert curation.prior_versions == [1]
    assert reasons(curation) == {
        "old0": None,
        "new-exact": "duplicate_of:old1",
        "new-semantic": "duplicate_of:old2",
        "new-perceptual": "duplicate_of:old3",
        "new-a": None,
        "new-b": None,
    }
    rows = curation.rows.set_index("sample_id")
    assert rows.loc["new-exact", "detail"] == "exact: same pixels as v1"
    assert rows.loc["new-perceptual", "detail"] == "perceptual: pHash distance 0 to v1"
    assert rows.loc["new-semantic", "detail"].startswith("semantic: cosine 0.99")
    assert rows.loc["new-semantic", "detail"].endswith(" to v1")
    assert set(rows["dup_version"].dropna()) == {1}
    assert curation.metrics["duplicates.prior_versions"] == 3
    assert published.version == 2 and published.images == 3


def test_prior_versions_none_and_another_clip_model(tmp_path, scorer, distinct):
    images, prompts = distinct
    layout = DatasetLayout(tmp_path, "prior")
    run(layout, "p1", scorer, CONFIG, images[:2], prompts[:2], ["old0", "old1"])
    alone = CONFIG.model_copy(
        update={"dedup": CONFIG.dedup.model_copy(update={"prior_versions": "none"})}
    )

    curation, _ = run(layout, "p2", scorer, alone, images[:2], prompts[:2], ["n0", "n1"])
    assert reasons(curation) == {"n0": None, "n1": None}

    other = load_prior_versions(
        local_versions(layout, "all"), {"model": "ViT-B-32", "pretrained": "openai"}
    )
    assert other.indexes == {}
    assert other.skipped == [
        "v1: embeddings of another CLIP model",
        "v2: embeddings of another CLIP model",
    ]
    assert len(other.hashes) == 4
    latest = load_prior_versions(local_versions(layout, "latest"), scorer.identity)
    assert list(latest.indexes) == [2] and set(latest.hashes["version"]) == {2}
