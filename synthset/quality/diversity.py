"""Diversity and what curation saw, per prompt and overall, from a version's own tables.

- Vendi score (Friedman & Dieng 2023, `synthset.curation.metrics.vendi_score`) of the kept
  images' features: the effective number of distinct images, overall and per prompt.
- Duplicate rate among raw generations: images rejected as `duplicate_of:*` ÷ images
  generated (kept + rejected), per prompt (manifest item) and overall. Duplicates of an
  earlier version count too, and are also given apart.
- CLIP scores of kept images per prompt (quantiles), rejections by reason, tag frequencies
  (`clip_tags`: the zero-shot tags curation gave each kept image).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from synthset.curation.metrics import vendi_score

DUPLICATE = "duplicate"
SCORE_KEYS = ("clip_score_mean", "clip_score_p10", "clip_score_p50", "clip_score_p90")


def reason_kind(reasons: pd.Series) -> pd.Series:
    """`duplicate_of:<id>` → `duplicate`; other reasons as they are."""
    return reasons.astype(str).str.replace(r"^duplicate_of:.*$", DUPLICATE, regex=True)


def _scores(values: pd.Series) -> dict[str, float | None]:
    v = values.dropna().astype(float)
    if not len(v):
        return dict.fromkeys(SCORE_KEYS, None)
    q = np.quantile(v, [0.1, 0.5, 0.9])
    return {
        "clip_score_mean": float(v.mean()),
        "clip_score_p10": float(q[0]),
        "clip_score_p50": float(q[1]),
        "clip_score_p90": float(q[2]),
    }


def per_prompt(
    kept: pd.DataFrame, rejected: pd.DataFrame, features: np.ndarray
) -> list[dict[str, Any]]:
    """One row per manifest item: prompt, generated, kept, duplicates, duplicate rate, Vendi
    of its kept images, CLIP-score quantiles. `features` are aligned with `kept`."""
    duplicate = (reason_kind(rejected["reject_reason"]) == DUPLICATE).to_numpy(bool)
    prior = rejected["dup_version"].notna().to_numpy() if "dup_version" in rejected else None
    scores = kept["clip_score"] if "clip_score" in kept else pd.Series(np.nan, index=kept.index)
    prompts = pd.concat([kept[["item_index", "prompt"]], rejected[["item_index", "prompt"]]])
    prompts = prompts.drop_duplicates("item_index").set_index("item_index")["prompt"]
    none = np.zeros(0, np.int64)
    mine, dropped = kept.groupby("item_index").indices, rejected.groupby("item_index").indices
    rows = []
    for item in sorted(prompts.index):
        k, r = mine.get(item, none), dropped.get(item, none)
        duplicates, generated = int(duplicate[r].sum()), len(k) + len(r)
        rows.append(
            {
                "item": int(item),
                "prompt": str(prompts[item]),
                "generated": generated,
                "kept": len(k),
                "duplicates": duplicates,
                "duplicates_of_earlier_versions": int(prior[r].sum()) if prior is not None else 0,
                "duplicate_rate": duplicates / generated if generated else None,
                "vendi": vendi_score(features[k]) if len(k) else None,
                **_scores(scores.iloc[k]),
            }
        )
    return rows


def overall(
    kept: pd.DataFrame, rejected: pd.DataFrame, features: np.ndarray, prompts: list[dict]
) -> dict[str, Any]:
    """Dataset-level diversity: Vendi of all kept images, duplicate rates overall and the
    highest per prompt, mean per-prompt Vendi, kept CLIP-score mean."""
    generated = len(kept) + len(rejected)
    kinds = reason_kind(rejected["reject_reason"]) if len(rejected) else pd.Series(dtype=str)
    duplicates = int((kinds == DUPLICATE).sum())
    rates = [p["duplicate_rate"] for p in prompts if p["duplicate_rate"] is not None]
    vendis = [p["vendi"] for p in prompts if p["vendi"] is not None]
    scores = kept["clip_score"].dropna().astype(float) if "clip_score" in kept else pd.Series()
    return {
        "images": len(kept),
        "generated": generated,
        "rejected": len(rejected),
        "duplicates": duplicates,
        "duplicate_rate": duplicates / generated if generated else None,
        "duplicate_rate_max_prompt": max(rates) if rates else None,
        "vendi": vendi_score(features) if len(features) else None,
        "vendi_per_prompt_mean": float(np.mean(vendis)) if vendis else None,
        "clip_score_mean": float(scores.mean()) if len(scores) else None,
    }


def rejections(rejected: pd.DataFrame, generated: int) -> list[dict[str, Any]]:
    """Rejected images per reason, with their share of all generated images."""
    if not len(rejected):
        return []
    counts = reason_kind(rejected["reject_reason"]).value_counts().sort_index()
    return [
        {"reason": str(reason), "images": int(n), "share": int(n) / max(generated, 1)}
        for reason, n in counts.items()
    ]


def tag_frequencies(kept: pd.DataFrame) -> list[dict[str, Any]]:
    """How many kept images carry each zero-shot tag (`clip_tags`), most frequent first."""
    if "clip_tags" not in kept or not len(kept):
        return []
    tags = kept["clip_tags"].dropna().map(list).explode().dropna()
    counts = tags.value_counts()
    return [
        {"tag": str(tag), "images": int(n), "share": int(n) / len(kept)}
        for tag, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    ]
