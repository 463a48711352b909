"""What every synthset flow shows the Prefect UI in the same way: artifact keys, and for a
private release (table or images) its gate, report link and blocking."""

from __future__ import annotations

import re
from collections.abc import Callable
from logging import Logger, LoggerAdapter
from pathlib import Path
from typing import Any

from synthset.privacy.errors import ReleaseBlocked


def artifact_key(name: str, suffix: str) -> str:
    """A Prefect artifact key (lower-case letters, digits, dashes) for a dataset's artifact."""
    return re.sub(r"[^a-z0-9-]", "-", f"{name}-{suffix}".lower())


def post_release(
    dataset: str,
    summary: tuple[str, str, str],
    gate: Any,
    report: Path,
    link_text: str,
) -> None:
    """The release's markdown `summary` (text, key suffix, description), a table of the gate's
    checks and a link to the report."""
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    text, suffix, description = summary
    create_markdown_artifact(text, key=artifact_key(dataset, suffix), description=description)
    create_table_artifact(
        gate.checks, key=artifact_key(dataset, "gate"), description=f"{dataset}: gate checks"
    )
    create_link_artifact(
        report.resolve().as_uri(),
        link_text=link_text,
        key=artifact_key(dataset, "report"),
        description=f"{dataset}: self-contained audit report",
    )


def refuse_blocked(
    dataset: str,
    gate: Any,
    block: Callable[[], Any],
    report: Path,
    logger: Logger | LoggerAdapter,
) -> None:
    """When the gate failed: record the blocked release (`block()`), log each reason and fail
    the flow run with them; nothing is published."""
    if gate.passed:
        return
    outcome = block()
    for reason in outcome.reasons:
        logger.error("gate failed: %s", reason)
    raise ReleaseBlocked(dataset, outcome.reasons, str(report.parent))


def release_result(outcome: Any, report: Path, count: str, **extra: Any) -> dict[str, Any]:
    """A published release as the flow's JSON-able result; `count` names the record count."""
    from prefect.runtime import flow_run

    return {
        "name": outcome.name,
        "version": outcome.version,
        "path": str(outcome.path),
        "digest": outcome.digest,
        count: outcome.rows,
        "report": str(report),
        "metrics": outcome.metrics,
        "privacy": outcome.privacy,
        **extra,
        "mlflow_run_id": outcome.mlflow_run_id,
        "flow_run_id": str(flow_run.get_id()),
    }
