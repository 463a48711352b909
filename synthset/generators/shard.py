"""Generate one shard: run the generator over its requests and write the shard to staging."""

from __future__ import annotations

import time
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


def generate_shard(config: GeneratorConfig, shard: Shard) -> ShardReport:
    """Generate and write `shard` unless its marker already exists (a resumed run)."""
    if shard.done:
        return ShardReport(shard.index, 0, 0, 0.0, skipped=True)
    start = time.perf_counter()
    generator = generator_for(config)
    results = generator.generate(shard.requests)
    errors = [r.error for r in results if r.error is not None]
    attempted = [r for r in results if not r.input_error]
    if attempted and all(r.error is not None for r in attempted):
        raise ShardFailed(
            f"shard {shard.index}: all {len(attempted)} images failed; first "
            f"error: {attempted[0].error}"
        )
    images = write_shard(shard.folder, results, generator.settings())
    return ShardReport(shard.index, images, len(errors), time.perf_counter() - start)
