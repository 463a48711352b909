"""The `generate_dataset` Prefect flow: plan → one task per shard → publish → MLflow version.

Thin wiring: every step is a library call (`synthset.plan`, `synthset.generators.shard`,
`synthset.storage`); this module adds retries, artifacts for the Prefect UI and timings.
"""

from __future__ import annotations

import importlib
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from synthset.generators.shard import ShardReport, generate_shard
from synthset.manifest import GeneratorConfig, load_manifest
from synthset.plan import Plan, Shard, make_plan
from synthset.storage.publish import PublishedVersion, publish
from synthset.storage.versioning import last_version_number, record_version

ProgressListener = Callable[[int, int], None]
PROGRESS_LISTENERS: list[ProgressListener] = []
"""Called in-process with (images done, images planned) after each shard; the CLI's bar."""


def _artifact_key(name: str, suffix: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", f"{name}-{suffix}".lower())


@task(
    name="generate-shard",
    task_run_name="shard-{shard.index}",
    retries=2,
    retry_delay_seconds=2,
    cache_policy=NO_CACHE,
)
def generate_shard_task(config: GeneratorConfig, shard: Shard) -> ShardReport:
    report = generate_shard(config, shard)
    logger = get_run_logger()
    if report.skipped:
        logger.info("shard %d already done in staging, skipped", shard.index)
    else:
        logger.info(
            "shard %d: %d images, %d failed, %.1f s",
            shard.index,
            report.images,
            report.errors,
            report.seconds,
        )
    return report


@task(name="publish-version", cache_policy=NO_CACHE)
def publish_task(plan: Plan, tracking_uri: str | None) -> PublishedVersion:
    first = last_version_number(plan.manifest.dataset, tracking_uri) + 1
    return publish(plan.layout, plan.digest, [s.folder for s in plan.shards], plan.manifest, first)


@task(name="record-version", cache_policy=NO_CACHE)
def record_task(
    published: PublishedVersion, plan: Plan, metrics: dict[str, float], tracking_uri: str | None
) -> str:
    return record_version(published, plan.manifest, plan.requests_frame(), metrics, tracking_uri)


def _summary_table(plan: Plan, reports: list[ShardReport]) -> list[dict[str, Any]]:
    return [
        {
            "shard": r.index,
            "shard_id": plan.shards[r.index].id,
            "images": r.images,
            "failed": r.errors,
            "seconds": round(r.seconds, 2),
            "status": "skipped (done)" if r.skipped else "generated",
        }
        for r in reports
    ]


def _run_name() -> str:
    return f"{Path(flow_run.parameters['manifest_path']).stem}"


@flow(name="generate_dataset", flow_run_name=_run_name, log_prints=True)
def generate_dataset(
    manifest_path: str, datasets_root: str | None = None, tracking_uri: str | None = None
) -> dict[str, Any]:
    """Generate, publish and version the dataset a manifest describes.

    MLflow (a second or more to import) is imported in the background while images are made.

    Returns the version's name, number, folder, digest, image counts, MLflow run id and the
    flow run's id.
    """
    logger = get_run_logger()
    t0 = time.perf_counter()
    threading.Thread(target=importlib.import_module, args=("mlflow",), daemon=True).start()
    manifest = load_manifest(manifest_path)
    plan = make_plan(manifest, datasets_root)
    total = len(plan.requests)
    key = _artifact_key(manifest.dataset, "progress")
    progress_id = create_progress_artifact(
        0.0, key=key, description=f"{manifest.dataset}: {total} images in {len(plan.shards)} shards"
    )
    logger.info("plan %s: %d images in %d shards", plan.digest, total, len(plan.shards))
    t_plan = time.perf_counter()

    reports, done = [], 0
    for shard in plan.shards:
        reports.append(generate_shard_task(manifest.generator, shard))
        done += len(shard.requests)
        update_progress_artifact(progress_id, 100.0 * done / total)
        for listener in PROGRESS_LISTENERS:
            listener(done, total)
    t_gen = time.perf_counter()

    published = publish_task(plan, tracking_uri)
    t_pub = time.perf_counter()
    generated = sum(r.images for r in reports)
    metrics = {
        "images": published.images,
        "rejected": published.rejected,
        "shards_skipped": sum(r.skipped for r in reports),
        "seconds_plan": t_plan - t0,
        "seconds_generate": t_gen - t_plan,
        "seconds_publish": t_pub - t_gen,
        "images_per_s": generated / max(t_gen - t_plan, 1e-9),
    }
    run_id = record_task(published, plan, metrics, tracking_uri)
    create_table_artifact(
        _summary_table(plan, reports),
        key=_artifact_key(manifest.dataset, "shards"),
        description=f"{manifest.dataset} v{published.version}: "
        f"{published.images} images, digest {published.digest}",
    )
    logger.info(
        "published %s v%d (%d images) at %s",
        published.name,
        published.version,
        published.images,
        published.path,
    )
    return {
        "name": published.name,
        "version": published.version,
        "path": str(published.path),
        "digest": published.digest,
        "images": published.images,
        "rejected": published.rejected,
        "mlflow_run_id": run_id,
        "flow_run_id": str(flow_run.get_id()),
        "seconds": time.perf_counter() - t0,
    }
