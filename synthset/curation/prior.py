"""What earlier versions of a dataset hold, for dedup against them without re-reading images.

Pixel hashes and pHashes come from each version's `metadata.parquet`, embeddings from its
stored FAISS index (`index/`), so nothing old is decoded or embedded again. A version made by
another CLIP model cannot be compared semantically; it is listed in `skipped`.

A version is a snapshot, not a delta: a sample whose id an earlier version holds is the same
image made again (same prompt, seed and settings), not a duplicate of it, so matches with the
same sample id are ignored. Everything else that looks like an earlier image is a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow.parquet as pq

from synthset.curation.index import StoredIndex, load_index

Which = Literal["all", "latest", "none"]


@dataclass
class PriorVersions:
    """Hashes of every prior image (`version`, `sample_id`, `pixel_hash`, `phash` columns) and
    the semantic indexes that were made by the current scorer."""

    hashes: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            columns=["version", "sample_id", "pixel_hash", "phash"]
        )
    )
    indexes: dict[int, StoredIndex] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def versions(self) -> list[int]:
        return sorted(set(self.hashes["version"]) | set(self.indexes))


def select_versions(numbers: Sequence[int], which: Which) -> list[int]:
    """The earlier versions a run dedups against: `all`, only the `latest`, or `none`."""
    numbers = sorted(numbers)
    return {"all": numbers, "latest": numbers[-1:], "none": []}[which]


def load_prior_versions(
    folders: Mapping[int, Path], scorer: dict[str, Any] | None
) -> PriorVersions:
    """Earlier versions, each a folder with its `metadata.parquet` (and `index/` when it was
    curated), as a `PriorVersions`. Images are never read."""
    prior = PriorVersions()
    frames = []
    for version, folder in sorted(folders.items()):
        meta = Path(folder) / "metadata.parquet"
        if not meta.is_file():
            prior.skipped.append(f"v{version}: no metadata.parquet")
            continue
        present = set(pq.read_schema(meta).names)
        columns = [c for c in ("sample_id", "pixel_hash", "phash") if c in present]
        frame = pd.read_parquet(meta, columns=columns)
        if {"pixel_hash", "phash"} - present:
            prior.skipped.append(f"v{version}: no pixel hashes or pHashes (published uncurated)")
        frame.insert(0, "version", version)
        frames.append(frame)
        stored = load_index(Path(folder))
        if stored is None:
            prior.skipped.append(f"v{version}: no semantic index")
        elif stored.info.get("scorer") != scorer:
            prior.skipped.append(f"v{version}: embeddings of another CLIP model")
        else:
            prior.indexes[version] = stored
    if frames:
        prior.hashes = pd.concat(frames, ignore_index=True)
    for column in ("pixel_hash", "phash"):
        if column not in prior.hashes:
            prior.hashes[column] = None
    return prior
