"""FAISS indexes of normalised embeddings and the pairs above a cosine threshold.

Small sets use an exact `IndexFlatIP`. Large ones use an `IndexIVFFlat` (spherical k-means
cells, vectors stored in full): a query probes the `nprobe` cells nearest to it and is
compared exactly with every vector there. The comparison runs cell by cell as one batched
inner-product search over all queries that probe the cell, so it is matrix multiplication,
not one query at a time, spread over the available cores; a pair is found when either
side's probes reach the other's cell, and every reported cosine is exact. The coarse
quantizer assigns cells in a `QUANTIZER_DIM`-dimensional PCA projection of the embeddings
(part of the stored index), which chooses cells as well as the full vectors do at a fraction
of the cost. `auto` picks flat up to `FLAT_MAX` vectors.

A version folder keeps its index under `index/`: `semantic.faiss`, `ids.parquet` (FAISS id →
sample id, the id map), `embeddings.npy` (float16) and `index.json` (which scorer made the
embeddings and which index this is).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

FLAT_MAX = 20_000
NPROBE = 6
QUANTIZER_DIM = 64
REDUCED_DIM = 128
INDEX_DIR = "index"
_POINTS_PER_CELL = 20
_KMEANS_ITERATIONS = 10
_TOLERANCE = 1e-6
_BOUND_SLACK = 1e-4

Kind = Literal["auto", "flat", "ivf"]


@dataclass(frozen=True)
class Pairs:
    """Pairs of rows and what relates them: `left[k]` ~ `right[k]` at `value[k]`.

    `value` is the exact cosine for embeddings, the Hamming distance for hashes.
    """

    left: np.ndarray
    right: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.left)

    @staticmethod
    def empty() -> Pairs:
        return Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))


def _faiss() -> Any:
    import faiss

    return faiss


def choose_kind(n: int, kind: Kind = "auto", flat_max: int = FLAT_MAX) -> str:
    """`flat` or `ivf` for `n` vectors; `auto` is flat up to `flat_max` vectors."""
    if kind != "auto":
        return kind
    return "flat" if n <= flat_max else "ivf"


def cell_count(n: int) -> int:
    """IVF cells for `n` vectors: the power of two nearest 2·√n, at least 16."""
    return max(16, 2 ** round(math.log2(2 * math.sqrt(max(n, 1)))))


def _as_float32(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _train_quantizer(vectors: np.ndarray, nlist: int, seed: int) -> Any:
    """Spherical k-means centroids, in a normalised PCA projection when `d > QUANTIZER_DIM`."""
    faiss = _faiss()
    n, d = vectors.shape
    rng = np.random.default_rng(seed)
    sample = min(n, nlist * _POINTS_PER_CELL)
    train = vectors if sample == n else vectors[np.sort(rng.choice(n, sample, replace=False))]
    transforms = []
    if d > QUANTIZER_DIM:
        pca = faiss.PCAMatrix(d, QUANTIZER_DIM)
        pca.train(train)
        transforms = [pca, faiss.NormalizationTransform(QUANTIZER_DIM, 2.0)]
        train = transforms[1].apply(pca.apply(train))
    kmeans = faiss.Kmeans(
        train.shape[1],
        nlist,
        niter=_KMEANS_ITERATIONS,
        spherical=True,
        seed=seed,
        min_points_per_centroid=1,
        max_points_per_centroid=_POINTS_PER_CELL,
    )
    kmeans.train(train)
    quantizer = faiss.IndexFlatIP(train.shape[1])
    quantizer.add(kmeans.centroids)
    if not transforms:
        return quantizer
    chain = faiss.IndexPreTransform(quantizer)
    for transform in reversed(transforms):
        chain.prepend_transform(transform)
    return chain


def _ivf(x: np.ndarray, nlist: int, nprobe: int, seed: int) -> tuple[Any, np.ndarray]:
    """A trained coarse quantizer and each vector's `nprobe` nearest cells."""
    quantizer = _train_quantizer(x, nlist, seed)
    _, probes = quantizer.search(x, min(nprobe, nlist))
    return quantizer, probes


def build_index(
    vectors: np.ndarray,
    kind: Kind = "auto",
    flat_max: int = FLAT_MAX,
    nprobe: int = NPROBE,
    seed: int = 0,
) -> Any:
    """An index of `vectors` whose FAISS ids are their row numbers."""
    faiss = _faiss()
    x = _as_float32(vectors)
    n, d = x.shape
    if choose_kind(n, kind, flat_max) == "flat" or n == 0:
        index = faiss.IndexFlatIP(d)
        index.add(x)
        return index
    nlist = min(cell_count(n), n)
    quantizer, probes = _ivf(x, nlist, 1, seed)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.is_trained = True
    ids = np.arange(n, dtype=np.int64)
    home = np.ascontiguousarray(probes[:, 0], dtype=np.int64)
    index.add_core(n, faiss.swig_ptr(x), faiss.swig_ptr(ids), faiss.swig_ptr(home))
    index.nprobe = min(nprobe, nlist)
    return index


