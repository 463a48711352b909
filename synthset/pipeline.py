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
from synthset.quality.report import report_version
from synthset.storage.history import earlier_versions
from synthset.storage.lock import plan_lock
from synthset.storage.publish import (
    PublishedVersion,
    pending_version,
    publish,
    release_staging,
)
from synthset.storage.versioning import (
    check_writable,
    fail_abandoned_runs,
    list_versions_or_none,
    record_version,
)

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


BatchDone = Callable[[int, int], None]
"""`(shard index, images)`: called as each batch of a shard is made, where the runner can."""


def process_shard(
    generator: GeneratorConfig,
    curation: CurationConfig,
    shard: Shard,
    on_batch: BatchDone | None = None,
) -> ShardOutcome:
    """Generate a shard, then score it while its images are still in the page cache.

    Models load once per process (`load_pipeline`, `load_scorer` caches), so a worker that
    runs many shards loads each model once."""
    report = generate_shard(
        generator, shard, None if on_batch is None else lambda n: on_batch(shard.index, n)
    )
    scored = None
    if curation.enabled:
        scored = score_shard(shard.folder, scorer_for(curation.clip), curation)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    return ShardOutcome(report, scored, worker, pipeline_loads())


@dataclass(frozen=True)
class Resume:
    """What earlier runs of a plan left in staging: shards made, a version renamed into place
    but not recorded, and, when the last one was killed, who it was (pid, host, its tags)."""

    shards_done: int
    shards: int
    pending_version: int | None
    killed: dict[str, Any] | None
    abandoned_runs: tuple[str, ...] = ()

    def describe(self) -> str:
        text = f"resuming: {self.shards_done} of {self.shards} shards already made"
        if self.pending_version is not None:
            text += f"; v{self.pending_version} was published but not recorded, finishing it"
        if self.killed:
            who = self.killed.get("prefect.flow_run_id") or f"pid {self.killed.get('pid')}"
            text += f"; the earlier run ({who} on {self.killed.get('host')}) was killed"
        if self.abandoned_runs:
            text += f"; its MLflow run {', '.join(self.abandoned_runs)} marked FAILED"
        return text


def _resume(plan: Plan, killed: dict[str, Any] | None, tracking_uri: str | None) -> Resume | None:
    done = sum(s.done for s in plan.shards)
    pending = pending_version(plan.layout, plan.digest)
    if not (done or pending or killed):
        return None
    abandoned = fail_abandoned_runs(plan.manifest.dataset, plan.digest, tracking_uri)
    number = pending[0] if pending else None
    return Resume(done, len(plan.shards), number, killed, tuple(abandoned))


class Runner(Protocol):
    """Where the work of a run happens."""

    def check(self, plan: Plan) -> None:
        """Refuse at once (a `SynthsetError`) a plan the runner can never execute."""

    def map_shards(
        self, plan: Plan, shards: Sequence[Shard], on_batch: BatchDone | None = None
    ) -> Iterator[ShardOutcome]:
        """`process_shard` over `shards`, concurrently where the runner can; outcomes are
        yielded as shards finish. Runners whose shards run in this process pass `on_batch`
        on; others report per shard only."""

    def step(self, name: str, fn: Callable[..., T], *args: Any, label: str | None = None) -> T:
        """Run one single step of the run (`curate`, `publish-version`, `record-version`)."""


class RunObserver:
    """Hears what a run does; every method is optional (the CLI's bar, Prefect artifacts)."""

    def planned(self, plan: Plan) -> None: ...

    def waiting(self, holder: dict[str, Any]) -> None:
        """Another live run of the same plan holds its staging; this one waits for it."""

    def resuming(self, resume: Resume) -> None:
        """Work of an earlier run of the plan is in staging (it failed, or was killed)."""

    def progress(self, done: int, total: int) -> None:
        """`done` of `total` images made (per batch where the runner can, else per shard);
        `total` grows with top-ups."""

    def shard_done(self, outcome: ShardOutcome) -> None: ...

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
    check_writable(plan.manifest.dataset, tracking_uri)
    versions = list_versions_or_none(plan.manifest.dataset, tracking_uri)
    latest = versions[-1] if versions else None
    first = (latest.version if latest else 0) + 1
    same = (latest.version, latest.digest) if latest and not force else None
    pending = pending_version(plan.layout, plan.digest)
    if pending and any(v.version == pending[0] for v in versions):
        pending = None
    folders = [s.folder for s in plan.shards]
    published = publish(
        plan.layout, plan.digest, folders, plan.manifest, first, curation, same, pending
    )
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
        self.made: dict[int, int] = {}
        self.lock = threading.Lock()
        self.topups = 0

    def shards(self, shards: Sequence[Shard]) -> None:
        t = time.perf_counter()
        for outcome in self.runner.map_shards(self.plan, shards, self._count):
            self.outcomes.append(outcome)
            index = outcome.generated.index
            self._count(index, len(self.plan.shards[index].requests), whole=True)
            self.notify.shard_done(outcome)
        self.clock.add("shards", t)

    def _count(self, shard: int, images: int, whole: bool = False) -> None:
        """Images made so far: per batch as shards report them, the whole shard at its end
        (may be called from a runner's worker threads)."""
        with self.lock:
            self.made[shard] = images if whole else self.made.get(shard, 0) + images
            done = sum(self.made.values())
        self.notify.progress(done, len(self.plan.requests))

    def run(self, prior: PriorVersions) -> Curation | None:
        config, pending = self.plan.manifest.curation, self.plan.shards
        pool, curation = None, None
        for round_ in range(MAX_TOPUP_ROUNDS + 1):
            self.shards(pending)
            if not config.enabled:
                return None
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
                return curation
            self.topups = round_ + 1
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
        "topup_rounds": rounds.topups,
        **(curation.metrics if curation is not None else {}),
    }


