"""Finding duplicates and choosing the survivor, tier by tier.

Every tier turns "these rows are alike" into "this row duplicates that kept one" by the same
rule: rows are visited best first (higher CLIP score, then smaller sample id: the `rank`);
a row with an already kept neighbour is a duplicate of the best such neighbour, otherwise it is
kept. So each duplicate points at a row that stays and is really alike (no chains A~B~C that
drop C for looking like A's look-alike), and the outcome does not depend on row order.

- exact: equal pixel hashes;
- perceptual: pHash Hamming distance ≤ d, found with FAISS binary indexes (multi-index
  hashing for large sets: with d+1 disjoint bit ranges, a pair within d agrees exactly on one);
- semantic: cosine of CLIP embeddings ≥ t, through `synthset.curation.index`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from synthset.curation.index import FLAT_MAX, NPROBE, Kind, Pairs, self_pairs

BINARY_FLAT_MAX = 20_000


def rank_order(clip_score: Sequence[float], sample_id: Sequence[str]) -> np.ndarray:
    """Each row's place in the survivor order: higher CLIP score first, then smaller id."""
    frame = pd.DataFrame({"score": np.nan_to_num(np.asarray(clip_score, float), nan=-1.0)})
    frame["id"] = list(sample_id)
    order = frame.sort_values(["score", "id"], ascending=[False, True], kind="stable").index
    rank = np.empty(len(frame), dtype=np.int64)
    rank[order.to_numpy()] = np.arange(len(frame))
    return rank


def greedy_survivors(rank: np.ndarray, pairs: Pairs) -> tuple[np.ndarray, np.ndarray]:
    """(duplicate_of, similarity) per row: the kept row it duplicates, or -1 when kept.

    `pairs` index rows of `rank`; `similarity` is the pair's value (NaN for kept rows).
    """
    n = len(rank)
    dup_of = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan)
    if len(pairs) == 0:
        return dup_of, similarity
    a = np.concatenate([pairs.left, pairs.right])
    b = np.concatenate([pairs.right, pairs.left])
    s = np.concatenate([pairs.value, pairs.value]).astype(float)
    order = np.lexsort((rank[b], a))
    a, b, s = a[order], b[order], s[order]
    starts = np.searchsorted(a, np.arange(n + 1))
    involved = np.unique(a)
    for u in involved[np.argsort(rank[involved], kind="stable")]:
        neighbours = b[starts[u] : starts[u + 1]]
        better = (rank[neighbours] < rank[u]) & (dup_of[neighbours] == -1)
        if better.any():
            k = int(np.argmax(better))
            dup_of[u] = neighbours[k]
            similarity[u] = s[starts[u] + k]
    return dup_of, similarity


def exact_survivors(hashes: Sequence[str], rank: np.ndarray) -> np.ndarray:
    """duplicate_of per row for equal `hashes`: each row points at its group's best row."""
    frame = pd.DataFrame({"hash": list(hashes), "rank": rank})
    best = frame.loc[frame.groupby("hash", sort=False)["rank"].idxmin()]
    survivor = frame["hash"].map(pd.Series(best.index.to_numpy(), index=best["hash"]))
    dup_of = survivor.to_numpy(dtype=np.int64, copy=True)
    dup_of[dup_of == np.arange(len(frame))] = -1
    return dup_of


def _codes(hashes: np.ndarray) -> np.ndarray:
    """uint64 hashes → (N, 8) uint8 rows, the layout FAISS binary indexes take."""
    return np.ascontiguousarray(np.asarray(hashes, dtype=np.uint64)).view(np.uint8).reshape(-1, 8)


def _binary_index(codes: np.ndarray, max_distance: int) -> Any:
    import faiss

    tables = max_distance + 1
    if len(codes) > BINARY_FLAT_MAX and 64 // tables >= 8:
        index = faiss.IndexBinaryMultiHash(64, tables, 64 // tables)
    else:
        index = faiss.IndexBinaryFlat(64)
    index.add(codes)
    return index


def hamming_matches(queries: np.ndarray, database: np.ndarray, max_distance: int) -> Pairs:
    """(query row, database row, distance) for every pair of uint64 hashes within distance."""
    if len(queries) == 0 or len(database) == 0:
        return Pairs.empty()
    index = _binary_index(_codes(database), max_distance)
    lims, distances, ids = index.range_search(_codes(queries), max_distance + 1)
    rows = np.repeat(np.arange(len(queries), dtype=np.int64), np.diff(lims).astype(np.int64))
    return Pairs(rows, ids.astype(np.int64), distances.astype(np.float32))


def hamming_pairs(hashes: np.ndarray, max_distance: int) -> Pairs:
    """Unordered pairs (i < j) of uint64 hashes within `max_distance` bits, each once."""
    found = hamming_matches(hashes, hashes, max_distance)
    keep = found.left < found.right
    return Pairs(found.left[keep], found.right[keep], found.value[keep])


def semantic_duplicates(
    embeddings: np.ndarray,
    rank: np.ndarray,
    threshold: float,
    kind: Kind = "auto",
    flat_max: int = FLAT_MAX,
    nprobe: int = NPROBE,
) -> tuple[np.ndarray, np.ndarray]:
    """(duplicate_of, cosine) per row of normalised `embeddings` at cosine ≥ `threshold`."""
    pairs = self_pairs(embeddings, threshold, kind, flat_max, nprobe)
    return greedy_survivors(rank, pairs)
