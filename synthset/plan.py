"""Planning a run: expand the manifest into requests and cut them into shards.

Shards, not images, are the unit of scheduling: a shard is one Prefect task of tens to
hundreds of images, named by the hash of its sample ids and stored under the plan's staging
folder, so a resumed run finds the shards it already finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from synthset.manifest import GenerationRequest, Manifest, expand, plan_digest
from synthset.storage.layout import DatasetLayout, datasets_root
from synthset.storage.shards import request_row, shard_id, shard_is_done


@dataclass(frozen=True)
class Shard:
    """A slice of the plan's requests and the staging folder it is written to."""

    index: int
    id: str
    folder: Path
    requests: tuple[GenerationRequest, ...]

    @property
    def done(self) -> bool:
        return shard_is_done(self.folder)


@dataclass(frozen=True)
class Plan:
    """Everything a run will do, derived from the manifest alone."""

    manifest: Manifest
    digest: str
    layout: DatasetLayout
    shards: tuple[Shard, ...]

    @property
    def requests(self) -> list[GenerationRequest]:
        return [r for s in self.shards for r in s.requests]

    def requests_frame(self) -> pd.DataFrame:
        """One row per requested image: what MLflow records as the run's manifest input."""
        return pd.DataFrame([request_row(r) for r in self.requests])


def make_plan(manifest: Manifest, root: str | Path | None = None) -> Plan:
    """Expand `manifest` and cut its requests into shards of `manifest.shard_size`."""
    layout = DatasetLayout(Path(root).resolve() if root else datasets_root(), manifest.dataset)
    digest = plan_digest(manifest)
    requests = expand(manifest)
    size = manifest.shard_size
    shards = []
    for index, start in enumerate(range(0, len(requests), size)):
        chunk = tuple(requests[start : start + size])
        sid = shard_id(chunk)
        shards.append(Shard(index, sid, layout.shard_dir(digest, sid), chunk))
    return Plan(manifest, digest, layout, tuple(shards))
