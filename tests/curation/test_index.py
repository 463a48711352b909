"""FAISS flat and IVF indexes find the pairs above a cosine threshold, exactly scored."""

from __future__ import annotations

import faiss
import numpy as np
import pandas as pd
import pytest

from synthset.curation.index import (
    build_index,
    cell_count,
    choose_kind,
    load_index,
    save_index,
    search_pairs,
    self_pairs,
)


def planted(
    n: int, d: int, pairs: int, seed: int = 0, clusters: int = 0
) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Random unit vectors where row `n - pairs + k` is a near-copy (cos 0.97–0.995) of row k.

    With `clusters`, the vectors gather around that many directions (cosine ≈ 0.8 within one).
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    if clusters:
        centres = rng.standard_normal((clusters, d)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        x = centres[rng.integers(clusters, size=n)] + 0.5 * x
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    for k in range(pairs):
        cos = rng.uniform(0.97, 0.995)
        other = rng.standard_normal(d).astype(np.float32)
        other -= (other @ x[k]) * x[k]
        other /= np.linalg.norm(other)
        x[n - pairs + k] = cos * x[k] + np.sqrt(1 - cos**2) * other
    return x, {(k, n - pairs + k) for k in range(pairs)}


def as_set(pairs) -> set[tuple[int, int]]:
    return set(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))


def test_kind_is_chosen_by_size():
    assert choose_kind(100) == "flat"
    assert choose_kind(100_000) == "ivf"
    assert choose_kind(100, "ivf") == "ivf"
    assert choose_kind(500, flat_max=499) == "ivf"
    assert cell_count(1_000_000) == 2048
    assert cell_count(10) == 16


def test_flat_finds_exactly_the_planted_pairs_with_exact_cosines():
    x, truth = planted(2000, 32, 20)

    found = self_pairs(x, 0.96, kind="flat")

    assert as_set(found) == truth
    assert np.all(found.left < found.right)
    exact = (x[found.left] * x[found.right]).sum(axis=1)
    np.testing.assert_allclose(found.value, exact, atol=1e-5)


@pytest.mark.parametrize("dim", [32, 128])
def test_ivf_is_chosen_for_large_sets_and_finds_the_planted_pairs(dim):
    x, truth = planted(6000, dim, 60, seed=1)
    index = build_index(x, flat_max=1000)
    assert type(index).__name__ == "IndexIVFFlat"
    assert (index.ntotal, index.nlist, index.nprobe) == (6000, 128, 6)
    quantizer = type(faiss.downcast_index(index.quantizer)).__name__
    assert quantizer == ("IndexFlatIP" if dim <= 64 else "IndexPreTransform")

    found = self_pairs(x, 0.96, flat_max=1000)

    recall = len(as_set(found) & truth) / len(truth)
    assert recall >= 0.95
    assert as_set(found) <= truth
    exact = (x[found.left] * x[found.right]).sum(axis=1)
    np.testing.assert_allclose(found.value, exact, atol=1e-5)


def test_threshold_is_inclusive_and_self_pairs_are_dropped():
    x = np.eye(3, dtype=np.float32)
    x[1] = [0.6, 0.8, 0.0]
    found = self_pairs(x, 0.6)
    assert as_set(found) == {(0, 1)}
    assert self_pairs(x[:1], 0.5).left.size == 0


@pytest.mark.parametrize("kind, dim", [("flat", 16), ("ivf", 16), ("ivf", 96)])
def test_a_saved_index_answers_queries_with_sample_ids(tmp_path, kind, dim):
    x, _ = planted(400, dim, 0, seed=2)
    ids = [f"id{n:03d}" for n in range(400)]
    info = save_index(tmp_path, x, ids, {"model": "m", "pretrained": None}, kind)

    stored = load_index(tmp_path)

    assert info["kind"] == kind and stored.info == info
    assert stored.info["scorer"] == {"model": "m", "pretrained": None}
    assert stored.index.ntotal == 400
    embeddings = np.load(tmp_path / "index" / "embeddings.npy")
    assert embeddings.dtype == np.float16 and embeddings.shape == (400, dim)
    assert list(pd.read_parquet(tmp_path / "index" / "ids.parquet")["sample_id"]) == ids
    query = x[[7, 123]] * 0.999 + 0.001 * x[[8, 124]]
    found = search_pairs(stored.index, query / np.linalg.norm(query, axis=1, keepdims=True), 0.99)
    assert {
        (int(q), stored.sample_ids[i]) for q, i in zip(found.left, found.right, strict=True)
    } == {
        (0, "id007"),
        (1, "id123"),
    }
    assert load_index(tmp_path / "nowhere") is None


def test_cells_joined_on_several_threads_give_the_same_pairs():
    x, truth = planted(5000, 96, 50, seed=4)
    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)
        one = self_pairs(x, 0.96, flat_max=1000)
        faiss.omp_set_num_threads(2)
        two = self_pairs(x, 0.96, flat_max=1000)
    finally:
        faiss.omp_set_num_threads(before)
    assert as_set(one) == as_set(two) and len(as_set(one) & truth) >= 48
    np.testing.assert_array_equal(one.value, two.value)


@pytest.mark.parametrize("clustered", [False, True])
def test_searching_principal_axes_with_the_bound_finds_the_same_pairs(monkeypatch, clustered):
    from synthset.curation import index as module

    x, truth = planted(6000, 256, 60, seed=5, clusters=20 if clustered else 0)
    reduced = self_pairs(x, 0.95, flat_max=1000)
    monkeypatch.setattr(module, "REDUCED_DIM", 256)
    full = self_pairs(x, 0.95, flat_max=1000)

    assert as_set(reduced) == as_set(full) and len(as_set(full) & truth) >= 55
    np.testing.assert_allclose(reduced.value, full.value, atol=1e-5)
    exact = (x[reduced.left] * x[reduced.right]).sum(axis=1)
    np.testing.assert_allclose(reduced.value, exact, atol=1e-5)
