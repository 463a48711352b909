"""Planted duplicates of each tier are caught by that tier, and the survivor is the rule's."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from synthset.curation.config import CurationConfig
from synthset.curation.dedup import (
    exact_survivors,
    greedy_survivors,
    hamming_matches,
    hamming_pairs,
    rank_order,
)
from synthset.curation.index import Pairs
from tests.curation.conftest import curate_images, prompt_of, reasons


def noisy(image: Image.Image, amplitude: int = 3) -> Image.Image:
    """Other pixels, same look: pHash distance 0 on these digits."""
    a = np.asarray(image, dtype=int)
    jitter = np.random.default_rng(0).integers(-amplitude, amplitude + 1, a.shape)
    return Image.fromarray(np.clip(a + jitter, 0, 255).astype(np.uint8))


def shifted(image: Image.Image) -> Image.Image:
    """One pixel to the right: pHash distance ≈ 10, CLIP cosine ≈ 0.999."""
    return Image.fromarray(np.roll(np.asarray(image), 1, axis=1))


@pytest.fixture(scope="module")
def ten(digit_images) -> tuple[list[Image.Image], list[str]]:
    """One held-out digit of each class (CLIP cosine between them at most ≈ 0.5)."""
    images, labels = digit_images
    first = [int(np.flatnonzero(labels == k)[0]) for k in range(10)]
    return [images[i] for i in first], [prompt_of(k) for k in range(10)]


def survivor(rows, a: str, b: str) -> str:
    """Which of two sample ids the rule keeps: higher CLIP score, then smaller id."""
    score = dict(zip(rows["sample_id"], rows["clip_score"], strict=True))
    return min((a, b), key=lambda s: (-score[s], s))


def test_rank_prefers_higher_score_then_smaller_id():
    rank = rank_order([5.0, 7.0, 7.0, np.nan], ["d", "c", "b", "a"])
    assert rank.tolist() == [2, 1, 0, 3]


def test_greedy_survivors_never_chain():
    rank = np.array([0, 1, 2, 3])
    pairs = Pairs(np.array([0, 1, 3]), np.array([1, 2, 2]), np.array([0.9, 0.95, 0.97]))

    dup_of, value = greedy_survivors(rank, pairs)

    assert dup_of.tolist() == [-1, 0, -1, 2]
    assert value[1] == pytest.approx(0.9) and value[3] == pytest.approx(0.97)
    assert np.isnan(value[0]) and np.isnan(value[2])


def test_exact_survivor_is_the_best_of_each_group():
    dup_of = exact_survivors(["h1", "h2", "h1", "h1", "h3"], np.array([3, 0, 1, 2, 4]))
    assert dup_of.tolist() == [2, -1, -1, 2, -1]


def test_hamming_search_is_exact_within_the_distance_for_large_sets():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 25_000, dtype=np.uint64)
    planted = {(0, 24_990): 4, (1, 24_991): 1, (2, 24_992): 0}
    for (a, b), bits in planted.items():
        hashes[b] = hashes[a] ^ np.uint64((1 << bits) - 1)
    hashes[24_993] = hashes[3] ^ np.uint64(0b11111)

    found = hamming_pairs(hashes, 4)

    triples = zip(found.left, found.right, found.value, strict=True)
    pairs = {(int(a), int(b)): int(v) for a, b, v in triples}
    assert pairs == planted
    one = hamming_matches(hashes[:1], hashes[24_990:], 4)
    assert (one.left.tolist(), one.right.tolist(), one.value.tolist()) == ([0], [0], [4.0])


def test_each_tier_catches_its_planted_duplicate(tmp_path, scorer, ten):
    images, prompts = ten
    planted = [images[0], noisy(images[1]), shifted(images[2])]
    config = CurationConfig(dedup={"semantic": True, "semantic_threshold": 0.99})

    curation = curate_images(
        tmp_path / "shard", scorer, config, images + planted, prompts + prompts[:3]
    )

    rows = curation.rows.set_index("sample_id")
    expected = {}
    for original, copy in [("s000", "s010"), ("s001", "s011"), ("s002", "s012")]:
        keep = survivor(curation.rows, original, copy)
        expected[({original, copy} - {keep}).pop()] = f"duplicate_of:{keep}"
    assert {s: r for s, r in reasons(curation).items() if r} == expected
    rejected = rows[rows["reject_reason"].notna()]
    assert sorted(rejected["dup_tier"]) == ["exact", "perceptual", "semantic"]
    by_tier = {t: s for s, t in rejected["dup_tier"].items()}
    assert rows.loc[by_tier["exact"], "detail"] == "exact: same pixels"
    assert rows.loc[by_tier["perceptual"], "detail"] == "perceptual: pHash distance 0"
    assert rows.loc[by_tier["semantic"], "detail"].startswith("semantic: cosine 0.99")
    assert curation.metrics["duplicates.exact"] == 1
    assert curation.metrics["duplicate_rate"] == pytest.approx(3 / 13)
    assert int(curation.kept.sum()) == 10


def test_exact_copies_tie_and_the_smaller_id_survives(tmp_path, scorer, ten):
    images, prompts = ten
    config = CurationConfig()

    curation = curate_images(
        tmp_path / "shard", scorer, config, [images[4], images[5], images[4]], [prompts[4]] * 3
    )

    assert reasons(curation) == {"s000": None, "s001": None, "s002": "duplicate_of:s000"}


def test_survivor_has_the_higher_clip_score(tmp_path, scorer, ten):
    images, prompts = ten
    near = noisy(images[7], amplitude=12)
    config = CurationConfig(dedup={"perceptual_distance": 16})

    curation = curate_images(
        tmp_path / "shard", scorer, config, [images[7], near], [prompts[7], prompts[7]]
    )

    score = dict(zip(curation.rows["sample_id"], curation.rows["clip_score"], strict=True))
    assert score["s000"] != score["s001"]
    best, other = sorted(score, key=lambda s: -score[s])
    assert reasons(curation) == {best: None, other: f"duplicate_of:{best}"}


@pytest.mark.parametrize(
    "on, caught",
    [
        ((), set()),
        (("exact",), {"copy"}),
        (("perceptual",), {"copy", "noisy"}),
        (("semantic",), {"copy", "noisy", "shifted"}),
    ],
)
def test_each_tier_is_switchable(tmp_path, scorer, ten, on, caught):
    images, prompts = ten
    dedup = {tier: tier in on for tier in ("exact", "perceptual", "semantic")}
    dedup["semantic_threshold"] = 0.99
    copies = {"copy": images[0], "noisy": noisy(images[1]), "shifted": shifted(images[2])}

    curation = curate_images(
        tmp_path / "shard",
        scorer,
        CurationConfig(dedup=dedup),
        images[:3] + list(copies.values()),
        prompts[:3] * 2,
    )

    names = dict(zip(["s003", "s004", "s005"], copies, strict=True))
    rows = curation.rows
    dropped = set(rows.loc[rows["reject_reason"].notna(), "sample_id"])
    pairs = {"s003": "s000", "s004": "s001", "s005": "s002"}
    assert {names[c] for c in pairs if dropped & {c, pairs[c]}} == caught
    assert len(dropped) == len(caught)
