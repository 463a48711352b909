"""Dataset versions in MLflow: one experiment per dataset, one finished run per version.

Experiment `synthset/<name>` holds a run per published version, tagged `synthset.dataset`,
`synthset.version` and `synthset.digest`, with the resolved config as params, timings as
metrics, the manifest as a logged input and the version folder as artifacts under `dataset/`.
Aliases (`latest`, `production`, ...) are experiment tags `synthset.alias.<alias>` = version.
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from synthset.errors import DatasetNotFound, SynthsetError
from synthset.generators.builtin import model_fingerprint
from synthset.manifest import Manifest, plan_digest
from synthset.storage.grid import sample_grid
from synthset.storage.public import public
from synthset.storage.publish import PublishedVersion
from synthset.storage.transfer import IMAGES, SHARDS, pack

EXPERIMENT_PREFIX = "synthset/"
ARTIFACT_PATH = "dataset"
GRID = "sample_grid.png"
TAG_PARENT = "synthset.parent_version"
TAG_DATASET = "synthset.dataset"
TAG_VERSION = "synthset.version"
TAG_DIGEST = "synthset.digest"
TAG_PLAN = "synthset.plan"
ALIAS_PREFIX = "synthset.alias."
LATEST = "latest"
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class VersionInfo:
    """A published version as MLflow records it (`images` holds the row count of a table)."""

    name: str
    version: int
    run_id: str
    digest: str
    images: int
    created: pd.Timestamp
    aliases: tuple[str, ...] = field(default=())


_FAIL_FAST = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
"""MLflow retries a lost server for minutes by default (7 retries, backoff 2); a pipeline
should fail in seconds and resume later. Set the variables to override."""


def _client(tracking_uri: str | None):
    for key, value in _FAIL_FAST.items():
        os.environ.setdefault(key, value)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def experiment_name(name: str) -> str:
    return EXPERIMENT_PREFIX + name


_KIND = {"mlflow.experimentKind": "custom_model_development"}
"""Without it MLflow 3's UI shows a dataset's experiment as GenAI evaluation runs."""


def _experiment(client: Any, name: str, create: bool = False) -> Any:
    exp = client.get_experiment_by_name(experiment_name(name))
    if exp is None and create:
        from mlflow.exceptions import MlflowException

        try:
            client.create_experiment(experiment_name(name), tags={TAG_DATASET: name, **_KIND})
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        exp = client.get_experiment_by_name(experiment_name(name))
    if exp is None:
        raise DatasetNotFound(
            f"no dataset named {name!r} in the tracking store; `synthset ls` lists the datasets"
        )
    return exp


_TAG_TRIES = 3
_CONFLICTS = ("UNIQUE constraint failed", "duplicate key value violates unique constraint")


def set_experiment_tag(client: Any, experiment_id: str, key: str, value: str) -> None:
    """`client.set_experiment_tag`, tried again when another process created the same tag at
    the same moment.

    MLflow's SQL store writes a tag by reading, then inserting or updating, so of two
    writers of a tag that does not exist yet one fails on the unique key (three runs of one
    dataset at once: "UNIQUE constraint failed: experiment_tags.key"); tried again, it
    updates the row the other inserted. Any other error is raised at once."""
    for attempt in range(_TAG_TRIES):
        try:
            client.set_experiment_tag(experiment_id, key, value)
            return
        except Exception as exc:
            if attempt == _TAG_TRIES - 1 or not any(c in str(exc) for c in _CONFLICTS):
                raise
            time.sleep(0.05 * (attempt + 1))


def _version_runs(client: Any, experiment_id: str) -> Iterator[Any]:
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string="attributes.status = 'FINISHED'",
            max_results=1000,
            page_token=token,
        )
        yield from (r for r in page if TAG_VERSION in r.data.tags)
        token = page.token
        if not token:
            return


def _aliases(experiment: Any) -> dict[int, list[str]]:
    """Aliases set by users, per version (`latest` is not one: it is always the newest)."""
    out: dict[int, list[str]] = {}
    for key, value in experiment.tags.items():
        if key.startswith(ALIAS_PREFIX) and key != ALIAS_PREFIX + LATEST:
            out.setdefault(int(value), []).append(key.removeprefix(ALIAS_PREFIX))
    return out


def list_versions(name: str, tracking_uri: str | None = None) -> list[VersionInfo]:
    """All published versions of a dataset, oldest first, with their aliases; `latest` is the
    highest finished version, whatever order concurrent runs finished in."""
    client = _client(tracking_uri)
    exp = _experiment(client, name)
    runs = sorted(
        _version_runs(client, exp.experiment_id), key=lambda r: int(r.data.tags[TAG_VERSION])
    )
    aliases = _aliases(exp)
    if runs:
        aliases.setdefault(int(runs[-1].data.tags[TAG_VERSION]), []).append(LATEST)
    return [
        VersionInfo(
            name=name,
            version=int(run.data.tags[TAG_VERSION]),
            run_id=run.info.run_id,
            digest=run.data.tags[TAG_DIGEST],
            images=int(run.data.metrics.get("images", run.data.metrics.get("rows", 0))),
            created=pd.Timestamp(run.info.start_time, unit="ms", tz="UTC"),
            aliases=tuple(sorted(aliases.get(int(run.data.tags[TAG_VERSION]), []))),
        )
        for run in runs
    ]


def list_datasets(tracking_uri: str | None = None) -> list[str]:
    """Names of the datasets that have an experiment in the tracking store."""
    client = _client(tracking_uri)
    exps = client.search_experiments(filter_string=f"name LIKE '{EXPERIMENT_PREFIX}%'")
    return sorted(e.name.removeprefix(EXPERIMENT_PREFIX) for e in exps)


def list_versions_or_none(name: str, tracking_uri: str | None = None) -> list[VersionInfo]:
    """`list_versions`, empty for a dataset that has none yet."""
    try:
        return list_versions(name, tracking_uri)
    except DatasetNotFound:
        return []


def last_version_number(name: str, tracking_uri: str | None = None) -> int:
    """The highest version number recorded for `name`, 0 if none."""
    return max((v.version for v in list_versions_or_none(name, tracking_uri)), default=0)


def parse_ref(ref: str) -> tuple[str, str | None]:
    """`NAME`, `NAME@3`, `NAME@v3` or `NAME@production` → (name, version-or-alias or None)."""
    name, _, version = ref.partition("@")
    if not name:
        raise SynthsetError(f"{ref!r}: expected NAME, NAME@VERSION or NAME@ALIAS")
    return name, version or None


def resolve_version(
    name: str, ref: str | int | None = None, tracking_uri: str | None = None
) -> VersionInfo:
    """Find a version by number (`3`, `"v3"`), alias (`"production"`) or, when None, `latest`."""
    versions = list_versions(name, tracking_uri)
    ref = LATEST if ref is None else str(ref)
    if re.fullmatch(r"v?\d+", ref):
        wanted = int(ref.lstrip("v"))
        match = [v for v in versions if v.version == wanted]
    else:
        match = [v for v in versions if ref in v.aliases]
    if not match:
        known = ", ".join(f"v{v.version}" for v in versions) or "none"
        raise DatasetNotFound(f"{name}@{ref} does not exist; versions: {known}")
    return match[0]


def set_alias(
    name: str, ref: str | int, alias: str, tracking_uri: str | None = None
) -> VersionInfo:
    """Point `alias` at a version (moving it if it pointed elsewhere)."""
    if not _ALIAS.match(alias) or alias == LATEST:
        raise SynthsetError(
            f"alias {alias!r} is not allowed: use lower-case letters, digits, '-' "
            "or '_', starting with a letter; 'latest' moves by itself"
        )
    info = resolve_version(name, ref, tracking_uri)
    client = _client(tracking_uri)
    set_experiment_tag(
        client, _experiment(client, name).experiment_id, ALIAS_PREFIX + alias, str(info.version)
    )
    return resolve_version(name, info.version, tracking_uri)


_PARAM_CHARS = 500


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out |= _flatten(f"{prefix}.{key}", inner)
        return out
    return {prefix: value}


def _params(manifest: Manifest, images_requested: int) -> dict[str, str]:
    g = manifest.generator
    params = {f"generator.{k}": v for k, v in public(g.model_dump(mode="json")).items()}
    if g.kind == "diffusers":
        params["generator.weights"] = model_fingerprint(g.model, g.revision)
    params |= _flatten("curation", manifest.curation.model_dump(mode="json"))
    params |= {
        "dataset": manifest.dataset,
        "shard_size": manifest.shard_size,
        "items": len(manifest.items),
        "images_requested": images_requested,
        "plan": plan_digest(manifest),
    }
    out = {k: str(public(v)) for k, v in params.items()}
    return {k: v if len(v) <= _PARAM_CHARS else v[: _PARAM_CHARS - 1] + "…" for k, v in out.items()}


def _log_manifest_input(
    client: Any, run_id: str, manifest: Manifest, requests: pd.DataFrame
) -> None:
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    requests = requests.map(public)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = mlflow.data.from_pandas(
            requests, name=f"{manifest.dataset}-manifest", digest=plan_digest(manifest)
        )._to_mlflow_entity()
    tags = [InputTag(key=MLFLOW_DATASET_CONTEXT, value="manifest")]
    client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=tags)])


def _upload_folder(client: Any, run_id: str, folder: Path, workers: int = 8) -> None:
    """Upload a version folder as the run's `dataset/` artifacts: its images as a few tar
    shards under `dataset/shards/` (`synthset.storage.transfer`), every other file as itself,
    several at a time (MLflow's `log_artifacts` sends one file after another)."""
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-upload-") as tmp:
        shards = pack(folder, Path(tmp))
        files = [p for p in folder.rglob("*") if p.is_file() and p.parent != folder / IMAGES]
        targets = [
            posixpath.join(ARTIFACT_PATH, *p.relative_to(folder).parent.parts) for p in files
        ]
        files += shards
        targets += [posixpath.join(ARTIFACT_PATH, SHARDS)] * len(shards)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda f, t: client.log_artifact(run_id, str(f), t), files, targets))


