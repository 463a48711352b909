"""Assemble finished shards into a dataset version and publish it with one atomic rename."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from synthset.atomic import atomic_path
from synthset.labels import label_columns
from synthset.layout import DatasetLayout
from synthset.manifest import Manifest
from synthset.shards import CONDITION_COLUMNS, image_problems, read_shard_rows
from synthset.storage.card import dataset_card
from synthset.storage.formats import version_digest
from synthset.storage.public import public

if TYPE_CHECKING:
    from synthset.curation.curate import Curation

METADATA = "metadata.parquet"
REJECTED = "rejected.parquet"
MANIFEST = "manifest.yaml"
CURATION = "curation.json"
JOURNAL = "publishing.json"
_INTERNAL = ("status", "error", "decode_error")
_DECISIONS = ("reject_reason", "detail", "dup_of", "dup_tier", "dup_version")


@dataclass(frozen=True)
class PublishedVersion:
    """A version folder that has been published; `unchanged` when the run made exactly the
    latest version again and nothing new was published (then `path` is that version's)."""

    name: str
    version: int
    path: Path
    digest: str
    images: int
    rejected: int
    unchanged: bool = False


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _checked_rows(shard: Path) -> pd.DataFrame:
    """A shard's rows, those whose image changed since it was written marked `unreadable`."""
    rows = read_shard_rows(shard)
    problems = pd.Series(image_problems(shard, rows), index=rows.index, dtype=object)
    bad = (rows["status"] == "ok") & problems.notna()
    rows.loc[bad, "status"] = "unreadable"
    rows["error"] = rows["error"].astype(object)
    rows.loc[bad, "error"] = problems[bad]
    rows.loc[bad, "file_name"] = None
    return rows


def _split_uncurated(shards: Sequence[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = pd.concat([_checked_rows(s) for s in shards], ignore_index=True)
    rows = rows.sort_values(["item_index", "index"], kind="stable", ignore_index=True)
    ok = rows["status"] == "ok"
    rejected = rows[~ok].rename(columns={"error": "detail"})
    reason = rejected["status"].map({"unreadable": "unreadable"}).fillna("generation_failed")
    rejected.insert(1, "reject_reason", reason)
    return rows[ok].reset_index(drop=True), rejected.reset_index(drop=True)


def _split_curated(curation: Curation) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = curation.rows
    kept = rows[curation.kept].drop(columns=list(_DECISIONS)).reset_index(drop=True)
    rejected = rows[~curation.kept].copy()
    rejected["file_name"] = None
    rejected.insert(1, "reject_reason", rejected.pop("reject_reason"))
    return kept, rejected.reset_index(drop=True)


def _ordered(frame: pd.DataFrame, first: Sequence[str]) -> pd.DataFrame:
    frame = frame.drop(columns=[c for c in _INTERNAL if c in frame])
    head = [c for c in first if c in frame]
    return frame[head + [c for c in frame.columns if c not in head]]


def _curation_report(curation: Curation, manifest: Manifest) -> dict[str, Any]:
    items = curation.items.astype(object).where(curation.items.notna(), None)
    return {
        "config": manifest.curation.model_dump(mode="json"),
        "scorer": curation.scorer,
        "metrics": curation.metrics,
        "rejected": curation.rejected_counts(),
        "prior_versions": curation.prior_versions,
        "prior_skipped": curation.prior_skipped,
        "items": items.to_dict(orient="records"),
    }


def _store_conditions(
    folder: Path, frames: list[pd.DataFrame]
) -> tuple[list[pd.DataFrame], dict[str, str]]:
    """Condition images travel with the version: each file once, as `conditions/<sha256>` with
    its suffix, and the rows point at it; no local absolute path is published. Also returns
    the map from each source path to its stored name."""
    stored: dict[str, str] = {}

    def store(path: Any) -> Any:
        if not isinstance(path, str):
            return None
        if path not in stored:
            source = Path(path)
            name = f"conditions/{hashlib.sha256(source.read_bytes()).hexdigest()}"
            name += source.suffix.lower()
            if not (folder / name).exists():
                (folder / "conditions").mkdir(exist_ok=True)
                _link_or_copy(source, folder / name)
            stored[path] = name
        return stored[path]

    out = []
    for frame in frames:
        frame = frame.copy()
        for column in CONDITION_COLUMNS:
            if column in frame:
                frame[column] = frame[column].map(store)
        out.append(frame)
    return out, stored


def _assemble(
    folder: Path, shards: Sequence[Path], manifest: Manifest, curation: Curation | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the version's files into `folder`; rows get their items' metadata as typed label
    columns (`synthset.labels`), kept and rejected typed alike."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "images").mkdir(parents=True)
    kept, rejected = _split_uncurated(shards) if curation is None else _split_curated(curation)
    (kept, rejected), _ = label_columns([kept, rejected])
    (kept, rejected), stored = _store_conditions(folder, [kept, rejected])
    kept = _ordered(kept, ["sample_id", "file_name"])
    rejected = _ordered(rejected, ["sample_id", "reject_reason", "detail", "file_name"])
    wanted = {Path(f).name for f in kept["file_name"]}
    for shard in shards:
        for image in (shard / "images").iterdir():
            if image.name in wanted:
                _link_or_copy(image, folder / "images" / image.name)
    kept.to_parquet(folder / METADATA, index=False)
    rejected.to_parquet(folder / REJECTED, index=False)
    (folder / MANIFEST).write_text(
        yaml.safe_dump(
            public(manifest.model_dump(mode="json"), stored), sort_keys=False, allow_unicode=True
        )
    )
    if curation is not None:
        from synthset.curation.index import save_index

        report = _curation_report(curation, manifest)
        (folder / CURATION).write_text(json.dumps(report, indent=2, default=str) + "\n")
        scorer = (curation.scorer or {}).get("clip")
        save_index(
            folder,
            curation.embeddings[curation.kept],
            kept["sample_id"].tolist(),
            scorer,
            manifest.curation.dedup.semantic_index,
        )
    return kept, rejected


def rename_to_free_version(
    layout: DatasetLayout, staging: Path, first_version: int, write_card: Callable[[int], Any]
) -> tuple[int, Path]:
    """Rename the finished `staging` folder to the first free `v<N>` ≥ `first_version`.

    `write_card(N)` writes the folder's card for the version it is about to become. When a
    concurrent writer takes `v<N>` first, the next number is tried. Returns (N, the folder).
    """
    version = max([first_version, *(v + 1 for v in layout.versions())])
    while True:
        write_card(version)
        target = layout.version_dir(version)
        try:
            if target.exists():
                raise FileExistsError(target)
            os.rename(staging, target)
            return version, target
        except OSError:
            if not target.exists():
                raise
            version += 1


def pending_version(layout: DatasetLayout, plan: str) -> tuple[int, str] | None:
    """(number, digest) of the version a killed run of this plan renamed into place but may
    not have recorded: its journal names `v<N>`, `v<N>` exists and the staged copy is gone."""
    staging = layout.staging_dir(plan)
    try:
        entry = json.loads((staging / JOURNAL).read_text())
        version, digest = int(entry["version"]), str(entry["digest"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (staging / "version").exists() or not layout.version_dir(version).is_dir():
        return None
    return version, digest


def publish(
    layout: DatasetLayout,
    plan: str,
    shards: Sequence[Path],
    manifest: Manifest,
    first_version: int = 1,
    curation: Curation | None = None,
    latest: tuple[int, str] | None = None,
    pending: tuple[int, str] | None = None,
) -> PublishedVersion:
    """Build the version in staging, then rename it to the first free `v<N>` ≥ `first_version`.

    Without `curation` every generated image is kept and failed generations are rejected.
    With it, its decisions are applied: kept rows carry their scores, rejected rows their
    reason and scores, and the folder gets `curation.json` and the semantic `index/`.
    Readers never see a partial version: until the rename, the folder is under `.staging/`.

    The staging folder (the shards) stays until `release_staging`, called once the version is
    recorded too: a run killed in between finds its shards and, in the journal, the version it
    renamed. Given that `pending` version (unrecorded), a run whose result has the same digest
    adopts it instead of publishing a copy; a different result replaces it. When the digest
    equals `latest` (number, digest), nothing is published: a scheduled run of an unchanged
    manifest does not stack identical versions.
    """
    staging = layout.staging_dir(plan) / "version"
    kept, rejected = _assemble(staging, shards, manifest, curation)
    digest = version_digest(staging)
    counts = (len(kept), len(rejected))
    if pending is not None:
        target = layout.version_dir(pending[0])
        if pending[1] == digest:
            shutil.rmtree(staging)
            return PublishedVersion(manifest.dataset, pending[0], target, digest, *counts)
        shutil.rmtree(target)
    if latest is not None and digest == latest[1]:
        shutil.rmtree(staging)
        target = layout.version_dir(latest[0])
        return PublishedVersion(
            manifest.dataset, latest[0], target, digest, *counts, unchanged=True
        )

    def prepare(version: int) -> None:
        (staging / "README.md").write_text(
            dataset_card(manifest, version, digest, kept, rejected, curation)
        )
        with atomic_path(staging.parent / JOURNAL) as tmp:
            tmp.write_text(json.dumps({"version": version, "digest": digest}))

    version, target = rename_to_free_version(layout, staging, first_version, prepare)
    return PublishedVersion(manifest.dataset, version, target, digest, *counts)


def release_staging(layout: DatasetLayout, plan: str) -> None:
    """Remove a plan's staging folder (its shards and journal): the version is recorded."""
    shutil.rmtree(layout.staging_dir(plan), ignore_errors=True)
    with contextlib.suppress(OSError):
        layout.staging_dir(plan).parent.rmdir()
