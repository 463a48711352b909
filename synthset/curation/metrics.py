"""Dataset-level figures of a curated version: quality, yield, duplicates and diversity.

Diversity is measured per item (one prompt) over the kept images' CLIP embeddings:

- the Vendi score (Friedman & Dieng, 2023): exp of the entropy of the eigenvalues of the
  cosine-similarity matrix divided by n; 1 when all images are the same, n when they are
  mutually orthogonal: an effective number of distinct images;
- the mean pairwise cosine distance, 1 − mean cos over distinct pairs.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


def vendi_score(embeddings: np.ndarray) -> float:
    """Vendi score of L2-normalised row vectors (NaN for an empty set)."""
    x = np.asarray(embeddings, dtype=np.float64)
    n = len(x)
    if n == 0:
        return float("nan")
    gram = x.T @ x if n > x.shape[1] else x @ x.T
    eigenvalues = np.clip(np.linalg.eigvalsh(gram / n), 0.0, None)
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    eigenvalues /= eigenvalues.sum()
    return float(np.exp(-(eigenvalues * np.log(eigenvalues)).sum()))


def mean_pairwise_distance(embeddings: np.ndarray) -> float:
    """1 − the mean cosine over distinct pairs of normalised rows (NaN below two rows)."""
    x = np.asarray(embeddings, dtype=np.float64)
    n = len(x)
    if n < 2:
        return float("nan")
    total = x.sum(axis=0)
    mean_cos = (total @ total - (x * x).sum()) / (n * (n - 1))
    return float(1.0 - mean_cos)


def item_table(
    rows: pd.DataFrame,
    embeddings: np.ndarray,
    counts: Mapping[int, int],
    prompts: Mapping[int, str],
) -> pd.DataFrame:
    """One row per manifest item: wanted, attempted, kept, shortfall, mean score, diversity.

    `rows` are all generated rows with `reject_reason` (None when kept), `item_index` and
    `clip_score`; `embeddings` are aligned with them.
    """
    kept = rows["reject_reason"].isna().to_numpy()
    records = []
    for item in sorted(counts):
        mine = (rows["item_index"] == item).to_numpy()
        chosen = mine & kept
        scores = rows.loc[chosen, "clip_score"].astype(float)
        vectors = embeddings[chosen]
        records.append(
            {
                "item": item,
                "prompt": prompts[item],
                "count": counts[item],
                "attempted": int(mine.sum()),
                "kept": int(chosen.sum()),
                "shortfall": max(0, counts[item] - int(chosen.sum())),
                "mean_clip_score": float(scores.mean()) if len(scores) else float("nan"),
                "vendi": vendi_score(vectors),
                "pairwise_distance": mean_pairwise_distance(vectors),
            }
        )
    return pd.DataFrame.from_records(records)


def summary(rows: pd.DataFrame, items: pd.DataFrame) -> dict[str, float]:
    """Dataset-level metrics: counts per reject reason, yield, duplicates, score, diversity."""
    reasons = rows["reject_reason"].fillna("kept").astype(str)
    kind = reasons.str.replace(r"^duplicate_of:.*$", "duplicate", regex=True)
    readable = rows["status"].eq("ok") & rows["decode_error"].isna()
    generated = len(rows)
    kept = int((kind == "kept").sum())
    duplicates = int((kind == "duplicate").sum())
    out: dict[str, float] = {
        "generated": generated,
        "kept": kept,
        "kept_fraction": kept / generated if generated else 0.0,
        "duplicate_rate": duplicates / max(int(readable.sum()), 1),
        "mean_clip_score": float(rows.loc[kind == "kept", "clip_score"].astype(float).mean())
        if kept
        else 0.0,
        "shortfall": int(items["shortfall"].sum()),
        "items_short": int((items["shortfall"] > 0).sum()),
    }
    for reason, n in kind[kind != "kept"].value_counts().sort_index().items():
        out[f"rejected.{reason}"] = int(n)
    for tier in ("exact", "perceptual", "semantic"):
        out[f"duplicates.{tier}"] = int(rows["dup_tier"].eq(tier).sum())
    out["duplicates.prior_versions"] = int(rows["dup_version"].notna().sum())
    for column in ("vendi", "pairwise_distance"):
        values = items[column].dropna()
        if len(values):
            out[f"diversity.{column}_mean"] = float(values.mean())
    return out
