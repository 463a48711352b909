"""What every private release shares, whatever the modality: the outcome of a release, where
its private report goes, and the config and the (ε, δ) as MLflow params and metrics.

A modality's steps (load, fit, sample, audit, gate with `synthset.privacy.gate`, report with
`synthset.privacy.report`, publish or record the blocked attempt with
`synthset.privacy.publish`) are plain functions in its own package; the tabular ones are
`synthset.privacy.tabular.release`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from synthset.layout import DatasetLayout, datasets_root


@dataclass
class Outcome:
    """What a release did: the gate's decision, the report, and the version if published."""

    name: str
    passed: bool
    reasons: list[str]
    report: Path
    metrics: dict[str, float]
    privacy: dict[str, Any] | None
    version: int | None = None
    path: Path | None = None
    digest: str | None = None
    rows: int = 0
    mlflow_run_id: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def published_as(
        cls,
        version: Any,
        report: Path,
        metrics: dict[str, float],
        privacy: dict[str, Any] | None,
        run_id: str,
    ) -> Outcome:
        """A release the gate passed, published as `version` (a `PublishedVersion`)."""
        return cls(
            name=version.name,
            passed=True,
            reasons=[],
            report=report,
            metrics=metrics,
            privacy=privacy,
            version=version.version,
            path=version.path,
            digest=version.digest,
            rows=version.images,
            mlflow_run_id=run_id,
        )

    @classmethod
    def blocked_by(
        cls,
        name: str,
        reasons: list[str],
        report: Path,
        metrics: dict[str, float],
        privacy: dict[str, Any] | None,
        run_id: str,
    ) -> Outcome:
        """A release the gate blocked: nothing published, its attempt recorded as `run_id`."""
        return cls(name, False, reasons, report, metrics, privacy, mlflow_run_id=run_id)


def report_folder(name: str, root: str | Path | None = None) -> Path:
    """A new folder for one release's private report: `<datasets root>/<name>/.reports/<time>/`
    (next to the versions, never inside one)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return (
        DatasetLayout(Path(root) if root else datasets_root(), name).dataset_dir
        / ".reports"
        / stamp
    )


def params_of(config: BaseModel) -> dict[str, Any]:
    """A release config as flat MLflow params (`section.key`)."""
    return flat_params(config.model_dump(mode="json"))


def flat_params(values: dict[str, Any]) -> dict[str, Any]:
    """Nested config values as flat MLflow params (`section.key`)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix] = value

    walk("", values)
    return flat


def privacy_metrics(privacy: dict[str, Any] | None) -> dict[str, float]:
    """The (ε, δ) spent, as metrics (none without DP)."""
    if not privacy:
        return {}
    return {"epsilon": privacy["spent"]["epsilon"], "delta": privacy["spent"]["delta"]}
