"""A private release as a synthset dataset version, for any modality, and its MLflow record.

A version folder holds what the modality writes (the synthetic data, its card) and
`privacy.json` (the (ε, δ) accounting, or a statement that there is none). It is assembled
under `.staging/` and renamed to the first free `v<N>`, like image versions, and its digest
covers every file. The MLflow run of the version carries the folder as `dataset/` artifacts
(what `synthset pull` downloads) and the private audit report as `report/` artifacts, which
`pull` never fetches. A release that the gate blocks publishes no folder; its run is
recorded FAILED, with the report, the reasons and no version. The tabular version is
`synthset.privacy.tabular.publish`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from synthset.layout import DatasetLayout
from synthset.storage.digest import tree_digest
from synthset.storage.publish import PublishedVersion, rename_to_free_version
from synthset.storage.versioning import TAG_DATASET, _client, _experiment, record_run

PRIVACY = "privacy.json"
CARD = "README.md"
REPORT_ARTIFACTS = "report"
TAG_KIND = "synthset.kind"
TAG_BLOCKED = "synthset.blocked"


def publish_version(
    layout: DatasetLayout,
    kind: str,
    privacy: dict[str, Any],
    write: Callable[[Path], int],
    card: Callable[[int], str],
    first_version: int = 1,
) -> PublishedVersion:
    """Write a version under staging, then rename it to the first free `v<N>`.

    `write(folder)` writes the modality's files and returns how many records it holds;
    `privacy` goes to `privacy.json`; `card(version)` returns the README text. The digest
    covers every file of the folder.
    """
    staging = layout.staging_dir(f"{kind}-{uuid.uuid4().hex[:12]}") / "version"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    count = write(staging)
    (staging / PRIVACY).write_text(json.dumps(privacy, indent=2, default=str) + "\n")
    try:
        version, target = rename_to_free_version(
            layout, staging, first_version, lambda v: (staging / CARD).write_text(card(v))
        )
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.parent.parent.rmdir()
    return PublishedVersion(layout.name, version, target, tree_digest(target), count, 0)


def log_run(
    client: Any,
    run_id: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    report: Path | None,
) -> None:
    """Log params, metrics (None and NaN left out) and the report folder's files."""
    from mlflow.entities import Metric, Param
    from mlflow.utils.time import get_current_time_millis

    now = get_current_time_millis()
    values = [Param(k, str(v)[:500]) for k, v in params.items()]
    numbers = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and v == v]
    for start in range(0, max(len(values), len(numbers)), 100):
        client.log_batch(
            run_id, metrics=numbers[start : start + 100], params=values[start : start + 100]
        )
    if report is not None:
        for path in sorted(p for p in Path(report).iterdir() if p.is_file()):
            client.log_artifact(run_id, str(path), REPORT_ARTIFACTS)


def record_version(
    published: PublishedVersion,
    kind: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    report: Path | None,
    tracking_uri: str | None = None,
) -> str:
    """Record a published version as a finished MLflow run; `latest` moves to the newest.

    As every version (`record_run`): the version tags are set only after every artifact is
    uploaded, and a failure marks the run FAILED. Returns the run id.
    """
    return record_run(
        published,
        {TAG_KIND: kind},
        lambda client, run_id: log_run(client, run_id, params, metrics, report),
        tracking_uri,
    )


def record_blocked(
    name: str,
    kind: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    reasons: list[str],
    report: Path | None,
    tracking_uri: str | None = None,
) -> str:
    """Record a blocked release: a FAILED run with the report and the reasons, no version."""
    client = _client(tracking_uri)
    exp = _experiment(client, name, create=True)
    run = client.create_run(
        exp.experiment_id,
        run_name=f"{name}-blocked",
        tags={TAG_DATASET: name, TAG_KIND: kind, TAG_BLOCKED: "; ".join(reasons)[:5000]},
    )
    try:
        log_run(client, run.info.run_id, params, metrics, report)
    finally:
        client.set_terminated(run.info.run_id, "FAILED")
    return run.info.run_id
