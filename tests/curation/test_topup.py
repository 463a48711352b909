"""Top-ups: more images for short items, with fresh deterministic seeds, within the budget."""

from __future__ import annotations

import pytest

from synthset.curation.config import CurationConfig
from synthset.curation.topup import more_images
from synthset.manifest import Manifest
from synthset.plan import extend_plan, make_plan
from tests.curation.conftest import curate_images, prompt_of


@pytest.fixture(scope="module")
def eight(digit_images):
    images, labels = digit_images
    return images[:8], [prompt_of(int(k)) for k in labels[:8]]


def test_short_items_ask_for_their_shortfall_over_their_pass_rate(tmp_path, scorer, eight):
    images, prompts = eight
    flat = images[0].point(lambda _: 80)
    config = CurationConfig(dedup={"exact": False, "perceptual": False})
    batch = images[:4] + [flat, flat] + images[4:6]
    items = [0, 0, 0, 0, 1, 1, 1, 1]

    curation = curate_images(
        tmp_path / "s", scorer, config, batch, prompts[:8], items, counts={0: 6, 1: 4}
    )

    assert curation.items["kept"].tolist() == [4, 2]
    assert more_images(curation, {0: 6, 1: 4}, config) == {0: 2, 1: 4}
    low_budget = CurationConfig(attempt_budget=1.25, dedup={"exact": False, "perceptual": False})
    assert more_images(curation, {0: 6, 1: 4}, low_budget) == {0: 2, 1: 1}
    spent = CurationConfig(attempt_budget=1.0)
    assert more_images(curation, {0: 6, 1: 4}, spent) == {0: 2}


def test_an_item_with_nothing_kept_asks_for_its_whole_budget(tmp_path, scorer, eight):
    images, prompts = eight
    config = CurationConfig(min_clip_score=100, attempt_budget=2.5)
    curation = curate_images(tmp_path / "s", scorer, config, images[:4], prompts[:4])
    assert curation.items["kept"].tolist() == [0]
    assert more_images(curation, {0: 4}, config) == {0: 6}


def manifest() -> Manifest:
    return Manifest.model_validate(
        {
            "dataset": "topup",
            "shard_size": 3,
            "items": [
                {"prompt": "a red seven", "count": 4, "seed": 10},
                {"prompt": "a blue one", "count": 2, "seed": 500},
            ],
        }
    )


def test_extending_a_plan_adds_shards_of_next_indices_and_seeds(tmp_path):
    plan = make_plan(manifest(), tmp_path)
    assert len(plan.shards) == 2

    bigger, new = extend_plan(plan, {0: 2, 1: 1})
    again, new_again = extend_plan(make_plan(manifest(), tmp_path), {0: 2, 1: 1})

    assert [s.index for s in new] == [2]
    assert bigger.shards[:2] == plan.shards and bigger.shards[2:] == new
    assert [(r.item_index, r.index, r.seed) for r in new[0].requests] == [
        (0, 4, 14),
        (0, 5, 15),
        (1, 2, 502),
    ]
    assert [s.id for s in new_again] == [s.id for s in new]
    assert new[0].folder.parent == plan.shards[0].folder.parent
    ids = [r.sample_id for r in bigger.requests]
    assert len(set(ids)) == len(ids) == 9

    biggest, newest = extend_plan(bigger, {0: 1})
    assert [(r.item_index, r.index, r.seed) for s in newest for r in s.requests] == [(0, 6, 16)]
    assert len(biggest.requests) == 10
