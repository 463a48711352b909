"""The `generate_dataset` Prefect flow: `synthset.pipeline.run_dataset` on the Prefect runner,
with what the Prefect UI shows (progress, shard, rejection and per-item artifacts, logs).

The task runner is chosen at call time: `run_flow(..., runner="ray")` runs the same flow with
shards on a Ray cluster. The manifest is a file the worker can read (`manifest_path`) or the
manifest itself (`manifest`, a deployment parameter), whose relative paths resolve against the
worker's working directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run

from synthset.curation.curate import Curation
from synthset.errors import SynthsetError
from synthset.flows.artifacts import artifact_key
from synthset.manifest import Manifest, load_manifest, parse_manifest
from synthset.pipeline import Resume, RunObserver, RunResult, run_dataset
from synthset.plan import Plan
from synthset.quality.summary import headline_markdown
from synthset.runners.gpu import GpuSlots
from synthset.runners.prefect import PrefectRunner, task_runner
from synthset.runners.ray import RaySettings, preflight

OBSERVERS: list[RunObserver] = []
"""Observers called in-process besides the flow's own (the CLI's progress bar)."""

INLINE = "<inline manifest>"
"""How errors name a manifest given as a flow parameter."""


class FlowArtifacts(RunObserver):
    """Logs and Prefect artifacts: progress per batch, shards, rejections, items, the quality
    report's headline; a killed earlier run of the plan is marked crashed when this one
    resumes its work."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.logger = get_run_logger()
        self.tracking_uri = tracking_uri
        self.progress_id: Any = None
        self.name, self.planned_images, self.topups = "", 0, 0

    def planned(self, plan: Plan) -> None:
        n, self.name = len(plan.requests), plan.manifest.dataset
        self.planned_images = n
        _tag_flow_run(f"dataset:{self.name}")
        self.progress_id = create_progress_artifact(
            0.0,
            key=artifact_key(self.name, "progress"),
            description=f"{self.name}: {n} images in {len(plan.shards)} shards",
        )
        self.logger.info("plan %s: %d images in %d shards", plan.digest, n, len(plan.shards))

    def waiting(self, holder: dict[str, Any]) -> None:
        who = holder.get("prefect.flow_run_id") or f"pid {holder.get('pid')}"
        self.logger.warning("another run of this plan (%s) is in progress; waiting for it", who)

    def resuming(self, resume: Resume) -> None:
        self.logger.warning("%s", resume.describe())
        killed = (resume.killed or {}).get("prefect.flow_run_id")
        if killed and _mark_crashed(killed, str(flow_run.get_id())):
            self.logger.warning("flow run %s marked CRASHED: its process died", killed)

    def progress(self, done: int, total: int) -> None:
        text = f"{self.name}: {done} of {total} images"
        if self.topups:
            text += f" ({self.topups} top-up rounds, +{total - self.planned_images} images)"
        update_progress_artifact(self.progress_id, 100.0 * done / total, description=text)

    def prior_skipped(self, reason: str) -> None:
        self.logger.warning("prior version not used for dedup: %s", reason)

    def curated(self, curation: Curation, round_: int) -> None:
        self.logger.info(
            "curated %d images: %d kept, rejected %s",
            len(curation.rows),
            int(curation.kept.sum()),
            curation.rejected_counts() or "none",
        )

    def topped_up(self, round_: int, more: dict[int, int]) -> None:
        self.topups = round_
        self.logger.info(
            "top-up %d: %d more images for %d items short of their count",
            round_,
            sum(more.values()),
            len(more),
        )

    def finished(self, result: RunResult) -> None:
        p, name = result.published, result.published.name
        for row in result.shortfall():
            self.logger.warning(
                "items[%d] %r: %d of %d kept after %d attempts (budget %d): %d short",
                *(row[k] for k in ("item", "prompt", "kept", "count", "attempted", "budget")),
                row["shortfall"],
            )
        create_table_artifact(
            _shard_table(result),
            key=artifact_key(name, "shards"),
            description=f"{name} v{p.version}: {p.images} images, digest {p.digest}",
        )
        if result.curation is not None:
            _curation_artifacts(name, p.version, result.curation)
        _tag_flow_run(f"dataset:{name}", f"version:v{p.version}")
        card_file = p.path / "README.md"
        card = card_file.read_text() if card_file.is_file() else ""
        unchanged = f"**Unchanged**: equals v{p.version}; nothing new was published.\n\n"
        create_markdown_artifact(
            (unchanged if p.unchanged else "")
            + _run_header(result, self.tracking_uri)
            + f"\n\n{card}",
            key=artifact_key(name, "card"),
            description=f"{name} v{p.version}: the dataset card",
        )
        if quality := headline_markdown(p.path, result.mlflow_run_id, self.tracking_uri):
            create_markdown_artifact(
                quality,
                key=artifact_key(name, "quality"),
                description=f"{name} v{p.version}: quality report headline",
            )
        self.logger.info("published %s v%d (%d images) at %s", name, p.version, p.images, p.path)


