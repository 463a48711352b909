"""The Prefect runner: inside a flow run, every shard is a task submitted to the flow's task
runner at once (threads, Ray through prefect-ray), and each single step is a task of its own.

The task runner is chosen when the flow is called (`flow_with_runner`); this runner reads it
from the flow run's context, so a Ray task runner gets its resource check and per-shard
`remote_options`. A user's own mistake (`SynthsetError`) is never retried. A shard on a GPU
holds a slot of that GPU's Prefect global concurrency limit (`synthset.runners.gpu`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from synthset.errors import SynthsetError
from synthset.pipeline import BatchDone, ShardOutcome, process_shard
from synthset.plan import Plan, Shard
from synthset.runners import ray as ray_runner
from synthset.runners.gpu import GpuSlots, gpu_slot
from synthset.runners.ray import RaySettings

T = TypeVar("T")


def not_a_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry failures, except a user's own mistake."""
    try:
        state.result()
    except SynthsetError:
        return False
    except Exception:
        return True
    return True


@task(
    name="shard",
    task_run_name="shard-{shard.index}",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=not_a_user_error,
    cache_policy=NO_CACHE,
)
def shard_task(
    generator: Any,
    curation: Any,
    shard: Shard,
    gpu: GpuSlots | None = None,
    on_batch: BatchDone | None = None,
) -> ShardOutcome:
    """Generate and score one shard (on whichever worker the task runner picks), holding a
    slot of its GPU's concurrency limit while it does (a shard already made in staging takes
    none); `on_batch` only where the task runs in the flow's process."""
    logger = get_run_logger()
    device = "cpu" if shard.done else generator.device
    with gpu_slot(gpu or GpuSlots(), device) as limit:
        if limit:
            logger.info("shard %d holds a slot of %s", shard.index, limit)
        outcome = process_shard(generator, curation, shard, on_batch)
    report = outcome.generated
    if report.skipped:
        logger.info("shard %d already done in staging, skipped", shard.index)
    else:
        logger.info(
            "shard %d: %d images, %d failed, %.1f s on %s",
            shard.index,
            report.images,
            report.errors,
            report.seconds,
            outcome.worker,
        )
    return outcome


class PrefectRunner:
    """Shards as concurrent Prefect tasks; must be used inside a flow run. `gpu`: how GPU
    shards share devices (default: one shard per GPU)."""

    def __init__(self, shard_timeout: float | None = None, gpu: GpuSlots | None = None):
        self.shard_timeout = shard_timeout
        self.gpu = gpu or GpuSlots()
        context = FlowRunContext.get()
        if context is None:
            raise RuntimeError("PrefectRunner runs inside a Prefect flow run")
        self.ray = ray_runner.is_ray(context.task_runner)
        self.resources: dict[str, Any] = {}

    def check(self, plan: Plan) -> None:
        if self.ray:
            self.resources = ray_runner.shard_resources(plan.manifest)

    def map_shards(
        self, plan: Plan, shards: Sequence[Shard], on_batch: BatchDone | None = None
    ) -> Iterator[ShardOutcome]:
        manifest = plan.manifest
        run = shard_task
        timeout = self.shard_timeout or ray_runner.gpu_timeout(self.resources)
        if timeout:
            run = shard_task.with_options(timeout_seconds=timeout)
        options = contextlib.nullcontext()
        if self.ray:
            options, on_batch = ray_runner.remote_options(self.resources), None
        with options:
            futures = [
                run.submit(manifest.generator, manifest.curation, s, self.gpu, on_batch)
                for s in shards
            ]
        for future in as_completed(futures):
            yield future.result()

    def step(self, name: str, fn: Callable[..., T], *args: Any, label: str | None = None) -> T:
        wrapped = task(
            fn,
            name=name,
            task_run_name=label or name,
            cache_policy=NO_CACHE,
            retry_condition_fn=not_a_user_error,
        )
        return wrapped(*args)


def task_runner(kind: str, ray: RaySettings | None = None) -> Any:
    """The Prefect task runner for `--runner`: `prefect` runs shards one at a time in this
    process (one model, one device); `ray` submits them to a Ray cluster."""
    if kind == "ray":
        return ray_runner.task_runner(ray or RaySettings())
    return ThreadPoolTaskRunner(max_workers=1)
