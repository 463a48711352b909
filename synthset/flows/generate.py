"""The `generate_dataset` Prefect flow: plan → generate and score each shard → curate → top up
→ publish → MLflow version.

Thin wiring: every step is a library call (`synthset.plan`, `synthset.generators.shard`,
`synthset.curation`, `synthset.storage`); this module adds retries, artifacts for the Prefect
UI and timings. Scoring runs per shard right after generation, with the CLIP model loaded once
per worker process; dedup and filters run once over all shards before publishing. While items
are short of their count and within their attempt budget, more shards are generated with the
items' next seeds (at most `MAX_TOPUP_ROUNDS` rounds).
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

from synthset.curation.clip import scorer_for
from synthset.curation.config import CurationConfig
from synthset.curation.curate import Curation, Pool, curate, extend_pool, load_pool
from synthset.curation.prior import PriorVersions, load_prior_versions
from synthset.curation.score import ScoreReport, score_shard
from synthset.curation.topup import more_images
from synthset.generators.shard import ShardReport, generate_shard
from synthset.manifest import GeneratorConfig, Manifest, load_manifest
from synthset.plan import Plan, Shard, extend_plan, make_plan
from synthset.storage.publish import PublishedVersion, publish
from synthset.storage.versioning import last_version_number, record_version

MAX_TOPUP_ROUNDS = 8
ITEM_SERIES = ("kept", "shortfall", "attempted", "mean_clip_score", "vendi", "pairwise_distance")

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


@task(
    name="score-shard",
    task_run_name="score-{shard.index}",
    retries=1,
    retry_delay_seconds=2,
    cache_policy=NO_CACHE,
)
def score_shard_task(config: CurationConfig, shard: Shard) -> ScoreReport:
    report = score_shard(shard.folder, scorer_for(config.clip), config)
    if not report.skipped:
        get_run_logger().info(
            "shard %d scored: %d images, %d unreadable, %.1f s",
            shard.index,
            report.scored,
            report.unreadable,
            report.seconds,
        )
    return report


@task(name="curate", task_run_name="curate-{round_}", cache_policy=NO_CACHE)
def curate_task(pool: Pool, manifest: Manifest, prior: PriorVersions, round_: int) -> Curation:
    counts = {i: item.count for i, item in enumerate(manifest.items)}
    prompts = {i: item.prompt for i, item in enumerate(manifest.items)}
    curation = curate(pool, manifest.curation, counts, prompts, prior)
    get_run_logger().info(
        "curated %d images: %d kept, rejected %s",
        len(pool),
        int(curation.kept.sum()),
        curation.rejected_counts() or "none",
    )
    return curation


@task(name="publish-version", cache_policy=NO_CACHE)
def publish_task(
    plan: Plan, tracking_uri: str | None, curation: Curation | None
) -> PublishedVersion:
    first = last_version_number(plan.manifest.dataset, tracking_uri) + 1
    folders = [s.folder for s in plan.shards]
    return publish(plan.layout, plan.digest, folders, plan.manifest, first, curation)


@task(name="record-version", cache_policy=NO_CACHE)
def record_task(
    published: PublishedVersion,
    plan: Plan,
    metrics: dict[str, float],
    tracking_uri: str | None,
    series: dict[str, list[float]],
) -> str:
    return record_version(
        published, plan.manifest, plan.requests_frame(), metrics, tracking_uri, series
    )


def _shortfall(curation: Curation | None) -> list[dict[str, Any]]:
    if curation is None:
        return []
    columns = ["item", "prompt", "count", "kept", "attempted", "budget", "shortfall"]
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in curation.shortfall()[columns].to_dict(orient="records")
    ]


def _curation_artifacts(name: str, version: int, curation: Curation) -> None:
    reasons = curation.rejected_counts()
    create_table_artifact(
        [{"reason": "kept", "images": int(curation.kept.sum())}]
        + [{"reason": k, "images": v} for k, v in reasons.items()],
        key=_artifact_key(name, "rejections"),
        description=f"{name} v{version}: kept and rejected images per reason",
    )
    items = curation.items.round(3).astype(object)
    create_table_artifact(
        items.where(items.notna(), None).to_dict(orient="records"),
        key=_artifact_key(name, "items"),
        description=f"{name} v{version}: per item wanted, attempted, kept, shortfall, diversity",
    )


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


class _Progress:
    """Runs shards through generation and scoring, keeping reports, timings and progress."""

    def __init__(self, artifact_id: Any, total: int):
        self.artifact_id, self.total, self.done = artifact_id, total, 0
        self.reports: list[ShardReport] = []
        self.seconds = {"generate": 0.0, "score": 0.0, "curate": 0.0}

    def shards(self, manifest: Manifest, shards: tuple[Shard, ...]) -> None:
        for shard in shards:
            t0 = time.perf_counter()
            self.reports.append(generate_shard_task(manifest.generator, shard))
            t1 = time.perf_counter()
            if manifest.curation.enabled:
                score_shard_task(manifest.curation, shard)
            self.seconds["generate"] += t1 - t0
            self.seconds["score"] += time.perf_counter() - t1
            self.done += len(shard.requests)
            update_progress_artifact(self.artifact_id, 100.0 * self.done / self.total)
            for listener in PROGRESS_LISTENERS:
                listener(self.done, self.total)


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
    config = manifest.curation
    prior = PriorVersions()
    if config.enabled:
        scorer = scorer_for(config.clip)
        prior = load_prior_versions(plan.layout, config.dedup.prior_versions, scorer.identity)
        for skipped in prior.skipped:
            logger.warning("prior version not used for dedup: %s", skipped)
    t_plan = time.perf_counter()

    run = _Progress(progress_id, total)
    pending, pool, curation = plan.shards, None, None
    for round_ in range(MAX_TOPUP_ROUNDS + 1):
        run.shards(manifest, pending)
        if not config.enabled:
            break
        t_curate = time.perf_counter()
        folders = [s.folder for s in pending]
        pool = load_pool(folders) if pool is None else extend_pool(pool, folders)
        curation = curate_task(pool, manifest, prior, round_)
        run.seconds["curate"] += time.perf_counter() - t_curate
        more = more_images(curation, {i: it.count for i, it in enumerate(manifest.items)}, config)
        if not more or round_ == MAX_TOPUP_ROUNDS:
            break
        plan, pending = extend_plan(plan, more)
        run.total = total = len(plan.requests)
        logger.info(
            "top-up %d: %d more images for %d items short of their count",
            round_ + 1,
            sum(more.values()),
            len(more),
        )
    t_gen = time.perf_counter()

    published = publish_task(plan, tracking_uri, curation)
    t_pub = time.perf_counter()
    reports = run.reports
    generated = sum(r.images for r in reports)
    metrics = {
        "images": published.images,
        "rejected": published.rejected,
        "shards_skipped": sum(r.skipped for r in reports),
        "seconds_plan": t_plan - t0,
        "seconds_generate": run.seconds["generate"],
        "seconds_score": run.seconds["score"],
        "seconds_curate": run.seconds["curate"],
        "seconds_publish": t_pub - t_gen,
        "images_per_s": generated / max(run.seconds["generate"], 1e-9),
        "topup_rounds": round_ if config.enabled else 0,
        "topup_images": total - sum(item.count for item in manifest.items),
        **(curation.metrics if curation is not None else {}),
    }
    series = {}
    if curation is not None:
        series = {f"item.{k}": curation.items[k].astype(float).tolist() for k in ITEM_SERIES}
    run_id = record_task(published, plan, metrics, tracking_uri, series)
    short = _shortfall(curation)
    for row in short:
        logger.warning(
            "items[%d] %r: %d of %d kept after %d attempts (budget %d): %d short",
            row["item"],
            row["prompt"],
            row["kept"],
            row["count"],
            row["attempted"],
            row["budget"],
            row["shortfall"],
        )
    create_table_artifact(
        _summary_table(plan, reports),
        key=_artifact_key(manifest.dataset, "shards"),
        description=f"{manifest.dataset} v{published.version}: "
        f"{published.images} images, digest {published.digest}",
    )
    if curation is not None:
        _curation_artifacts(manifest.dataset, published.version, curation)
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
        "generated": total,
        "rejected_by_reason": curation.rejected_counts() if curation is not None else {},
        "shortfall": short,
        "topup_rounds": metrics["topup_rounds"],
        "mlflow_run_id": run_id,
        "flow_run_id": str(flow_run.get_id()),
        "seconds": time.perf_counter() - t0,
    }
