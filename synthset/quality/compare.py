"""A version against the one before it: which version that is, and what changed by how much.

The previous version is the highest one the registry lists below this one; its folder is read
where it lies under the same datasets folder, else its tables and `index/` (never its images)
are fetched from its MLflow run into the cache. Its figures are measured again here, in this
report's feature space and against this report's reference, so the two are comparable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from synthset.atomic import atomic_path
from synthset.layout import cache_dir

COMPARED = (
    ("images", "kept images"),
    ("generated", "generated images"),
    ("rejected", "rejected images"),
    ("duplicate_rate", "duplicate rate (of generated)"),
    ("duplicate_rate_max_prompt", "duplicate rate, worst prompt"),
    ("vendi", "Vendi score (all kept)"),
    ("vendi_per_prompt_mean", "Vendi score per prompt (mean)"),
    ("clip_score_mean", "CLIP score (mean of kept)"),
    ("fd", "Fréchet distance"),
    ("kid", "KID"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("density", "density"),
    ("coverage", "coverage"),
)
FETCHED = ("metadata.parquet", "rejected.parquet", "index")


def compare(current: dict[str, Any], previous: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per headline figure both versions have: previous, current, change, change
    relative to the previous value."""
    rows = []
    for key, label in COMPARED:
        old, new = previous.get(key), current.get(key)
        if old is None and new is None:
            continue
        change = None if old is None or new is None else new - old
        relative = change / abs(old) if change is not None and old else None
        rows.append(
            {
                "figure": label,
                "key": key,
                "previous": old,
                "current": new,
                "change": change,
                "relative": relative,
            }
        )
    return rows


def content_changes(current: pd.DataFrame, previous: pd.DataFrame) -> dict[str, Any]:
    """Images (by sample id) and prompts the two versions share, add and drop."""
    now, before = set(current["sample_id"]), set(previous["sample_id"])
    prompts_now, prompts_before = set(current["prompt"]), set(previous["prompt"])
    return {
        "images_shared": len(now & before),
        "images_added": len(now - before),
        "images_removed": len(before - now),
        "prompts_added": sorted(prompts_now - prompts_before),
        "prompts_removed": sorted(prompts_before - prompts_now),
    }


def _fetch(run_id: str, version: int, tracking_uri: str | None) -> Path:
    from synthset.storage.versioning import ARTIFACT_PATH, _client

    dest = cache_dir() / "quality" / "versions" / run_id / f"v{version}"
    if (dest / "metadata.parquet").is_file():
        return dest
    with atomic_path(dest, folder=True, keep_existing=True) as tmp:
        client = _client(tracking_uri)
        present = {Path(a.path).name for a in client.list_artifacts(run_id, ARTIFACT_PATH)}
        for name in FETCHED:
            if name in present:
                client.download_artifacts(run_id, f"{ARTIFACT_PATH}/{name}", str(tmp))
        if not (tmp / "metadata.parquet").is_file():
            raise FileNotFoundError(f"run {run_id} has no {ARTIFACT_PATH}/metadata.parquet")
    return dest


def previous_version(
    name: str, version: int, datasets: Path | None, tracking_uri: str | None
) -> tuple[int, Path] | None:
    """(number, folder) of the version before `version`: the registry's highest below it, read
    from `datasets/<name>/v<N>` when there, else fetched; None when there is none."""
    from synthset.storage.versioning import list_versions_or_none

    earlier = [v for v in list_versions_or_none(name, tracking_uri) if v.version < version]
    if not earlier:
        return None
    info = earlier[-1]
    local = datasets / name / f"v{info.version}" if datasets else None
    if local is not None and (local / "metadata.parquet").is_file():
        return info.version, local
    return info.version, _fetch(info.run_id, info.version, tracking_uri)
