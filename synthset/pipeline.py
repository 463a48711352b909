"""The whole path from a manifest to a recorded version, as one library call.

`run_dataset(manifest, runner)`: plan → shard work (generate + score) mapped over the shards
by the runner → decide (curate) → top up short items with more shards → publish → record in
MLflow. Nothing here imports Prefect: a runner decides where shard work runs (this process,
Prefect tasks on threads, Ray workers) and may wrap each single step (curate, publish, record)
in something observable; observers hear about progress (a CLI bar, Prefect artifacts).
"""

from __future__ import annotations

import importlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from synthset.curation.clip import scorer_for
from synthset.curation.config import CurationConfig
from synthset.curation.curate import Curation, Pool, curate, extend_pool, load_pool
from synthset.curation.prior import PriorVersions, load_prior_versions
from synthset.curation.score import ScoreReport, score_shard
from synthset.curation.topup import more_images
from synthset.generators.base import generator_class
from synthset.generators.pipeline import pipeline_loads
from synthset.generators.shard import ShardReport, generate_shard
from synthset.manifest import GeneratorConfig, Manifest, load_manifest
from synthset.plan import Plan, Shard, extend_plan, make_plan
from synthset.storage.history import earlier_versions
from synthset.storage.publish import PublishedVersion, publish
from synthset.storage.versioning import list_versions_or_none, record_version

MAX_TOPUP_ROUNDS = 8


class ShortfallError(RuntimeError):
    """Items stayed short of their counts and the run was asked to fail then."""


ITEM_SERIES = ("kept", "shortfall", "attempted", "mean_clip_score", "vendi", "pairwise_distance")
T = TypeVar("T")


@dataclass(frozen=True)
class ShardOutcome:
    """What one shard's work did, and where: `worker` is host:pid, `model_loads` how many
    pipelines that process had loaded when it finished (1 when the model was reused)."""

    generated: ShardReport
    scored: ScoreReport | None
    worker: str
    model_loads: int


def process_shard(
    generator: GeneratorConfig, curation: CurationConfig, shard: Shard
) -> ShardOutcome:
    """Generate a shard, then score it while its images are still in the page cache.

    Models load once per process (`load_pipeline`, `load_scorer` caches), so a worker that
    runs many shards loads each model once."""
    report = generate_shard(generator, shard)
    scored = None
    if curation.enabled:
        scored = score_shard(shard.folder, scorer_for(curation.clip), curation)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    return ShardOutcome(report, scored, worker, pipeline_loads())


class Runner(Protocol):
    """Where the work of a run happens."""

    def check(self, plan: Plan) -> None:
        """Refuse at once (a `SynthsetError`) a plan the runner can never execute."""

    def map_shards(self, plan: Plan, shards: Sequence[Shard]) -> Iterator[ShardOutcome]:
        """`process_shard` over `shards`, concurrently where the runner can; outcomes are
        yielded as shards finish."""

    def step(self, name: str, fn: Callable[..., T], *args: Any, label: str | None = None) -> T:
        """Run one single step of the run (`curate`, `publish-version`, `record-version`)."""


class RunObserver:
    """Hears what a run does; every method is optional (the CLI's bar, Prefect artifacts)."""

    def planned(self, plan: Plan) -> None: ...

    def progress(self, done: int, total: int, outcome: ShardOutcome) -> None: ...

    def prior_skipped(self, reason: str) -> None: ...

    def curated(self, curation: Curation, round_: int) -> None: ...

    def topped_up(self, round_: int, more: dict[int, int]) -> None: ...

    def finished(self, result: RunResult) -> None: ...