def _run_header(result: RunResult, tracking_uri: str | None) -> str:
    """The MLflow run (a link where it has a UI), folder, digest and the sample grid (shown
    from MLflow where it serves artifacts)."""
    from synthset.storage.versioning import GRID, artifact_url, run_url

    run_id, p = result.mlflow_run_id, result.published
    url = run_url(run_id, tracking_uri)
    text = f"**MLflow run**: {f'[{run_id}]({url})' if url else f'`{run_id}`'} · folder "
    text += f"`{p.path}` · digest `{p.digest}`"
    if grid := artifact_url(run_id, GRID, tracking_uri):
        return text + f"\n\n![sample grid]({grid})"
    return text + f" · sample grid: `{GRID}` in the MLflow run"


def _shard_table(result: RunResult) -> list[dict[str, Any]]:
    shards = {s.index: s for s in result.plan.shards}
    return [
        {
            "shard": o.generated.index,
            "shard_id": shards[o.generated.index].id,
            "images": o.generated.images,
            "failed": o.generated.errors,
            "seconds": round(o.generated.seconds, 2),
            "status": "skipped (done)" if o.generated.skipped else "generated",
            "worker": o.worker,
            "model_loads": o.model_loads,
        }
        for o in sorted(result.outcomes, key=lambda o: o.generated.index)
    ]


def _curation_artifacts(name: str, version: int, curation: Curation) -> None:
    reasons = curation.rejected_counts()
    create_table_artifact(
        [{"reason": "kept", "images": int(curation.kept.sum())}]
        + [{"reason": k, "images": v} for k, v in reasons.items()],
        key=artifact_key(name, "rejections"),
        description=f"{name} v{version}: kept and rejected images per reason",
    )
    items = curation.items.round(3).astype(object)
    create_table_artifact(
        items.where(items.notna(), None).to_dict(orient="records"),
        key=artifact_key(name, "items"),
        description=f"{name} v{version}: per item wanted, attempted, kept, shortfall, diversity",
    )


def _run_name() -> str:
    """The dataset's name (what a data engineer looks for), else the manifest file's."""
    inline = flow_run.parameters.get("manifest")
    if isinstance(inline, dict):
        return str(inline.get("dataset") or "manifest")
    path = Path(flow_run.parameters.get("manifest_path") or "manifest")
    try:
        return str(yaml.safe_load(path.read_text())["dataset"])
    except Exception:
        return path.stem


def _ui_url() -> str | None:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    ui = PREFECT_UI_URL.value() or (PREFECT_API_URL.value() or "").removesuffix("/api")
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run.get_id()}" if ui else None


def _mark_crashed(flow_run_id: str, by: str) -> bool:
    """Set a flow run whose process died (it still says RUNNING) to CRASHED."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            return False
        if run.state is None or not run.state.is_running():
            return False
        state = Crashed(message=f"its process died; flow run {by} resumed its work")
        client.set_flow_run_state(run.id, state, force=True)
    return True


def _tag_flow_run(*tags: str) -> None:
    """Add tags to this flow run (Prefect's `tags` context reaches task runs only)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run.get_id())
        client.update_flow_run(run.id, tags=sorted({*run.tags, *tags}))


@flow(
    name="generate_dataset",
    flow_run_name=_run_name,
    log_prints=True,
    task_runner=task_runner("prefect"),
)
def generate_dataset(
    manifest_path: str | None = None,
    datasets_root: str | None = None,
    tracking_uri: str | None = None,
    shard_timeout: float | None = None,
    force: bool = False,
    fail_on_shortfall: bool = False,
    manifest: dict[str, Any] | None = None,
    shards_per_gpu: int | None = None,
) -> dict[str, Any]:
    """Generate, curate, publish and version the dataset a manifest describes: the file at
    `manifest_path`, or `manifest` given inline. `shards_per_gpu` sets how many shards (of
    all flow runs) may share one GPU; unset, an existing limit is kept, else 1.

    Returns the version's name, number, folder, digest, image counts, shortfall, MLflow run
    id and the flow run's id.
    """
    prefect = {"prefect.flow_run_id": str(flow_run.get_id())}
    if url := _ui_url():
        prefect["prefect.flow_run_url"] = url
    result = run_dataset(
        resolve_manifest(manifest_path, manifest),
        PrefectRunner(shard_timeout, GpuSlots(shards_per_gpu)),
        datasets_root=datasets_root,
        tracking_uri=tracking_uri,
        observers=[FlowArtifacts(tracking_uri), *OBSERVERS],
        tags=prefect,
        force=force,
        fail_on_shortfall=fail_on_shortfall,
    )
    return {**result.summary(), "flow_run_id": str(flow_run.get_id())}


def resolve_manifest(path: str | None, inline: dict[str, Any] | None) -> Manifest:
    """The manifest of the flow's parameters: exactly one of a file and an inline mapping."""
    if (path is None) == (inline is None):
        raise SynthsetError(
            "give the manifest as exactly one of manifest_path and manifest (inline)"
        )
    if inline is not None:
        return parse_manifest(inline, Path.cwd(), INLINE)
    return load_manifest(path)


def run_flow(
    manifest_path: str, runner: str = "prefect", ray: RaySettings | None = None, **kwargs: Any
) -> dict[str, Any]:
    """`generate_dataset` with the task runner of `runner` (`prefect` or `ray`); for Ray, the
    cluster is checked before the flow run starts (`synthset.runners.ray.preflight`)."""
    if runner == "ray":
        preflight(ray or RaySettings(), load_manifest(manifest_path))
    return generate_dataset.with_options(task_runner=task_runner(runner, ray))(
        manifest_path, **kwargs
    )