def record_run(
    published: PublishedVersion,
    tags: Mapping[str, str],
    log: Callable[[Any, str], None],
    tracking_uri: str | None = None,
    started: float | None = None,
) -> str:
    """Record a published version as a finished MLflow run; `latest` moves to the highest version.

    `log(client, run_id)` logs what is particular to the kind of dataset; then the version
    folder is uploaded. The run carries the version tags only once its artifacts are uploaded,
    and a failure marks it FAILED, so a run that failed half-way is never mistaken for a
    version. `started` (epoch seconds) makes the run's duration cover the whole job. Returns
    the run id.
    """
    from mlflow.entities import RunTag

    client = _client(tracking_uri)
    exp = _experiment(client, published.name, create=True)
    parent = {TAG_PARENT: str(published.version - 1)} if published.version > 1 else {}
    run = client.create_run(
        exp.experiment_id,
        start_time=int(started * 1000) if started else None,
        run_name=f"{published.name}-v{published.version}",
        tags={TAG_DATASET: published.name, **parent, **tags},
    )
    run_id = run.info.run_id
    try:
        log(client, run_id)
        _upload_folder(client, run_id, published.path)
        client.log_batch(
            run_id,
            tags=[
                RunTag(TAG_VERSION, str(published.version)),
                RunTag(TAG_DIGEST, published.digest),
            ],
        )
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    _show_latest(client, published.name, tracking_uri)
    return run_id


