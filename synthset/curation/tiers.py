"""Dedup tiers: one class each, run in order (exact ▸ perceptual ▸ semantic) on the rows still
kept, each first against earlier versions (their image stays: it is published) and then within
the run (the survivor is the one with the higher CLIP score, then the smaller sample id). A
new tier is one class registered here; the manifest's `curation.dedup` switches them.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from synthset.curation.config import CurationConfig, DedupConfig
from synthset.curation.decisions import Decisions
from synthset.curation.dedup import (
    exact_survivors,
    greedy_survivors,
    hamming_matches,
    hamming_pairs,
    semantic_duplicates,
)
from synthset.curation.index import Pairs, search_pairs
from synthset.curation.prior import PriorVersions
from synthset.curation.stats import phash_to_int


class DedupTier:
    """Marks duplicates among the open rows of a curation (`Decisions.duplicate`)."""

    kind: ClassVar[str]

    @staticmethod
    def enabled(config: DedupConfig) -> bool:
        raise NotImplementedError

    @staticmethod
    def run(
        d: Decisions,
        rows: pd.DataFrame,
        embeddings: np.ndarray,
        rank: np.ndarray,
        prior: PriorVersions,
        config: CurationConfig,
    ) -> None:
        raise NotImplementedError


TIERS: dict[str, type[DedupTier]] = {}
"""Registered tiers, in the order they run."""


def register(cls: type[DedupTier]) -> type[DedupTier]:
    TIERS[cls.kind] = cls
    return cls


def _best_prior_match(own: np.ndarray, matched: pd.DataFrame, closest_first: bool) -> pd.DataFrame:
    """One prior match per row (other sample ids only): closest, then oldest version, then id."""
    matched = matched.assign(own=own[matched["row"].to_numpy()])
    matched = matched[matched["sample_id"] != matched["own"]]
    return matched.sort_values(
        ["row", "value", "version", "sample_id"],
        ascending=[True, closest_first, True, True],
        kind="stable",
    ).drop_duplicates("row")


def _unit(vectors: np.ndarray) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    return x / np.where(norms > 0, norms, 1.0)


@register
class Exact(DedupTier):
    """Same decoded pixels (pixel hash)."""

    kind = "exact"

    @staticmethod
    def enabled(config: DedupConfig) -> bool:
        return config.exact

    @staticmethod
    def run(
        d: Decisions,
        rows: pd.DataFrame,
        embeddings: np.ndarray,
        rank: np.ndarray,
        prior: PriorVersions,
        config: CurationConfig,
    ) -> None:
        open_ = d.open()
        hashes = rows["pixel_hash"].to_numpy()[open_]
        old = prior.hashes.dropna(subset=["pixel_hash"])
        if len(old) and len(open_):
            query = pd.DataFrame({"row": open_, "pixel_hash": hashes})
            matched = query.merge(old, on="pixel_hash").assign(value=0.0)
            best = _best_prior_match(d.ids, matched, closest_first=True)
            d.duplicate(
                best["row"].to_numpy(),
                best["sample_id"].to_numpy(),
                "exact",
                [f"exact: same pixels as v{v}" for v in best["version"]],
                best["version"].to_numpy(),
            )
            open_ = d.open()
            hashes = rows["pixel_hash"].to_numpy()[open_]
        dup = exact_survivors(hashes, rank[open_])
        hit = dup >= 0
        d.duplicate(
            open_[hit], d.ids[open_[dup[hit]]], "exact", ["exact: same pixels"] * int(hit.sum())
        )


@register
class Perceptual(DedupTier):
    """pHash within `perceptual_distance` bits (FAISS binary indexes)."""

    kind = "perceptual"

    @staticmethod
    def enabled(config: DedupConfig) -> bool:
        return config.perceptual

    @staticmethod
    def run(
        d: Decisions,
        rows: pd.DataFrame,
        embeddings: np.ndarray,
        rank: np.ndarray,
        prior: PriorVersions,
        config: CurationConfig,
    ) -> None:
        distance = config.dedup.perceptual_distance
        open_ = d.open()
        old = prior.hashes.dropna(subset=["phash"]).reset_index(drop=True)
        if len(old) and len(open_):
            codes = phash_to_int(rows["phash"].to_numpy()[open_])
            found = hamming_matches(codes, phash_to_int(old["phash"]), distance)
            matched = pd.DataFrame(
                {
                    "row": open_[found.left],
                    "value": found.value,
                    "version": old["version"].to_numpy()[found.right],
                    "sample_id": old["sample_id"].to_numpy()[found.right],
                }
            )
            best = _best_prior_match(d.ids, matched, closest_first=True)
            d.duplicate(
                best["row"].to_numpy(),
                best["sample_id"].to_numpy(),
                "perceptual",
                [
                    f"perceptual: pHash distance {int(x)} to v{v}"
                    for x, v in zip(best["value"], best["version"], strict=True)
                ],
                best["version"].to_numpy(),
            )
            open_ = d.open()
        codes = phash_to_int(rows["phash"].to_numpy()[open_])
        dup, dist = greedy_survivors(rank[open_], hamming_pairs(codes, distance))
        hit = dup >= 0
        d.duplicate(
            open_[hit],
            d.ids[open_[dup[hit]]],
            "perceptual",
            [f"perceptual: pHash distance {int(x)}" for x in dist[hit]],
        )


@register
class Semantic(DedupTier):
    """CLIP image embeddings at cosine ≥ `semantic_threshold` (FAISS)."""

    kind = "semantic"

    @staticmethod
    def enabled(config: DedupConfig) -> bool:
        return config.semantic

    @staticmethod
    def run(
        d: Decisions,
        rows: pd.DataFrame,
        embeddings: np.ndarray,
        rank: np.ndarray,
        prior: PriorVersions,
        config: CurationConfig,
    ) -> None:
        threshold = config.dedup.semantic_threshold
        for version in sorted(prior.indexes):
            stored = prior.indexes[version]
            open_ = d.open()
            found: Pairs = search_pairs(stored.index, _unit(embeddings[open_]), threshold)
            matched = pd.DataFrame(
                {
                    "row": open_[found.left],
                    "value": found.value,
                    "version": version,
                    "sample_id": stored.sample_ids[found.right],
                }
            )
            best = _best_prior_match(d.ids, matched, closest_first=False)
            d.duplicate(
                best["row"].to_numpy(),
                best["sample_id"].to_numpy(),
                "semantic",
                [f"semantic: cosine {x:.4f} to v{version}" for x in best["value"]],
                best["version"].to_numpy(),
            )
        open_ = d.open()
        unit = _unit(embeddings[open_])
        dup, cos = semantic_duplicates(unit, rank[open_], threshold, config.dedup.semantic_index)
        hit = dup >= 0
        d.duplicate(
            open_[hit],
            d.ids[open_[dup[hit]]],
            "semantic",
            [f"semantic: cosine {x:.4f}" for x in cos[hit]],
        )
