"""Planning a run: expand the manifest into requests and cut them into shards.

Shards, not images, are the unit of scheduling: a shard is one Prefect task of tens to
hundreds of images, named by the hash of its sample ids and stored under the plan's staging
folder, so a resumed run finds the shards it already finished.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from synthset.layout import DatasetLayout, datasets_root
from synthset.manifest import GenerationRequest, Manifest, expand, plan_digest
from synthset.shards import request_row, shard_id, shard_is_done


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


def _cut(
    requests: Sequence[GenerationRequest], size: int, layout: DatasetLayout, digest: str, first: int
) -> tuple[Shard, ...]:
    shards = []
    for n, start in enumerate(range(0, len(requests), size)):
        chunk = tuple(requests[start : start + size])
        sid = shard_id(chunk)
        shards.append(Shard(first + n, sid, layout.shard_dir(digest, sid), chunk))
    return tuple(shards)


def make_plan(manifest: Manifest, root: str | Path | None = None) -> Plan:
    """Expand `manifest` and cut its requests into shards of `manifest.shard_size`."""
    layout = DatasetLayout(Path(root).resolve() if root else datasets_root(), manifest.dataset)
    digest = plan_digest(manifest)
    shards = _cut(expand(manifest), manifest.shard_size, layout, digest, 0)
    return Plan(manifest, digest, layout, shards)


def plan_size(manifest: Manifest) -> tuple[int, int]:
    """`(images, shards)` that `make_plan` would give, counted without expanding the manifest:
    checking a manifest of a million images must not build a million requests."""
    images = manifest.images
    return images, -(-images // manifest.shard_size)


def extend_plan(plan: Plan, more: Mapping[int, int]) -> tuple[Plan, tuple[Shard, ...]]:
    """The plan with `more[item]` further images of those items, and the new shards.

    The new images take each item's next indices and seeds, so a resumed run asks for the
    same ones again and finds their shards done in staging.
    """
    manifest = plan.manifest
    have = Counter(r.item_index for r in plan.requests)
    extra = {}
    for item, n in more.items():
        extra[item] = have[item] + n - manifest.items[item].count
    new = [r for r in expand(manifest, extra=extra) if r.index >= have[r.item_index]]
    shards = _cut(new, manifest.shard_size, plan.layout, plan.digest, len(plan.shards))
    return replace(plan, shards=plan.shards + shards), shards
