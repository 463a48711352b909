"""Assemble finished shards into a dataset version and publish it with one atomic rename."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from synthset.manifest import Manifest
from synthset.storage.card import dataset_card
from synthset.storage.digest import content_digest
from synthset.storage.layout import DatasetLayout
from synthset.storage.shards import read_shard_rows

METADATA = "metadata.parquet"
REJECTED = "rejected.parquet"
MANIFEST = "manifest.yaml"


@dataclass(frozen=True)
class PublishedVersion:
    """A version folder that has been published."""

    name: str
    version: int
    path: Path
    digest: str
    images: int
    rejected: int


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _assemble(
    folder: Path, shards: Sequence[Path], manifest: Manifest
) -> tuple[pd.DataFrame, pd.DataFrame]:
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "images").mkdir(parents=True)
    rows = pd.concat([read_shard_rows(s) for s in shards], ignore_index=True)
    rows = rows.sort_values(["item_index", "index"], kind="stable", ignore_index=True)
    ok = rows["status"] == "ok"
    first = ["sample_id", "file_name"]
    rows = rows[first + [c for c in rows.columns if c not in first]]
    kept = rows[ok].drop(columns=["status", "error"]).reset_index(drop=True)
    rejected = rows[~ok].drop(columns=["status"]).rename(columns={"error": "detail"})
    rejected.insert(1, "reject_reason", "generation_failed")
    for shard in shards:
        for image in (shard / "images").iterdir():
            _link_or_copy(image, folder / "images" / image.name)
    kept.to_parquet(folder / METADATA, index=False)
    rejected.to_parquet(folder / REJECTED, index=False)
    (folder / MANIFEST).write_text(
        yaml.safe_dump(manifest.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    )
    return kept, rejected


def publish(
    layout: DatasetLayout,
    plan: str,
    shards: Sequence[Path],
    manifest: Manifest,
    first_version: int = 1,
) -> PublishedVersion:
    """Build the version in staging, then rename it to the first free `v<N>` ≥ `first_version`.

    Readers never see a partial version: until the rename, the folder is under `.staging/`.
    The staging folder of the plan (its shards) is removed once the version is published.
    """
    staging = layout.staging_dir(plan) / "version"
    kept, rejected = _assemble(staging, shards, manifest)
    digest = content_digest(staging, zip(kept["sample_id"], kept["file_name"], strict=True))
    version = max([first_version, *(v + 1 for v in layout.versions())])
    while True:
        (staging / "README.md").write_text(dataset_card(manifest, version, digest, kept, rejected))
        target = layout.version_dir(version)
        try:
            if target.exists():
                raise FileExistsError(target)
            os.rename(staging, target)
            break
        except OSError:
            if not target.exists():
                raise
            version += 1
    shutil.rmtree(layout.staging_dir(plan), ignore_errors=True)
    with contextlib.suppress(OSError):
        layout.staging_dir(plan).parent.rmdir()
    return PublishedVersion(manifest.dataset, version, target, digest, len(kept), len(rejected))