def _stored_cell(invlists: Any, d: int) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
    """(vectors, ids) of one inverted list of a FAISS IVF index."""
    faiss = _faiss()

    def cell(c: int) -> tuple[np.ndarray, np.ndarray]:
        size = invlists.list_size(c)
        if size == 0:
            return np.zeros((0, d), np.float32), np.zeros(0, np.int64)
        codes = faiss.rev_swig_ptr(invlists.get_codes(c), size * d * 4)
        ids = faiss.rev_swig_ptr(invlists.get_ids(c), size)
        return np.array(codes).view(np.float32).reshape(size, d), np.array(ids, dtype=np.int64)

    return cell


def _range(index: Any, queries: np.ndarray, threshold: float) -> tuple[np.ndarray, ...]:
    lims, sims, ids = index.range_search(queries, threshold - _TOLERANCE)
    rows = np.repeat(np.arange(len(queries), dtype=np.int64), np.diff(lims).astype(np.int64))
    return rows, ids.astype(np.int64), sims.astype(np.float32)


@dataclass(frozen=True)
class _Reduced:
    """Vectors as coordinates on their top principal axes plus the norm of what is left.

    For unit vectors x = a + r (a in the span of the axes, r orthogonal to it),
    x·y = a·b + r·s ≥ t needs a·b ≥ t − |r||s| (Cauchy–Schwarz): searching the short
    coordinates with that bound misses no pair, and the exact cosine of each candidate is
    then taken from the full vectors.
    """

    full: np.ndarray
    coords: np.ndarray
    rest: np.ndarray

    @staticmethod
    def of(x: np.ndarray, dim: int, seed: int) -> _Reduced:
        rng = np.random.default_rng(seed)
        sample = x if len(x) <= 20_000 else x[rng.choice(len(x), 20_000, replace=False)]
        _, axes = np.linalg.eigh(sample.astype(np.float64).T @ sample)
        basis = np.ascontiguousarray(axes[:, ::-1][:, :dim], dtype=np.float32)
        coords = x @ basis
        squared = np.einsum("ij,ij->i", x, x) - np.einsum("ij,ij->i", coords, coords)
        rest = np.sqrt(np.maximum(squared, 0.0))
        return _Reduced(x, coords, rest)

    def exact(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", self.full[left], self.full[right]).astype(np.float32)


def _join(
    queries: np.ndarray,
    probes: np.ndarray,
    nlist: int,
    cell: Callable[[int], tuple[np.ndarray, np.ndarray]],
    threshold: float,
    reduced: _Reduced | None = None,
) -> Pairs:
    """Compare every query with every vector of the cells it probes, one cell at a time.

    All queries that probe a cell are searched against it in one exact range search (a
    matrix product); cells are spread over the cores FAISS may use. With `reduced`,
    `queries` and the cells' vectors are its coordinates and the search keeps every pair
    its bound allows, then checks each candidate's exact cosine.
    """
    faiss = _faiss()
    flat_cells = probes.ravel()
    order = np.argsort(flat_cells, kind="stable")
    bounds = np.searchsorted(flat_cells[order], np.arange(nlist + 1))
    owners = order // probes.shape[1]
    d = queries.shape[1]

    def one(c: int) -> tuple[np.ndarray, ...] | None:
        members = owners[bounds[c] : bounds[c + 1]]
        if len(members) == 0:
            return None
        vectors, ids = cell(c)
        if len(ids) == 0:
            return None
        flat = faiss.IndexFlatIP(d)
        flat.add(vectors)
        if reduced is None:
            rows, hits, sims = _range(flat, queries[members], threshold)
            return members[rows], ids[hits], sims
        rest_q, rest_d = reduced.rest[members], reduced.rest[ids]
        radius = threshold - float(rest_q.max() * rest_d.max()) - _BOUND_SLACK
        rows, hits, sims = _range(flat, queries[members], radius)
        close = sims >= threshold - rest_q[rows] * rest_d[hits] - _BOUND_SLACK
        left, right = members[rows[close]], ids[hits[close]]
        sims = reduced.exact(left, right)
        keep = sims >= threshold - _TOLERANCE
        return left[keep], right[keep], sims[keep]

    workers = faiss.omp_get_max_threads()
    if workers == 1:
        found = [one(c) for c in range(nlist)]
    else:
        with ThreadPoolExecutor(
            workers, initializer=faiss.omp_set_num_threads, initargs=(1,)
        ) as pool:
            found = list(pool.map(one, range(nlist)))
    parts = [f for f in found if f is not None]
    if not parts:
        return Pairs.empty()
    return Pairs(*(np.concatenate([p[k] for p in parts]) for k in range(3)))


def search_pairs(index: Any, queries: np.ndarray, threshold: float) -> Pairs:
    """(query row, index id, cosine) for every indexed vector with cosine ≥ `threshold`.

    Exact for a flat index. For IVF, each query is compared with every vector in its
    `index.nprobe` nearest cells.
    """
    faiss = _faiss()
    q = _as_float32(queries)
    if len(q) == 0 or index.ntotal == 0:
        return Pairs.empty()
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return Pairs(*_range(index, q, threshold))
    _, probes = ivf.quantizer.search(q, ivf.nprobe)
    return _join(q, probes, ivf.nlist, _stored_cell(ivf.invlists, ivf.d), threshold)


def self_pairs(
    vectors: np.ndarray,
    threshold: float,
    kind: Kind = "auto",
    flat_max: int = FLAT_MAX,
    nprobe: int = NPROBE,
    seed: int = 0,
) -> Pairs:
    """Unordered pairs (i < j) of rows of `vectors` with cosine ≥ `threshold`, each once.

    The IVF path is the join of `search_pairs` with the vectors as both queries and cells
    (each vector in its nearest cell), without copying them into an index first; vectors
    longer than `REDUCED_DIM` are searched on their top principal axes with an exact bound
    (see `_Reduced`), which finds the same pairs at a fraction of the cost.
    """
    x = _as_float32(vectors)
    n = len(x)
    if n < 2:
        return Pairs.empty()
    if choose_kind(n, kind, flat_max) == "flat":
        found = search_pairs(build_index(x, "flat"), x, threshold)
    else:
        nlist = min(cell_count(n), n)
        _, probes = _ivf(x, nlist, nprobe, seed)
        home = probes[:, 0]
        order = np.argsort(home, kind="stable")
        bounds = np.searchsorted(home[order], np.arange(nlist + 1))
        reduced = _Reduced.of(x, REDUCED_DIM, seed) if x.shape[1] > REDUCED_DIM else None
        searched = x if reduced is None else reduced.coords

        def cell(c: int) -> tuple[np.ndarray, np.ndarray]:
            ids = order[bounds[c] : bounds[c + 1]]
            return searched[ids], ids

        found = _join(searched, probes, nlist, cell, threshold, reduced)
    keep = found.left != found.right
    i, j = found.left[keep], found.right[keep]
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    _, first = np.unique(lo * n + hi, return_index=True)
    return Pairs(lo[first], hi[first], found.value[keep][first])


@dataclass
class StoredIndex:
    """A version's semantic index with its id map and the identity of its embeddings."""

    index: Any
    sample_ids: np.ndarray
    info: dict[str, Any]


def save_index(
    folder: Path,
    embeddings: np.ndarray,
    sample_ids: list[str],
    scorer: dict[str, Any],
    kind: Kind = "auto",
) -> dict[str, Any]:
    """Write `index/` into a version folder: FAISS index, id map, float16 embeddings, info."""
    faiss = _faiss()
    out = folder / INDEX_DIR
    out.mkdir(parents=True, exist_ok=True)
    half = np.asarray(embeddings, dtype=np.float16)
    np.save(out / "embeddings.npy", half)
    index = build_index(half.astype(np.float32), kind)
    faiss.write_index(index, str(out / "semantic.faiss"))
    pd.DataFrame({"sample_id": sample_ids}).to_parquet(out / "ids.parquet", index=False)
    ivf = faiss.try_extract_index_ivf(index)
    info = {
        "scorer": scorer,
        "dim": int(half.shape[1]) if half.ndim == 2 else 0,
        "count": len(sample_ids),
        "kind": "flat" if ivf is None else "ivf",
        "nlist": None if ivf is None else int(ivf.nlist),
        "nprobe": None if ivf is None else int(ivf.nprobe),
    }
    (out / "index.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def load_index(folder: Path) -> StoredIndex | None:
    """The `index/` of a version folder, or None if it has none."""
    out = folder / INDEX_DIR
    if not (out / "semantic.faiss").is_file():
        return None
    index = _faiss().read_index(str(out / "semantic.faiss"))
    info = json.loads((out / "index.json").read_text())
    ivf = _faiss().try_extract_index_ivf(index)
    if ivf is not None and info.get("nprobe"):
        ivf.nprobe = int(info["nprobe"])
    ids = pd.read_parquet(out / "ids.parquet")["sample_id"].to_numpy()
    return StoredIndex(index, ids, info)
