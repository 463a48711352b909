"""Scoring a shard: columns, CLIPScore convention, tags, unreadable images and resuming."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthset.curation.config import CurationConfig
from synthset.curation.curate import curate, load_pool
from synthset.curation.score import EMBEDDINGS, SCORES, score_shard, scored_by
from synthset.models.clip import clip_score
from synthset.models.digits import DIGIT_WORDS
from tests.curation.conftest import prompt_of, reasons, write_image_shard

VOCABULARY = [f"a handwritten {w}" for w in DIGIT_WORDS]


@pytest.fixture()
def shard(tmp_path, digit_images):
    images, labels = digit_images
    prompts = [prompt_of(int(k)) for k in labels[:12]]
    return write_image_shard(tmp_path / "shard", images[:12], prompts), images[:12], labels[:12]


def test_scores_and_float16_embeddings_are_written_next_to_the_rows(shard, scorer):
    folder, images, labels = shard
    config = CurationConfig(tags={"vocabulary": VOCABULARY, "top_k": 2})

    report = score_shard(folder, scorer, config)

    assert (report.scored, report.unreadable, report.skipped) == (12, 0, False)
    scores = pd.read_parquet(folder / SCORES)
    assert list(scores["sample_id"]) == [f"s{n:03d}" for n in range(12)]
    assert {"clip_score", "pixel_hash", "phash", "brightness", "contrast", "sharpness"} <= set(
        scores.columns
    )
    assert {"entropy", "blank", "width", "height", "clip_tags", "clip_tag_scores"} <= set(
        scores.columns
    )
    embeddings = np.load(folder / EMBEDDINGS)
    assert embeddings.dtype == np.float16 and embeddings.shape == (12, scorer.dim)
    np.testing.assert_allclose(np.linalg.norm(embeddings.astype(float), axis=1), 1.0, atol=2e-3)

    prompts = [prompt_of(int(k)) for k in labels]
    expected = clip_score(scorer.model, scorer.preprocess, scorer.tokenizer, images, prompts)
    np.testing.assert_allclose(scores["clip_score"], expected, atol=1e-3)
    assert (scores["width"] == 32).all() and (scores["height"] == 32).all()

    top = [tags[0] for tags in scores["clip_tags"]]
    assert np.mean([t == VOCABULARY[k] for t, k in zip(top, labels, strict=True)]) >= 0.8
    for tags, values in zip(scores["clip_tags"], scores["clip_tag_scores"], strict=True):
        assert len(tags) == len(values) == 2
        assert values[0] >= values[1] and sum(values) <= 1.0 + 1e-6


def test_a_scored_shard_is_skipped_unless_the_scorer_changed(shard, scorer):
    folder, _, _ = shard
    config = CurationConfig()
    score_shard(folder, scorer, config)
    stamp = (folder / SCORES).stat().st_mtime_ns

    again = score_shard(folder, scorer, config)
    assert again.skipped and (folder / SCORES).stat().st_mtime_ns == stamp
    assert scored_by(folder)["clip"] == scorer.identity

    retagged = score_shard(folder, scorer, CurationConfig(tags={"vocabulary": ["a cat"]}))
    assert not retagged.skipped
    assert scored_by(folder)["tags"]["vocabulary"] == ["a cat"]


def test_corrupt_truncated_and_missing_images_are_unreadable_rows(shard, scorer):
    folder, _, _ = shard
    files = sorted((folder / "images").iterdir())
    files[1].write_bytes(files[1].read_bytes()[:60])
    files[4].write_bytes(b"this is not a PNG file")
    files[7].unlink()
    config = CurationConfig(dedup={"exact": False, "perceptual": False})

    report = score_shard(folder, scorer, config)
    curation = curate(load_pool([folder]), config, {0: 12}, {0: "digits"})

    assert (report.scored, report.unreadable) == (9, 3)
    got = reasons(curation)
    assert [s for s, r in got.items() if r] == ["s001", "s004", "s007"]
    assert {got[s] for s in ("s001", "s004", "s007")} == {"unreadable"}
    detail = curation.rows.set_index("sample_id")["detail"]
    assert "truncated" in detail["s001"] or "OSError" in detail["s001"]
    assert detail["s004"].startswith("UnidentifiedImageError")
    assert detail["s007"].startswith("FileNotFoundError")
    assert int(curation.kept.sum()) + 3 == 12
    assert curation.items.loc[0, "shortfall"] == 3