def _check_shortfall(curation: Curation | None) -> None:
    if curation is not None and len(curation.shortfall()):
        short = curation.shortfall()
        raise ShortfallError(
            f"{len(short)} items short of their count ({int(short['shortfall'].sum())} images) "
            "after their attempt budget; nothing was published (--fail-on-shortfall)"
        )


def _publish_and_record(
    runner: Runner,
    rounds: _Rounds,
    curation: Curation | None,
    clock: _Clock,
    tracking_uri: str | None,
    tags: dict[str, str],
    force: bool,
    started: float,
) -> tuple[PublishedVersion, str, dict[str, float]]:
    """Publish, report, record, then release staging: a run killed in between leaves the
    shards and the journal, and the next run of the plan finishes from there. The quality
    report is built while the shards (and so the rejected images) are still there."""
    plan, t = rounds.plan, time.perf_counter()
    published, run_id = runner.step(
        "publish-version", _publish, plan, tracking_uri, curation, force
    )
    clock.add("publish", t)
    metrics = _metrics(rounds, published, curation, clock)
    if run_id is None:
        t, shards = time.perf_counter(), [s.folder for s in plan.shards]
        metrics |= runner.step(
            "quality-report",
            report_version,
            published.path,
            plan.manifest.report,
            shards,
            tracking_uri,
        )
        metrics["seconds_report"] = time.perf_counter() - t
    run_id = run_id or runner.step(
        "record-version", _record, published, plan, metrics, curation, tracking_uri, tags, started
    )
    release_staging(plan.layout, plan.digest)
    return published, run_id, metrics


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

    A re-run of the same manifest resumes: shards finished in staging are skipped, and a
    version a killed run published but did not record is recorded, not made again. Runs of
    one plan take turns (`plan_lock`); runs of different plans of one dataset go at once and
    get distinct versions. MLflow (a second or more to import) is imported in the background
    while images are made. `tags` go on the MLflow run (e.g. the Prefect flow run that made
    it); its duration covers the run. A run that makes exactly the latest version again
    publishes nothing unless `force`; `fail_on_shortfall` fails a run whose items are short
    of their counts, before publishing.
    """
    t0, started = time.perf_counter(), time.time()
    threading.Thread(target=importlib.import_module, args=("mlflow",), daemon=True).start()
    notify, clock, tags = _Observers(observers), _Clock(), dict(tags or {})
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    generator_class(manifest.generator.kind).check(manifest.generator)
    plan = make_plan(manifest, datasets_root)
    runner.check(plan)
    notify.planned(plan)
    lock = plan.layout.staging_dir(plan.digest).with_suffix(".lock")
    with plan_lock(lock, tags, notify.waiting) as killed:
        if resume := _resume(plan, killed, tracking_uri):
            notify.resuming(resume)
        prior = _prior(plan, tracking_uri, notify)
        clock.add("plan", t0)
        rounds = _Rounds(runner, plan, notify, clock)
        curation = rounds.run(prior)
        if fail_on_shortfall:
            _check_shortfall(curation)
        published, run_id, metrics = _publish_and_record(
            runner, rounds, curation, clock, tracking_uri, tags, force, started
        )
    result = RunResult(
        published,
        run_id,
        rounds.plan,
        curation,
        rounds.outcomes,
        metrics,
        rounds.topups,
        time.perf_counter() - t0,
    )
    notify.finished(result)
    return result
