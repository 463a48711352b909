"""The report's figures on cases whose answer is known: fidelity (FD, KID, PRDC) and the
per-prompt duplicate rates, Vendi scores and tag counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthset.quality import diversity
from synthset.quality.fidelity import fd_floor, fidelity, frechet_distance, kernel_distance, prdc


def _normal(n: int, d: int = 8, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def test_identical_sets_are_at_distance_zero_and_shifted_sets_further():
    a, alike = _normal(200), _normal(200, seed=3)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    near, far = _normal(200, shift=0.5, seed=1), _normal(200, shift=2.0, seed=2)
    assert frechet_distance(a, alike) < frechet_distance(a, near) < frechet_distance(a, far)
    assert frechet_distance(a, far) == pytest.approx(8 * 2.0**2, rel=0.1)
    assert abs(kernel_distance(a, alike)) < 0.02 * kernel_distance(a, near)
    assert kernel_distance(a, near) < kernel_distance(a, far)
    assert kernel_distance(a, near) == kernel_distance(a, near), "seeded subsets"


def test_few_images_in_many_dimensions_still_give_a_finite_fd():
    a, b = _normal(20, d=64), _normal(20, d=64, seed=1)
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value > 0


def test_prdc_on_constructed_sets():
    real = _normal(300, d=4)
    same = prdc(real, real, 5)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] == pytest.approx(1.0, abs=0.05)
    far = prdc(real, _normal(300, d=4, shift=50.0), 5)
    assert far["precision"] == far["recall"] == far["density"] == far["coverage"] == 0.0
    # generated images cover one of the two real modes: realistic, not diverse
    two_modes = np.concatenate([_normal(150, d=4), _normal(150, d=4, shift=20.0, seed=1)])
    one_mode = _normal(150, d=4, seed=2)
    half = prdc(two_modes, one_mode, 5)
    assert half["precision"] > 0.9 and half["coverage"] < 0.6 and half["recall"] < 0.6


def test_prdc_shrinks_k_for_tiny_sets_and_gives_up_below_three():
    assert prdc(_normal(50), _normal(4), 5)["k"] == 2
    assert prdc(_normal(50), _normal(2), 5) is None


def test_fidelity_reports_counts_and_a_floor():
    reference, generated = _normal(200, d=8), _normal(40, d=8, shift=1.0, seed=5)
    result = fidelity(generated, reference, 5)
    assert (result["generated_images"], result["reference_images"], result["dim"]) == (40, 200, 8)
    assert result["fd_floor"]["images"] == 40 and result["fd_floor"]["against"] == 160
    assert result["fd_floor"]["fd"] < result["fd"]
    assert result["prdc"]["k"] == 5 and "40 generated" in result["note"]
    assert fd_floor(_normal(3), 10) is None
    assert fidelity(generated[:1], reference)["fd"] is None


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    kept = pd.DataFrame(
        {
            "sample_id": ["a", "b", "c", "d"],
            "item_index": [0, 0, 0, 1],
            "prompt": ["seven", "seven", "seven", "three"],
            "clip_score": [70.0, 72.0, 74.0, 60.0],
            "clip_tags": [["seven"], ["seven", "one"], ["seven"], ["three"]],
        }
    )
    rejected = pd.DataFrame(
        {
            "sample_id": ["e", "f", "g", "h"],
            "reject_reason": [
                "duplicate_of:a",
                "duplicate_of:d",
                "low_clip_score",
                "duplicate_of:x",
            ],
            "item_index": [0, 1, 1, 1],
            "prompt": ["seven", "three", "three", "three"],
            "dup_version": [None, None, None, 2],
        }
    )
    return kept, rejected


def test_duplicate_rates_are_per_prompt_over_everything_generated():
    kept, rejected = _tables()
    features = np.eye(4)[[0, 0, 1, 2]]
    prompts = diversity.per_prompt(kept, rejected, features)
    seven, three = prompts
    assert (seven["generated"], seven["kept"], seven["duplicates"]) == (4, 3, 1)
    assert seven["duplicate_rate"] == 0.25
    assert (three["generated"], three["duplicates"], three["duplicates_of_earlier_versions"]) == (
        4,
        2,
        1,
    )
    assert seven["vendi"] == pytest.approx(np.exp(-(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3))))
    assert seven["clip_score_p50"] == 72.0
    overall = diversity.overall(kept, rejected, features, prompts)
    assert overall["duplicate_rate"] == 3 / 8 and overall["duplicate_rate_max_prompt"] == 0.5
    assert overall["vendi"] == pytest.approx(3.0, rel=0.2)
    reasons = {r["reason"]: r["images"] for r in diversity.rejections(rejected, 8)}
    assert reasons == {"duplicate": 3, "low_clip_score": 1}
    tags = diversity.tag_frequencies(kept)
    assert tags[0] == {"tag": "seven", "images": 3, "share": 0.75}
    assert [t["tag"] for t in tags] == ["seven", "one", "three"]
