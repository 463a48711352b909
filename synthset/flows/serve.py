"""`synthset serve`: a manifest on a cron schedule without a work pool or a worker.

This process registers a deployment of `generate_dataset` with the schedule and then runs its
scheduled flow runs itself (Prefect's `serve`) until stopped. The deployment points at the
manifest file, so each run reads it as it is then; overlapping runs queue (concurrency 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthset.errors import SynthsetError
from synthset.manifest import load_manifest
from synthset.runners.gpu import GpuSlots

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Schedule


def cron_schedule(cron: str, timezone: str | None = "UTC") -> Schedule:
    """A Prefect cron schedule, or one line saying what is wrong with `cron` or `timezone`."""
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.schedules import Cron
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = "--timezone" if error["loc"] == ("timezone",) else "--cron"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise SynthsetError(f"{field}: {message}") from None
    return Cron(cron, timezone=timezone)


def serve_deployment(
    manifest_path: str | Path,
    cron: str,
    timezone: str | None = "UTC",
    name: str | None = None,
    **parameters: Any,
) -> RunnerDeployment:
    """The deployment `synthset serve` registers: the manifest (checked now) by absolute path,
    the cron schedule, `parameters` of `generate_dataset` that are not None; named after the
    dataset unless `name` is given."""
    from prefect.deployments.runner import EntrypointType

    from synthset.flows.generate import generate_dataset

    manifest = load_manifest(manifest_path)
    schedule = cron_schedule(cron, timezone)
    given = {k: v for k, v in parameters.items() if v is not None}
    GpuSlots(given.get("shards_per_gpu"))
    return generate_dataset.to_deployment(
        name=name or manifest.dataset,
        schedules=[schedule],
        parameters={"manifest_path": str(Path(manifest_path).resolve()), **given},
        concurrency_limit=1,
        tags=[f"dataset:{manifest.dataset}"],
        description=f"{manifest.dataset} on `{cron}` ({timezone or 'UTC'}), by synthset serve",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def serve(deployment: RunnerDeployment) -> None:
    """Register `deployment` and run its scheduled flow runs until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(deployment)