def _show_latest(client: Any, name: str, tracking_uri: str | None) -> None:
    """Mirror `latest` into the experiment's tags for the MLflow UI. Runs finishing at once
    may write it in any order; each re-reads until what it wrote is the newest it sees, so
    the last write names the newest version."""
    exp_id = _experiment(client, name).experiment_id
    shown = None
    while True:
        newest = max(v.version for v in list_versions(name, tracking_uri))
        if newest == shown:
            return
        set_experiment_tag(client, exp_id, ALIAS_PREFIX + LATEST, str(newest))
        shown = newest


def _ui_uri(tracking_uri: str | None) -> str | None:
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


def run_url(run_id: str, tracking_uri: str | None = None) -> str | None:
    """The MLflow UI page of a run, when the tracking store is a server (it has a UI)."""
    if (uri := _ui_uri(tracking_uri)) is None:
        return None
    try:
        exp = _client(uri).get_run(run_id).info.experiment_id
    except Exception:
        return None
    return f"{uri}/#/experiments/{exp}/runs/{run_id}"


def artifact_url(run_id: str, path: str, tracking_uri: str | None = None) -> str | None:
    """A URL that serves one artifact of a run (an image a Markdown page can show)."""
    if (uri := _ui_uri(tracking_uri)) is None:
        return None
    return f"{uri}/get-artifact?path={path}&run_uuid={run_id}"


