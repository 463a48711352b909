"""Generate one shard: run the generator over its requests and write the shard to staging."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from synthset.generators.base import generator_for
from synthset.manifest import GeneratorConfig
from synthset.plan import Shard
from synthset.shards import write_shard


class ShardFailed(RuntimeError):
    """Every request of a shard failed: a problem of the model or settings, not of a sample."""


@dataclass(frozen=True)
class ShardReport:
    """What generating a shard did; `skipped` when it was already done in staging."""

    index: int
    images: int
    errors: int
    seconds: float
    skipped: bool = False


def generate_shard(
    config: GeneratorConfig, shard: Shard, on_batch: Callable[[int], None] | None = None
) -> ShardReport:
    """Generate and write `shard` unless its marker already exists (a resumed run).

    The requests go to the generator a batch at a time (its `batch_size`, else all at once)
    so `on_batch(n)` can report each batch's `n` images as it finishes.
    """
    if shard.done:
        return ShardReport(shard.index, 0, 0, 0.0, skipped=True)
    start = time.perf_counter()
    generator = generator_for(config)
    results: list = []
    while len(results) < len(shard.requests):
        size = getattr(generator, "batch_size", len(shard.requests))
        batch = shard.requests[len(results) : len(results) + size]
        results += generator.generate(batch)
        if on_batch is not None:
            on_batch(len(batch))
    errors = [r.error for r in results if r.error is not None]
    attempted = [r for r in results if not r.input_error]
    if attempted and all(r.error is not None for r in attempted):
        raise ShardFailed(
            f"shard {shard.index}: all {len(attempted)} images failed; first "
            f"error: {attempted[0].error}"
        )
    images = write_shard(shard.folder, results, generator.settings())
    return ShardReport(shard.index, images, len(errors), time.perf_counter() - start)
