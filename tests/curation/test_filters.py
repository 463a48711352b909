"""Thresholds, top fractions, blanks and counts reject exactly the rows they should."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from synthset.curation.config import CurationConfig
from synthset.curation.filters import kept_of, surplus, top_fraction
from tests.curation.conftest import curate_images, prompt_of, reasons

NO_DEDUP = {"exact": False, "perceptual": False}


@pytest.fixture(scope="module")
def twenty(digit_images) -> tuple[list[Image.Image], list[str]]:
    """Twenty held-out digits; every third one is given a wrong prompt, to spread the scores."""
    images, labels = digit_images
    prompts = [prompt_of((int(k) + (n % 3 == 0)) % 10) for n, k in enumerate(labels[:20])]
    return images[:20], prompts


def test_kept_of_rounds_up_without_float_noise():
    assert kept_of(10, 0.3) == 3
    assert kept_of(3, 0.5) == 2
    assert kept_of(1, 0.01) == 1
    assert kept_of(0, 0.5) == 0


def test_top_fraction_and_surplus_helpers():
    rank = np.array([4, 0, 3, 1, 2, 5])
    groups = np.array(["a", "a", "a", "b", "b", "b"])
    assert top_fraction(rank, groups, 0.5).tolist() == [True, False, False, False, False, True]
    assert top_fraction(rank, None, 0.5).tolist() == [True, False, True, False, False, True]
    out = surplus(np.array([0, 0, 0, 1]), np.array([2, 0, 1, 0]), {0: 2, 1: 1})
    assert out.tolist() == [True, False, False, False]


def test_min_clip_score_rejects_exactly_the_rows_below_it(tmp_path, scorer, twenty):
    images, prompts = twenty
    first = curate_images(tmp_path / "a", scorer, CurationConfig(dedup=NO_DEDUP), images, prompts)
    scores = first.rows.set_index("sample_id")["clip_score"]
    threshold = float(np.median(scores))

    config = CurationConfig(min_clip_score=threshold, dedup=NO_DEDUP)
    curation = curate_images(tmp_path / "b", scorer, config, images, prompts)

    rows = curation.rows.set_index("sample_id")
    below = set(scores[scores < threshold].index)
    assert set(rows.index[rows["reject_reason"].notna()]) == below
    assert set(rows.loc[list(below), "reject_reason"]) == {"clip_below_threshold"}
    some = sorted(below)[0]
    assert rows.loc[some, "detail"] == f"clip score {scores[some]:.2f} < {threshold:g}"
    assert curation.metrics["rejected.clip_below_threshold"] == len(below) == 10


@pytest.mark.parametrize("by", ["prompt", "global"])
def test_keep_top_fraction_keeps_the_best_per_prompt_or_overall(tmp_path, scorer, twenty, by):
    images, prompts = twenty
    config = CurationConfig(keep_top_fraction=0.3, top_fraction_by=by, dedup=NO_DEDUP)

    curation = curate_images(tmp_path / "s", scorer, config, images, prompts)

    rows = curation.rows
    groups = rows.groupby("prompt") if by == "prompt" else [(None, rows)]
    expected = set()
    for _, group in groups:
        ordered = group.sort_values(["clip_score", "sample_id"], ascending=[False, True])
        expected |= set(ordered["sample_id"][: math.ceil(round(0.3 * len(group), 9))])
    assert set(rows.loc[rows["reject_reason"].isna(), "sample_id"]) == expected
    assert set(rows["reject_reason"].dropna()) == {"not_in_top_fraction"}


def test_blank_and_failed_images_are_rejected_and_counted(tmp_path, scorer, twenty):
    images, prompts = twenty
    flat = Image.new("RGB", (32, 32), (90, 90, 90))
    config = CurationConfig(dedup=NO_DEDUP)

    curation = curate_images(
        tmp_path / "s", scorer, config, [images[0], flat, None, images[1]], prompts[:4]
    )

    rows = curation.rows.set_index("sample_id")
    assert reasons(curation) == {
        "s000": None,
        "s001": "blank",
        "s002": "generation_failed",
        "s003": None,
    }
    assert rows.loc["s001", "detail"] == "contrast 0.0000 < 0.01"
    assert rows.loc["s002", "detail"] == "RuntimeError: the generator failed"
    assert bool(rows.loc["s001", "blank"]) is True

    kept_blank = curate_images(
        tmp_path / "t",
        scorer,
        CurationConfig(drop_blank=False, dedup=NO_DEDUP),
        [flat],
        prompts[:1],
    )
    assert kept_blank.rows["reject_reason"].isna().all()


def test_an_item_keeps_its_count_and_the_lowest_indices(tmp_path, scorer, twenty):
    images, prompts = twenty
    items = [0] * 6 + [1] * 4

    curation = curate_images(
        tmp_path / "s",
        scorer,
        CurationConfig(dedup=NO_DEDUP),
        images[:10],
        prompts[:10],
        items=items,
        counts={0: 4, 1: 4},
    )

    rows = curation.rows
    assert rows.loc[rows["reject_reason"].notna(), "sample_id"].tolist() == ["s004", "s005"]
    assert set(rows["reject_reason"].dropna()) == {"surplus"}
    assert rows.loc[4, "detail"] == "items[0] already has its 4 images"
    assert curation.items[["item", "count", "attempted", "kept", "shortfall"]].values.tolist() == [
        [0, 4, 6, 4, 0],
        [1, 4, 4, 4, 0],
    ]
