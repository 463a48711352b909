"""Diversity figures on sets whose answer is known, and the dataset-level summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthset.curation.metrics import item_table, mean_pairwise_distance, summary, vendi_score


def test_vendi_score_counts_effectively_distinct_images():
    same = np.tile([[1.0, 0.0, 0.0]], (5, 1))
    assert vendi_score(same) == pytest.approx(1.0)
    assert vendi_score(np.eye(4)) == pytest.approx(4.0)
    two_groups = np.array([[1.0, 0, 0]] * 3 + [[0, 1.0, 0]] * 3)
    assert vendi_score(two_groups) == pytest.approx(2.0)
    rng = np.random.default_rng(0)
    wide = rng.standard_normal((300, 8))
    wide /= np.linalg.norm(wide, axis=1, keepdims=True)
    assert 1.0 < vendi_score(wide) <= 8.0 + 1e-9
    assert np.isnan(vendi_score(np.zeros((0, 3))))


def test_mean_pairwise_cosine_distance():
    assert mean_pairwise_distance(np.tile([[0.6, 0.8]], (4, 1))) == pytest.approx(0.0)
    assert mean_pairwise_distance(np.eye(3)) == pytest.approx(1.0)
    assert mean_pairwise_distance(np.array([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(2.0)
    assert np.isnan(mean_pairwise_distance(np.eye(3)[:1]))


def test_item_table_and_summary():
    rows = pd.DataFrame(
        {
            "sample_id": list("abcdef"),
            "item_index": [0, 0, 0, 1, 1, 1],
            "status": ["ok", "ok", "ok", "ok", "ok", "error"],
            "decode_error": [None, None, None, "OSError: bad", None, None],
            "clip_score": [30.0, 20.0, 10.0, np.nan, 40.0, np.nan],
            "reject_reason": [
                None,
                "duplicate_of:a",
                None,
                "unreadable",
                None,
                "generation_failed",
            ],
            "dup_tier": [None, "semantic", None, None, None, None],
            "dup_version": [None, None, None, None, None, None],
        }
    )
    embeddings = np.array([[1, 0], [1, 0], [0, 1], [0, 0], [1, 0], [0, 0]], dtype=float)

    items = item_table(rows, embeddings, {0: 2, 1: 3}, {0: "x", 1: "y"})
    metrics = summary(rows, items)

    assert items[["item", "count", "attempted", "kept", "shortfall"]].values.tolist() == [
        [0, 2, 3, 2, 0],
        [1, 3, 3, 1, 2],
    ]
    assert items.loc[0, "vendi"] == pytest.approx(2.0)
    assert items.loc[0, "mean_clip_score"] == pytest.approx(20.0)
    assert metrics["generated"] == 6 and metrics["kept"] == 3
    assert metrics["kept_fraction"] == pytest.approx(0.5)
    assert metrics["duplicate_rate"] == pytest.approx(1 / 4)
    assert metrics["mean_clip_score"] == pytest.approx(80 / 3)
    assert metrics["rejected.duplicate"] == 1
    assert metrics["rejected.unreadable"] == metrics["rejected.generation_failed"] == 1
    assert metrics["duplicates.semantic"] == 1 and metrics["duplicates.prior_versions"] == 0
    assert (metrics["shortfall"], metrics["items_short"]) == (2, 1)
    assert metrics["diversity.vendi_mean"] == pytest.approx(1.5)
