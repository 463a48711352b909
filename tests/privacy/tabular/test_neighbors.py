"""FAISS distances equal SDMetrics' DCR definition, computed here row by row."""

import time

import numpy as np
import pandas as pd
import pytest

from synthset.privacy.tabular.neighbors import DistanceSpace, NeighbourIndex, search_recall
from synthset.privacy.tabular.schema import prepare_table
from tests.privacy.conftest import mixed_frame


def sdmetrics_dcr(row: pd.Series, data: pd.DataFrame, kinds: dict, ranges: dict) -> float:
    """SDMetrics' calculate_dcr for one synthetic row, written out loop by loop."""
    best = np.inf
    for _, other in data.iterrows():
        parts = []
        for name, kind in kinds.items():
            a, b = row[name], other[name]
            if kind in ("numeric", "datetime"):
                if pd.isna(a) and pd.isna(b):
                    parts.append(0.0)
                elif pd.isna(a) or pd.isna(b):
                    parts.append(1.0)
                else:
                    parts.append(min(abs(a - b) / ranges[name], 1.0))
            else:
                same = (pd.isna(a) and pd.isna(b)) or a == b
                parts.append(0.0 if same else 1.0)
        best = min(best, float(np.mean(parts)))
    return best


def test_dcr_matches_the_definition_with_missing_values_and_categories():
    """Exact for values inside the real range (synthesizers decode within their bounds)."""
    table = prepare_table(mixed_frame(120, seed=3), identifiers=["patient"])
    frame = table.frame.copy()
    frame["visit"] = frame["visit"].astype("int64") / 1e9
    table.schema.column("visit").kind = "numeric"
    real, synthetic = frame.iloc[:80], frame.iloc[80:].copy()
    synthetic.loc[synthetic.index[:5], "city"] = None
    for name in ("age", "income", "visit"):
        synthetic[name] = synthetic[name].clip(real[name].min(), real[name].max())
    space = DistanceSpace.fit(real, table.schema, synthetic)
    distances, _ = NeighbourIndex(space, real).search(synthetic, 1)
    kinds = {c.name: c.kind for c in table.schema.columns}
    ranges = {n: float(real[n].max() - real[n].min()) for n, k in kinds.items() if k == "numeric"}
    expected = [sdmetrics_dcr(r, real, kinds, ranges) for _, r in synthetic.iterrows()]
    np.testing.assert_allclose(distances[:, 0], expected, atol=1e-5)


def big_table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 4))
    frame = pd.DataFrame(base @ rng.normal(size=(4, 10)), columns=[f"x{i}" for i in range(10)])
    for j in range(3):
        frame[f"c{j}"] = np.where(base[:, j] > 0, "a", "b")
    return frame


def test_inverted_file_index_keeps_recall_high():
    frame = big_table(30_000, 0)
    table = prepare_table(frame)
    space = DistanceSpace.fit(frame, table.schema)
    index = NeighbourIndex(space, frame, queries_hint=10**6)
    assert not index.exact
    assert search_recall(index, big_table(2000, 1)) >= 0.95


@pytest.mark.slow
def test_100k_by_100k_nearest_neighbours_within_10_seconds():
    real, synthetic = big_table(100_000, 0), big_table(100_000, 1)
    table = prepare_table(real)
    space = DistanceSpace.fit(real, table.schema, synthetic)
    start = time.perf_counter()
    distances, _ = NeighbourIndex(space, real, len(synthetic)).search(synthetic, 1)
    seconds = time.perf_counter() - start
    assert distances.shape == (100_000, 1)
    assert seconds <= 10, f"100k x 100k took {seconds:.1f} s"