@dataclass
class RunResult:
    """A finished run: the published version, its MLflow run, and how it got there."""

    published: PublishedVersion
    mlflow_run_id: str
    plan: Plan
    curation: Curation | None
    outcomes: list[ShardOutcome]
    metrics: dict[str, float]
    topup_rounds: int
    seconds: float

    @property
    def generated(self) -> int:
        return len(self.plan.requests)

    def shortfall(self) -> list[dict[str, Any]]:
        """Items below their count: item, prompt, count, kept, attempted, budget, shortfall."""
        if self.curation is None:
            return []
        columns = ["item", "prompt", "count", "kept", "attempted", "budget", "shortfall"]
        rows = self.curation.shortfall()[columns].to_dict(orient="records")
        return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in rows]

    def summary(self) -> dict[str, Any]:
        """The result as plain JSON-able values (what the Prefect flow returns)."""
        p = self.published
        return {
            "name": p.name,
            "version": p.version,
            "path": str(p.path),
            "digest": p.digest,
            "images": p.images,
            "rejected": p.rejected,
            "generated": self.generated,
            "rejected_by_reason": self.curation.rejected_counts() if self.curation else {},
            "shortfall": self.shortfall(),
            "topup_rounds": self.topup_rounds,
            "unchanged": p.unchanged,
            "mlflow_run_id": self.mlflow_run_id,
            "seconds": self.seconds,
        }


