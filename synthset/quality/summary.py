"""The report's headline as Markdown (a Prefect artifact), with where the full report is."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from synthset.quality.render import LABELS, fmt
from synthset.quality.report import HTML, JSON, REPORT_DIR


def run_link(run_id: str, tracking_uri: str | None) -> str:
    """The MLflow run as a Markdown link when the tracking store has a UI, else its id."""
    from synthset.storage.versioning import run_url

    if url := run_url(run_id, tracking_uri):
        return f"[{run_id}]({url})"
    store = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "the default tracking store"
    return f"`{run_id}` in {store}"


def _report_link(run_id: str, tracking_uri: str | None) -> str:
    from synthset.storage.versioning import artifact_url

    name = f"dataset/{REPORT_DIR}/{HTML}"
    url = artifact_url(run_id, name, tracking_uri)
    return f"[`{name}`]({url})" if url else f"`{name}`"


def headline_markdown(
    version_folder: Path, run_id: str, tracking_uri: str | None = None
) -> str | None:
    """The headline figures of the version's report and links to it; None without a report."""
    path = Path(version_folder) / REPORT_DIR / JSON
    if not path.is_file():
        return None
    document: dict[str, Any] = json.loads(path.read_text())
    rows = "\n".join(f"| {LABELS.get(k, k)} | {fmt(v)} |" for k, v in document["headline"].items())
    fidelity = document["fidelity"]
    against = (
        f"against {fidelity['reference']['description']} (`{fidelity['reference']['spec']}`)"
        if "reference" in fidelity
        else fidelity.get("unavailable", "")
    )
    space = document["feature_space"]["name"]
    return (
        f"### {document['dataset']} v{document['version']}: quality\n\n"
        f"Features: {space}; fidelity {against}\n\n"
        f"| figure | value |\n|---|---|\n{rows}\n\n"
        f"Full report: {_report_link(run_id, tracking_uri)} in MLflow run "
        f"{run_link(run_id, tracking_uri)}"
        f" · on disk `{path.parent / HTML}`\n"
    )
