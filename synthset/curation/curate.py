"""Decide, over a whole run, which generated images are kept and why the others are not.

The rules run in a fixed order, each on what the previous ones left, and the first that
rejects a row names its `reject_reason`:

1. `generation_failed`: the generator returned an error instead of an image;
2. `unreadable`: the image file could not be decoded;
3. `blank`: near-uniform image (contrast below `blank_contrast`), when `drop_blank`;
4. `clip_below_threshold`: CLIP score below `min_clip_score`;
4b. the manifest's `filters` in their order, each with its own reason (`synthset.curation.plugins`);
5. `duplicate_of:<sample_id>`: exact ▸ perceptual ▸ semantic, each tier first against prior
   versions (their image stays, it is published), then within the run (the survivor is the
   one with the higher CLIP score, then the smaller sample id);
6. `not_in_top_fraction`: outside the best `keep_top_fraction` by CLIP score, per prompt or
   over all images;
7. `surplus`: the item already has its `count` images (top-ups may overshoot); lowest image
   indices stay.

Every generated row ends up either kept or with a reason: kept + rejected = generated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthset.curation.config import SCORE_COLUMNS, CurationConfig
from synthset.curation.decisions import Decisions
from synthset.curation.dedup import (
    rank_order,
)
from synthset.curation.filters import surplus, top_fraction
from synthset.curation.metrics import item_table, summary
from synthset.curation.plugins import base as plugins
from synthset.curation.prior import PriorVersions
from synthset.curation.score import read_scores, scored_by
from synthset.curation.tiers import TIERS
from synthset.shards import image_problems, read_shard_rows


@dataclass
class Pool:
    """Every generated row of a run with its scores, and the embeddings in the same order."""

    rows: pd.DataFrame
    embeddings: np.ndarray
    scorer: dict[str, Any] | None

    def __len__(self) -> int:
        return len(self.rows)


def _shard_pool(folder: Path) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any] | None]:
    rows = read_shard_rows(folder)
    scorer = scored_by(folder)
    if scorer is None:
        raise ValueError(f"shard {folder} is not scored; run score_shard on it first")
    scores, embeddings = read_scores(folder)
    shared = [c for c in scores.columns if c in rows.columns and c != "sample_id"]
    merged = rows.merge(scores, on="sample_id", how="left", suffixes=("_setting", ""))
    for column in shared:
        filled = merged[column].where(merged[column].notna(), merged[f"{column}_setting"])
        merged[column] = filled.astype(rows[column].dtype) if filled.notna().all() else filled
        merged = merged.drop(columns=f"{column}_setting")
    merged["decode_error"] = _still_readable(folder, merged)
    aligned = np.zeros((len(merged), embeddings.shape[1]), dtype=np.float16)
    position = pd.Series(np.arange(len(scores)), index=scores["sample_id"])
    found = merged["sample_id"].map(position)
    has = found.notna().to_numpy()
    aligned[has] = embeddings[found[has].astype(np.int64).to_numpy()]
    return merged, aligned, scorer


def _still_readable(folder: Path, rows: pd.DataFrame) -> pd.Series:
    """`decode_error`, also set for images that changed since they were scored (truncated,
    deleted, replaced by a link), so they are rejected as `unreadable`, never published."""
    errors = rows["decode_error"].astype(object) if "decode_error" in rows else None
    errors = pd.Series([None] * len(rows), dtype=object) if errors is None else errors.copy()
    check = (rows["status"] == "ok").to_numpy() & errors.isna().to_numpy()
    problems = image_problems(folder, rows[check])
    errors[check] = pd.Series(problems, index=errors.index[check], dtype=object)
    return errors.where(errors.notna(), None)


def load_pool(folders: Sequence[Path]) -> Pool:
    """The scored shards of a run as one pool, rows in (item, image index) order."""
    parts = [_shard_pool(Path(f)) for f in folders]
    scorers = {repr(p[2]) for p in parts}
    if len(scorers) > 1:
        raise ValueError("shards were scored by different scorers; score them again")
    rows = pd.concat([p[0] for p in parts], ignore_index=True)
    embeddings = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 0), np.float16)
    order = rows.sort_values(["item_index", "index"], kind="stable").index.to_numpy()
    return Pool(
        rows.loc[order].reset_index(drop=True),
        embeddings[order],
        parts[0][2] if parts else None,
    )


def extend_pool(pool: Pool, folders: Sequence[Path]) -> Pool:
    """`pool` with the rows of further scored shards (top-ups), in (item, index) order."""
    if not folders:
        return pool
    more = load_pool(folders)
    rows = pd.concat([pool.rows, more.rows], ignore_index=True)
    embeddings = np.concatenate([pool.embeddings, more.embeddings])
    order = rows.sort_values(["item_index", "index"], kind="stable").index.to_numpy()
    return Pool(rows.loc[order].reset_index(drop=True), embeddings[order], pool.scorer)


@dataclass
class Curation:
    """A run's decisions: `rows` with `reject_reason` (None when kept) and the other decision
    columns, embeddings aligned with them, the per-item table and dataset metrics."""

    rows: pd.DataFrame
    embeddings: np.ndarray
    items: pd.DataFrame
    metrics: dict[str, float]
    scorer: dict[str, Any] | None
    prior_versions: list[int] = field(default_factory=list)
    prior_skipped: list[str] = field(default_factory=list)

    @property
    def kept(self) -> np.ndarray:
        """Boolean mask of the kept rows."""
        return self.rows["reject_reason"].isna().to_numpy()

    def rejected_counts(self) -> dict[str, int]:
        """Rejected rows per reason, duplicates counted together as `duplicate`."""
        reasons = self.rows["reject_reason"].dropna().astype(str)
        kinds = reasons.str.replace(r"^duplicate_of:.*$", "duplicate", regex=True)
        return {str(k): int(v) for k, v in kinds.value_counts().sort_index().items()}

    def shortfall(self) -> pd.DataFrame:
        """Items that did not reach their count."""
        return self.items[self.items["shortfall"] > 0].reset_index(drop=True)


def _scorer_columns(config: CurationConfig) -> list[str]:
    return [c for spec in config.scorers for c in plugins.scorer_class(spec).columns]


def curate(
    pool: Pool,
    config: CurationConfig,
    counts: Mapping[int, int],
    prompts: Mapping[int, str],
    prior: PriorVersions | None = None,
) -> Curation:
    """Apply the rules of this module to `pool`; `counts` and `prompts` are per item index."""
    prior = prior or PriorVersions()
    rows = pool.rows.copy()
    for column in (*SCORE_COLUMNS, *_scorer_columns(config)):
        if column not in rows:
            rows[column] = None
    if "decode_error" not in rows:
        rows["decode_error"] = None
    contrast = pd.to_numeric(rows["contrast"], errors="coerce")
    rows["blank"] = (contrast < config.blank_contrast).where(contrast.notna(), None)
    ids = rows["sample_id"].to_numpy()
    d = Decisions(len(rows), ids)
    status = rows["status"].to_numpy()
    failed = np.flatnonzero(status != "ok")
    d.reject(failed, "generation_failed", rows["error"].to_numpy()[failed])
    bad = np.flatnonzero((status == "ok") & rows["decode_error"].notna().to_numpy())
    d.reject(bad, "unreadable", rows["decode_error"].to_numpy()[bad])
    if config.drop_blank:
        open_ = d.open()
        blank = open_[rows["blank"].to_numpy()[open_] == True]  # noqa: E712 (object column)
        d.reject(
            blank,
            "blank",
            [f"contrast {c:.4f} < {config.blank_contrast:g}" for c in contrast.to_numpy()[blank]],
        )
    score = pd.to_numeric(rows["clip_score"], errors="coerce").to_numpy()
    if config.min_clip_score is not None:
        open_ = d.open()
        low = open_[score[open_] < config.min_clip_score]
        d.reject(
            low,
            "clip_below_threshold",
            [f"clip score {s:.2f} < {config.min_clip_score:g}" for s in score[low]],
        )
    for spec in config.filters:
        check = plugins.build_filter(spec)
        open_ = d.open()
        mask, details = check.reject(rows.iloc[open_])
        d.reject(open_[np.asarray(mask, dtype=bool)], check.reason, details)
    rank = rank_order(score, ids)
    for tier in TIERS.values():
        if tier.enabled(config.dedup):
            tier.run(d, rows, pool.embeddings, rank, prior, config)
    if config.keep_top_fraction is not None:
        open_ = d.open()
        groups = rows["prompt"].to_numpy()[open_] if config.top_fraction_by == "prompt" else None
        out = open_[top_fraction(rank[open_], groups, config.keep_top_fraction)]
        d.reject(
            out,
            "not_in_top_fraction",
            f"outside the top {config.keep_top_fraction:g} by CLIP score "
            f"of its {config.top_fraction_by}",
        )
    open_ = d.open()
    item = rows["item_index"].to_numpy()
    extra = open_[surplus(item[open_], rows["index"].to_numpy()[open_], counts)]
    d.reject(
        extra, "surplus", [f"items[{i}] already has its {counts[i]} images" for i in item[extra]]
    )
    for name, values in d.columns.items():
        rows[name] = values
    items = item_table(rows, pool.embeddings.astype(np.float32), counts, prompts)
    items.insert(4, "budget", [config.max_attempts(int(c)) for c in items["count"]])
    return Curation(
        rows=rows,
        embeddings=pool.embeddings,
        items=items,
        metrics=summary(rows, items),
        scorer=pool.scorer,
        prior_versions=prior.versions,
        prior_skipped=list(prior.skipped),
    )