@dataclass
class _Clock:
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("plan", "shards", "curate", "publish"), 0.0)
    )

    def add(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[name] += now - since
        return now


class _Observers:
    """Every observer, called in turn, as one."""

    def __init__(self, observers: Sequence[RunObserver]):
        self.observers = list(observers)

    def __getattr__(self, name: str) -> Callable[..., None]:
        def call(*args: Any) -> None:
            for observer in self.observers:
                getattr(observer, name)(*args)

        return call


def _prior(plan: Plan, tracking_uri: str | None, notify: RunObserver) -> PriorVersions:
    config = plan.manifest.curation
    if not config.enabled:
        return PriorVersions()
    folders, unreadable = earlier_versions(plan.layout, config.dedup.prior_versions, tracking_uri)
    prior = load_prior_versions(folders, scorer_for(config.clip).identity)
    prior.skipped[:0] = unreadable
    for reason in prior.skipped:
        notify.prior_skipped(reason)
    return prior


def _curate(pool: Pool, manifest: Manifest, prior: PriorVersions) -> Curation:
    counts = {i: item.count for i, item in enumerate(manifest.items)}
    prompts = {i: item.prompt for i, item in enumerate(manifest.items)}
    return curate(pool, manifest.curation, counts, prompts, prior)


def _publish(
    plan: Plan, tracking_uri: str | None, curation: Curation | None, force: bool
) -> tuple[PublishedVersion, str | None]:
    """The published version and, when it is the latest one made again (not `force`d), the
    latest version's MLflow run id (nothing new is published or recorded)."""
    versions = list_versions_or_none(plan.manifest.dataset, tracking_uri)
    latest = versions[-1] if versions else None
    first = (latest.version if latest else 0) + 1
    same = (latest.version, latest.digest) if latest and not force else None
    folders = [s.folder for s in plan.shards]
    published = publish(plan.layout, plan.digest, folders, plan.manifest, first, curation, same)
    return published, (latest.run_id if published.unchanged and latest else None)


def _record(
    published: PublishedVersion,
    plan: Plan,
    metrics: dict[str, float],
    curation: Curation | None,
    tracking_uri: str | None,
    tags: Mapping[str, str],
    started: float,
) -> str:
    series = {}
    if curation is not None:
        series = {f"item.{k}": curation.items[k].astype(float).tolist() for k in ITEM_SERIES}
    frame = plan.requests_frame()
    return record_version(
        published, plan.manifest, frame, metrics, tracking_uri, series, tags, started
    )


class _Rounds:
    """Shard work, curation and top-up rounds until every item has its count or budget."""

    def __init__(self, runner: Runner, plan: Plan, notify: RunObserver, clock: _Clock):
        self.runner, self.plan, self.notify, self.clock = runner, plan, notify, clock
        self.outcomes: list[ShardOutcome] = []
        self.done = 0

    def shards(self, shards: Sequence[Shard]) -> None:
        t = time.perf_counter()
        total = len(self.plan.requests)
        for outcome in self.runner.map_shards(self.plan, shards):
            self.outcomes.append(outcome)
            self.done += len(self.plan.shards[outcome.generated.index].requests)
            self.notify.progress(self.done, total, outcome)
        self.clock.add("shards", t)

    def run(self, prior: PriorVersions) -> tuple[Curation | None, int]:
        config, pending = self.plan.manifest.curation, self.plan.shards
        pool, curation = None, None
        for round_ in range(MAX_TOPUP_ROUNDS + 1):
            self.shards(pending)
            if not config.enabled:
                return None, 0
            t = time.perf_counter()
            folders = [s.folder for s in pending]
            pool = load_pool(folders) if pool is None else extend_pool(pool, folders)
            curation = self.runner.step(
                "curate", _curate, pool, self.plan.manifest, prior, label=f"curate-{round_}"
            )
            self.clock.add("curate", t)
            self.notify.curated(curation, round_)
            counts = {i: it.count for i, it in enumerate(self.plan.manifest.items)}
            more = more_images(curation, counts, config)
            if not more or round_ == MAX_TOPUP_ROUNDS:
                return curation, round_
            self.plan, pending = extend_plan(self.plan, more)
            self.notify.topped_up(round_ + 1, more)
        raise AssertionError("unreachable")


def _metrics(
    rounds: _Rounds, published: PublishedVersion, curation: Curation | None, clock: _Clock
) -> dict[str, float]:
    reports = [o.generated for o in rounds.outcomes]
    manifest = rounds.plan.manifest
    generated = sum(r.images for r in reports)
    return {
        "images": published.images,
        "rejected": published.rejected,
        "shards_skipped": sum(r.skipped for r in reports),
        "seconds_plan": clock.seconds["plan"],
        "seconds_shards": clock.seconds["shards"],
        "seconds_generate": sum(r.seconds for r in reports),
        "seconds_score": sum(o.scored.seconds for o in rounds.outcomes if o.scored),
        "seconds_curate": clock.seconds["curate"],
        "seconds_publish": clock.seconds["publish"],
        "images_per_s": generated / max(clock.seconds["shards"], 1e-9),
        "topup_images": len(rounds.plan.requests) - sum(i.count for i in manifest.items),
        **(curation.metrics if curation is not None else {}),
    }


def run_dataset(
    manifest: Manifest | str | Path,
    runner: Runner,
    *,
    datasets_root: str | Path | None = None,
    tracking_uri: str | None = None,
    observers: Sequence[RunObserver] = (),
    tags: Mapping[str, str] | None = None,
    force: bool = False,
    fail_on_shortfall: bool = False,
) -> RunResult:
    """Generate, curate, publish and version the dataset `manifest` describes.

    A re-run of the same manifest resumes: shards finished in staging are skipped. MLflow (a
    second or more to import) is imported in the background while images are made. `tags` go
    on the MLflow run (e.g. the Prefect flow run that made it); its duration covers the run.
    A run that makes exactly the latest version again publishes nothing unless `force`;
    `fail_on_shortfall` fails a run whose items are short of their counts, before publishing.
    """
    t0, started = time.perf_counter(), time.time()
    threading.Thread(target=importlib.import_module, args=("mlflow",), daemon=True).start()
    notify, clock = _Observers(observers), _Clock()
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    generator_class(manifest.generator.kind).check(manifest.generator)
    plan = make_plan(manifest, datasets_root)
    runner.check(plan)
    notify.planned(plan)
    prior = _prior(plan, tracking_uri, notify)
    t = clock.add("plan", t0)
    rounds = _Rounds(runner, plan, notify, clock)
    curation, topups = rounds.run(prior)
    if fail_on_shortfall and curation is not None and len(curation.shortfall()):
        short = curation.shortfall()
        raise ShortfallError(
            f"{len(short)} items short of their count ({int(short['shortfall'].sum())} images) "
            "after their attempt budget; nothing was published (--fail-on-shortfall)"
        )
    t = time.perf_counter()
    published, run_id = runner.step(
        "publish-version", _publish, rounds.plan, tracking_uri, curation, force
    )
    clock.add("publish", t)
    metrics = {**_metrics(rounds, published, curation, clock), "topup_rounds": topups}
    run_id = run_id or runner.step(
        "record-version",
        _record,
        published,
        rounds.plan,
        metrics,
        curation,
        tracking_uri,
        dict(tags or {}),
        started,
    )
    result = RunResult(
        published,
        run_id,
        rounds.plan,
        curation,
        rounds.outcomes,
        metrics,
        topups,
        time.perf_counter() - t0,
    )
    notify.finished(result)
    return result