def check_writable(name: str, tracking_uri: str | None = None) -> None:
    """Fail in seconds, before anything is published, when the tracking store would not take
    the version's record: a server that does not answer, or a store that refuses writes (a
    read-only database). The probe writes the experiment tag `synthset.last_publish`."""
    import mlflow
    from mlflow.utils.time import get_current_time_millis

    uri = tracking_uri or mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5):
                pass
        except OSError as exc:
            raise SynthsetError(
                f"the MLflow server at {uri} does not answer ({exc}); nothing was published "
                "and the generated shards are kept: run again once it is back to finish"
            ) from exc
    try:
        client = _client(tracking_uri)
        exp = _experiment(client, name, create=True)
        set_experiment_tag(
            client, exp.experiment_id, "synthset.last_publish", str(get_current_time_millis())
        )
    except SynthsetError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SynthsetError(
            f"the tracking store {uri} refused a write ({first}); nothing was published and "
            "the generated shards are kept: run again once it takes writes to finish"
        ) from exc


def fail_abandoned_runs(name: str, plan: str, tracking_uri: str | None = None) -> list[str]:
    """Mark FAILED the runs of `plan` left RUNNING by a killed run (the caller holds the
    plan's lock, so no live run of it is recording); returns their ids."""
    client = _client(tracking_uri)
    try:
        exp = _experiment(client, name)
    except DatasetNotFound:
        return []
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{TAG_PLAN}` = '{plan}'",
    )
    for run in runs:
        client.set_terminated(run.info.run_id, "FAILED")
    return [run.info.run_id for run in runs]


def record_version(
    published: PublishedVersion,
    manifest: Manifest,
    requests: pd.DataFrame,
    metrics: Mapping[str, float],
    tracking_uri: str | None = None,
    series: Mapping[str, Sequence[float]] | None = None,
    tags: Mapping[str, str] | None = None,
    started: float | None = None,
) -> str:
    """Record a published image dataset version (see `record_run`) with its manifest and a
    sample grid (`sample_grid.png`, beside `dataset/`, outside the digest).

    `series` are per-item metrics, logged with the item index as the step (one chart per
    metric in the MLflow UI; NaN values are left out); `tags` are added to the run (the Prefect
    flow run that made it). Returns the run id.
    """
    from mlflow.entities import Metric, Param
    from mlflow.utils.time import get_current_time_millis

    def log(client: Any, run_id: str) -> None:
        now = get_current_time_millis()
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in _params(manifest, len(requests)).items()],
        )
        steps = [
            Metric(key, float(v), now, step)
            for key, values in (series or {}).items()
            for step, v in enumerate(values)
            if v == v
        ]
        for start in range(0, len(steps), 1000):
            client.log_batch(run_id, metrics=steps[start : start + 1000])
        _log_manifest_input(client, run_id, manifest, requests)
        files = pd.read_parquet(published.path / "metadata.parquet", columns=["file_name"])
        grid = sample_grid(published.path, files["file_name"].tolist())
        if grid is not None:
            client.log_image(run_id, grid, artifact_file=GRID)

    run_tags = {TAG_PLAN: plan_digest(manifest), **(tags or {})}
    return record_run(published, run_tags, log, tracking_uri, started)
