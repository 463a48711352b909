"""Distances to closest records, computed with FAISS.

The distance between two rows is SDMetrics' DCR distance: the mean over columns of a
per-column distance, |a − b| / range for numeric and datetime columns (range of the real
training data, capped at 1; two missing values are at 0, a missing and a present one at 1)
and 0 or 1 (equal or not) for categorical and boolean ones. It is an L1 distance in an
embedding, so FAISS finds nearest neighbours exactly:

- a numeric column becomes (x − min)/range clipped to [0, 1] — exact for values inside the
  real range, which a real row and a synthesizer that decodes within the bounds always have;
  with missing values it becomes (u/2, (1 − u)/2, 0), or (0, 0, 1/2) for a missing cell;
- a categorical column becomes a one-hot vector scaled by 1/2 (a missing value is a category).

Up to `EXACT_PAIRS` query × reference pairs, the search is brute force (`IndexFlat`, L1).
Beyond, an inverted-file index (`IndexIVFFlat`, L1) probes `nprobe` of √n-ish lists: the
distances it returns are never smaller than the true ones, so recall below 1 can only make a
row look farther away; `search_recall` measures it on a sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthset.privacy.tabular.encoder import as_float, category_key
from synthset.privacy.tabular.schema import TableSchema

EXACT_PAIRS = 5e8
NPROBE = 16


def _faiss():
    import faiss

    return faiss


@dataclass
class DistanceSpace:
    """The embedding of one schema, with ranges and category sets of the real data."""

    schema: TableSchema
    lows: dict[str, float]
    ranges: dict[str, float]
    nullable: dict[str, bool]
    categories: dict[str, list]

    @classmethod
    def fit(cls, real: pd.DataFrame, schema: TableSchema, *others: pd.DataFrame) -> DistanceSpace:
        """Ranges from `real` (as SDMetrics does); category sets and missingness from all."""
        lows, ranges, nullable, categories = {}, {}, {}, {}
        frames = [real, *others]
        for spec in schema.columns:
            name = spec.name
            if spec.kind in ("numeric", "datetime"):
                values = as_float(real[name], spec)
                lo, hi = np.nanmin(values), np.nanmax(values)
                lows[name], ranges[name] = float(lo), float(hi - lo) or 1.0
                nullable[name] = any(f[name].isna().any() for f in frames)
            else:
                seen: dict = {}
                for f in frames:
                    for v in f[name].astype(object).where(f[name].notna(), None):
                        seen.setdefault(category_key(v), None)
                categories[name] = list(seen)
        return cls(schema, lows, ranges, nullable, categories)

    @property
    def dim(self) -> int:
        d = 0
        for spec in self.schema.columns:
            if spec.name in self.ranges:
                d += 3 if self.nullable[spec.name] else 1
            else:
                d += len(self.categories[spec.name])
        return d

    def embed(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows as float32 vectors whose L1 distance / n_columns is the DCR distance."""
        out = np.zeros((len(frame), self.dim), dtype=np.float32)
        at = 0
        for spec in self.schema.columns:
            name = spec.name
            if name in self.ranges:
                values = as_float(frame[name], spec)
                u = np.clip((values - self.lows[name]) / self.ranges[name], 0.0, 1.0)
                if self.nullable[name]:
                    missing = np.isnan(values)
                    out[:, at] = np.where(missing, 0.0, u / 2)
                    out[:, at + 1] = np.where(missing, 0.0, (1 - u) / 2)
                    out[:, at + 2] = np.where(missing, 0.5, 0.0)
                    at += 3
                else:
                    out[:, at] = u
                    at += 1
            else:
                lookup = {c: i for i, c in enumerate(self.categories[name])}
                values = frame[name].astype(object).where(frame[name].notna(), None)
                tokens = values.map(category_key)
                index = np.array([lookup.get(t, -1) for t in tokens], dtype=np.int64)
                rows = np.flatnonzero(index >= 0)
                out[rows, at + index[rows]] = 0.5
                at += len(lookup)
        return out

    @property
    def n_columns(self) -> int:
        return len(self.schema.columns)


class NeighbourIndex:
    """Nearest rows of a reference set, by DCR distance."""

    def __init__(self, space: DistanceSpace, reference: pd.DataFrame, queries_hint: int = 0):
        faiss = _faiss()
        self.space = space
        vectors = space.embed(reference)
        self.size, d = vectors.shape
        self.exact = self.size * max(queries_hint, 1) <= EXACT_PAIRS or self.size < 4096
        if self.exact:
            self.index = faiss.IndexFlat(d, faiss.METRIC_L1)
        else:
            lists = int(2 ** round(math.log2(max(64.0, 2 * math.sqrt(self.size)))))
            quantizer = faiss.IndexFlat(d, faiss.METRIC_L1)
            self.index = faiss.IndexIVFFlat(quantizer, d, lists, faiss.METRIC_L1)
            rng = np.random.default_rng(0)
            train = vectors[rng.choice(self.size, min(self.size, 64 * lists), replace=False)]
            self.index.train(train)
            self.index.nprobe = NPROBE
        self.index.add(vectors)

    def search(self, queries: pd.DataFrame, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(distances, indices) of the `k` nearest reference rows of each query row."""
        distances, indices = self.index.search(self.space.embed(queries), k)
        return distances.astype(np.float64) / self.space.n_columns, indices


def search_recall(index: NeighbourIndex, queries: pd.DataFrame, sample: int = 1000) -> float:
    """Share of `sample` queries whose nearest neighbour `index` finds exactly."""
    faiss = _faiss()
    rows = queries.iloc[np.random.default_rng(0).permutation(len(queries))[:sample]]
    found, _ = index.search(rows, 1)
    flat = faiss.IndexFlat(index.index.d, faiss.METRIC_L1)
    flat.add(index.index.reconstruct_n(0, index.size) if index.exact else _all_vectors(index))
    exact, _ = flat.search(index.space.embed(rows), 1)
    return float(np.mean(np.isclose(found[:, 0] * index.space.n_columns, exact[:, 0], atol=1e-5)))


def _all_vectors(index: NeighbourIndex) -> np.ndarray:
    ivf = index.index
    ivf.make_direct_map()
    return ivf.reconstruct_n(0, index.size)
