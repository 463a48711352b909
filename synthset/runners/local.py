"""The in-process runner: every shard and step in this process, one after the other, no Prefect."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from synthset.pipeline import BatchDone, ShardOutcome, process_shard
from synthset.plan import Plan, Shard

T = TypeVar("T")


class LocalRunner:
    """Runs shards sequentially in this process; models load once and stay loaded."""

    def check(self, plan: Plan) -> None:
        """Any plan runs here (a missing GPU is reported when the model loads)."""

    def map_shards(
        self, plan: Plan, shards: Sequence[Shard], on_batch: BatchDone | None = None
    ) -> Iterator[ShardOutcome]:
        manifest = plan.manifest
        for shard in shards:
            yield process_shard(manifest.generator, manifest.curation, shard, on_batch)

    def step(self, name: str, fn: Callable[..., T], *args: Any, label: str | None = None) -> T:
        return fn(*args)
