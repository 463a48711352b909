"""The feature space a version is measured in, its images' features, and the feature cache.

A feature space is a CLIP image encoder named by its identity (model and weights): figures from
different spaces are not comparable, so the report records which one it used. A curated
version already holds its kept images' embeddings by its curation CLIP (`index/`); they are
reused when the report's space is that CLIP, and images are embedded only otherwise. Features
of a reference set are computed once per (reference, space) and cached.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from synthset.atomic import atomic_path
from synthset.curation.clip import ClipScorer, scorer_for
from synthset.curation.config import ClipConfig
from synthset.layout import cache_dir

BATCH = 64


@dataclass(frozen=True)
class FeatureSpace:
    """A CLIP image encoder as a feature space: L2-normalised image embeddings."""

    clip: ClipConfig

    @property
    def identity(self) -> dict[str, Any]:
        return {"kind": "clip", **self.clip.identity()}

    @property
    def name(self) -> str:
        weights = self.identity["pretrained"] or "packaged weights"
        return f"CLIP {self.clip.model} ({weights})"

    def scorer(self) -> ClipScorer:
        return scorer_for(self.clip)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, D) float32 embeddings of RGB images."""
        scorer = self.scorer()
        if not images:
            return np.zeros((0, scorer.dim), np.float32)
        return scorer.embed_images([im.convert("RGB") for im in images], BATCH)

    def embed_files(self, paths: Sequence[Path]) -> np.ndarray:
        """Embeddings of image files, `BATCH` at a time (never all decoded at once)."""
        parts = [self.embed([])]
        for start in range(0, len(paths), BATCH):
            parts.append(self.embed([_open_rgb(p) for p in paths[start : start + BATCH]]))
        return np.concatenate(parts)


def _open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def curation_clip(folder: Path) -> ClipConfig | None:
    """The CLIP a curated version was scored with (`curation.json`), None when uncurated."""
    path = folder / "curation.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text()).get("config", {}).get("clip")
    return ClipConfig.model_validate(config) if config else None


def version_space(folder: Path, clip: ClipConfig | None = None) -> FeatureSpace:
    """`clip` when given, else the version's curation CLIP, else the embedded default."""
    return FeatureSpace(clip or curation_clip(folder) or ClipConfig())


def stored_embeddings(
    folder: Path, space: FeatureSpace, sample_ids: Sequence[str]
) -> np.ndarray | None:
    """The version's `index/` embeddings of `sample_ids`, in that order, when they were made
    in `space` and cover them all; else None."""
    index = folder / "index"
    try:
        info = json.loads((index / "index.json").read_text())
        ids = pd.read_parquet(index / "ids.parquet")["sample_id"]
        vectors = np.load(index / "embeddings.npy")
    except (OSError, ValueError, KeyError):
        return None
    if {"kind": "clip", **(info.get("scorer") or {})} != space.identity:
        return None
    position = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
    if not position.index.is_unique or not set(sample_ids) <= set(position.index):
        return None
    return vectors[position.loc[list(sample_ids)].to_numpy()].astype(np.float32)


def version_features(folder: Path, metadata: pd.DataFrame, space: FeatureSpace) -> np.ndarray:
    """Features of a version's kept images (rows of `metadata`, same order): the stored
    curation embeddings when they are in `space`, else the images embedded now."""
    ids = metadata["sample_id"].tolist()
    stored = stored_embeddings(folder, space, ids)
    if stored is not None:
        return stored
    return space.embed_files([folder / f for f in metadata["file_name"]])


def cache_key(**parts: Any) -> str:
    """A stable hash of JSON-able identity parts."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_features(identity: dict[str, Any], compute: Callable[[], np.ndarray]) -> np.ndarray:
    """`compute()`'s features, stored once under the synthset cache by `identity` (a
    reference's identity with the feature space's); float16 on disk, as versions store them."""
    path = cache_dir() / "quality" / "features" / f"{cache_key(**identity)}.npy"
    if path.is_file():
        return np.load(path).astype(np.float32)
    features = np.asarray(compute(), dtype=np.float16)
    buffer = io.BytesIO()
    np.save(buffer, features)
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(identity, indent=2, sort_keys=True, default=str) + "\n")
    with atomic_path(path, keep_existing=True) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return features.astype(np.float32)
