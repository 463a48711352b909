"""`quality_report`: what a version holds, how diverse and how real it looks, as
`report/quality.html` (self-contained) and `report/quality.json` inside the version folder.

The version's digest covers its images and metadata, not `report/`, so the report can be
(re)built at any time, e.g. against another reference; it is written whole or not at all.
Rejected images are not part of a version: their thumbnails come from the run's staging
shards, which exist while a run builds its report (before the MLflow record releases them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from synthset.atomic import atomic_path
from synthset.curation.config import ClipConfig
from synthset.errors import SynthsetError
from synthset.quality import charts, compare, diversity, fidelity, render
from synthset.quality.config import ReportConfig
from synthset.quality.features import (
    FeatureSpace,
    stored_embeddings,
    version_features,
    version_space,
)
from synthset.quality.reference import Reference, resolve_reference

REPORT_DIR = "report"
HTML = "quality.html"
JSON = "quality.json"
EXAMPLES = 8
HEADLINE = (
    "images",
    "generated",
    "rejected",
    "duplicate_rate",
    "duplicate_rate_max_prompt",
    "vendi",
    "vendi_per_prompt_mean",
    "clip_score_mean",
    "fd",
    "fd_floor",
    "kid",
    "precision",
    "recall",
    "density",
    "coverage",
    "reference_images",
)
NO_SHARDS = (
    "Thumbnails of rejected images are unavailable: a version does not keep its rejected "
    "images, and the staging shards of the run that made it are released once it is recorded. "
    "The report that run built (logged with the version in MLflow) shows them."
)


@dataclass
class Measured:
    """A version's tables, features and figures (features None when neither stored
    embeddings in the report's space nor images are at hand)."""

    kept: pd.DataFrame
    rejected: pd.DataFrame
    features: np.ndarray | None
    prompts: list[dict[str, Any]]
    overall: dict[str, Any]
    fidelity: dict[str, Any] | None


def _tables(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    kept = pd.read_parquet(folder / "metadata.parquet")
    path = folder / "rejected.parquet"
    rejected = pd.read_parquet(path) if path.is_file() else kept.iloc[:0].assign(reject_reason="")
    return kept, rejected


def _features(folder: Path, kept: pd.DataFrame, space: FeatureSpace) -> np.ndarray | None:
    stored = stored_embeddings(folder, space, kept["sample_id"].tolist())
    if stored is not None:
        return stored
    if not all((folder / f).is_file() for f in kept["file_name"]):
        return None
    return version_features(folder, kept, space)


def measure(
    folder: Path, space: FeatureSpace, reference: np.ndarray | None, nearest_k: int
) -> Measured:
    """Every figure of the version in `folder`; fidelity against `reference` features."""
    kept, rejected = _tables(folder)
    features = _features(folder, kept, space)
    vectors = features if features is not None else np.zeros((len(kept), 0), np.float32)
    prompts = diversity.per_prompt(kept, rejected, vectors)
    overall = diversity.overall(kept, rejected, vectors, prompts)
    if features is None:
        overall["vendi"] = overall["vendi_per_prompt_mean"] = None
        for p in prompts:
            p["vendi"] = None
    found = None
    if reference is not None and features is not None:
        found = fidelity.fidelity(features, reference, nearest_k)
    return Measured(kept, rejected, features, prompts, overall, found)


def headline(measured: Measured) -> dict[str, Any]:
    """The figures a reader looks at first (and MLflow records as `quality.*`)."""
    out = {k: measured.overall.get(k) for k in HEADLINE if k in measured.overall}
    f = measured.fidelity
    if f is not None:
        out |= {"fd": f["fd"], "kid": f["kid"], "reference_images": f["reference_images"]}
        out["fd_floor"] = (f.get("fd_floor") or {}).get("fd")
        out |= {k: (f.get("prdc") or {}).get(k) for k in ("precision", "recall")}
        out |= {k: (f.get("prdc") or {}).get(k) for k in ("density", "coverage")}
    return {k: out[k] for k in HEADLINE if k in out}


def headline_metrics(document: dict[str, Any]) -> dict[str, float]:
    """The headline as MLflow metrics `quality.<figure>` (figures that exist only)."""
    return {f"quality.{k}": float(v) for k, v in document["headline"].items() if v is not None}


def _shard_images(shards: Sequence[Path]) -> dict[str, Path]:
    """sample id → its image in the staging shards (regular files inside their shard)."""
    found = {}
    for shard in shards:
        images = Path(shard) / "images"
        if images.is_dir():
            for path in images.iterdir():
                if path.suffix == ".png" and path.is_file() and not path.is_symlink():
                    found[path.stem] = path
    return found


def _rejection_examples(
    measured: Measured, folder: Path, shards: Sequence[Path]
) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per reason, up to `EXAMPLES` rejected thumbnails (a duplicate beside what it copies)."""
    rejected = measured.rejected
    if not len(rejected):
        return []
    images = _shard_images(shards)
    kept = dict(zip(measured.kept["sample_id"], measured.kept["file_name"], strict=True))
    kinds = diversity.reason_kind(rejected["reject_reason"])
    out = []
    for kind in sorted(kinds.unique()):
        entries: list[tuple[str, str]] = []
        for _, row in rejected[kinds == kind].iterrows():
            if len(entries) >= 2 * EXAMPLES:
                break
            uri = charts.thumbnail(images[row["sample_id"]]) if row["sample_id"] in images else None
            if uri is None:
                continue
            entries.append((uri, f"{row['sample_id'][:8]} · item {row['item_index']}"))
            original = row.get("dup_of")
            if kind == diversity.DUPLICATE and isinstance(original, str):
                path = folder / kept[original] if original in kept else images.get(original)
                twin = charts.thumbnail(path) if path is not None else None
                if twin is not None:
                    entries.append((twin, f"≈ {original[:8]} (kept)"))
        if entries:
            out.append((kind, entries))
    return out


def _samples(measured: Measured, folder: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """Up to `EXAMPLES` kept images for each of the first prompts, with their CLIP scores."""
    out = []
    kept = measured.kept
    for p in measured.prompts[: charts.MAX_PROMPTS]:
        rows = kept[kept["item_index"] == p["item"]].head(EXAMPLES)
        entries = []
        for _, row in rows.iterrows():
            uri = charts.thumbnail(folder / row["file_name"])
            score = row.get("clip_score")
            scored = isinstance(score, float | np.floating) and score == score
            caption = f"CLIP {score:.1f}" if scored else row["sample_id"][:8]
            if uri is not None:
                entries.append((uri, caption))
        if entries:
            out.append((f"{p['item']}: {p['prompt']}", entries))
    return out


def _settings(folder: Path) -> tuple[str, ReportConfig]:
    """The dataset's name and the `report` section of the version's manifest."""
    path = folder / "manifest.yaml"
    raw = yaml.safe_load(path.read_text()) if path.is_file() else {}
    raw = raw if isinstance(raw, dict) else {}
    name = str(raw.get("dataset") or folder.parent.name)
    try:
        config = ReportConfig.model_validate(raw.get("report") or {})
    except ValueError:
        config = ReportConfig()
    return name, config


def _version_number(folder: Path) -> int | None:
    match = re.fullmatch(r"v(\d+)", folder.name)
    return int(match.group(1)) if match else None


def _reference_features(
    spec: str, space: FeatureSpace, tracking_uri: str | None
) -> tuple[Reference | None, np.ndarray | None, str | None]:
    """The reference, its features and, when it cannot be had, why (the report says it)."""
    try:
        reference = resolve_reference(spec, tracking_uri)
        return reference, reference.features(space), None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, None, f"No fidelity figures: reference {spec!r} cannot be used ({first})."


def _comparison(
    previous: Path, current: Measured, space: FeatureSpace, ref: np.ndarray | None, k: int
) -> dict[str, Any]:
    before = measure(previous, space, ref, k)
    return {
        "version": _version_number(previous),
        "figures": compare.compare(headline(current), headline(before)),
        "changes": compare.content_changes(current.kept, before.kept),
        "features_reused": before.features is not None,
    }


def _synthset_version() -> str:
    try:
        return package_version("synthset")
    except PackageNotFoundError:
        return "unknown"


def quality_report(
    version_folder: str | Path,
    reference: str | None = None,
    previous: str | Path | None = None,
    shards: Sequence[str | Path] | None = None,
    *,
    clip: ClipConfig | None = None,
    nearest_k: int | None = None,
    tracking_uri: str | None = None,
    previous_problem: str | None = None,
) -> Path:
    """Build the quality report of the version in `version_folder`; returns the HTML path.

    `reference` names real images (`synthset/digits`, a folder or imagefolder, `NAME@VERSION`;
    default: the version manifest's `report.reference`, else no fidelity figures). `previous`
    is the folder of the version to compare with (its tables and `index/` suffice). `shards`
    are the run's staging shards, where rejected images are. `clip` is the feature space
    (default: the manifest's `report.clip`, else the version's curation CLIP).
    `previous_problem` says why an earlier version that exists could not be compared.
    """
    folder = Path(version_folder)
    name, config = _settings(folder)
    spec = reference or config.reference
    k = nearest_k or config.nearest_k
    space = version_space(folder, clip or config.clip)
    ref, ref_features, missing = (None, None, None)
    if spec:
        ref, ref_features, missing = _reference_features(spec, space, tracking_uri)
    measured = measure(folder, space, ref_features, k)
    if measured.features is None:
        raise SynthsetError(f"{folder}: neither images nor stored embeddings to measure")
    document: dict[str, Any] = {
        "dataset": name,
        "version": _version_number(folder),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "synthset": _synthset_version(),
        "feature_space": {
            **space.identity,
            "name": space.name,
            "dim": int(measured.features.shape[1]) if measured.features.size else None,
            "source": "the version's stored curation embeddings (index/)"
            if stored_embeddings(folder, space, measured.kept["sample_id"].tolist()) is not None
            else "embedded for this report",
        },
        "headline": headline(measured),
    }
    if measured.fidelity is not None and ref is not None:
        document["fidelity"] = {"reference": ref.summary(), **measured.fidelity}
    else:
        why = missing or "No fidelity figures: no reference set (report.reference in the manifest)."
        document["fidelity"] = {"unavailable": why}
    generated = measured.overall["generated"]
    thumbs = _rejection_examples(measured, folder, [Path(s) for s in shards or []])
    document |= {
        "overall": measured.overall,
        "prompts": measured.prompts,
        "rejections": {
            "by_reason": diversity.rejections(measured.rejected, generated),
            "thumbnails": "Rejected images as the run's staging shards hold them."
            if shards
            else NO_SHARDS,
        },
        "tags": diversity.tag_frequencies(measured.kept),
        "limits": {"prompts": charts.MAX_PROMPTS, "tags": charts.MAX_TAGS, "examples": EXAMPLES},
        "comparison": None,
    }
    if previous is not None:
        document["comparison"] = _comparison(Path(previous), measured, space, ref_features, k)
    elif previous_problem:
        document["comparison"] = {"unavailable": previous_problem}
    pictures = {
        "per_prompt": charts.per_prompt_chart(measured.prompts),
        "clip_scores": charts.clip_score_chart(measured.kept, measured.prompts),
        "tags": charts.tag_chart(document["tags"]),
        "rejections": thumbs,
        "samples": _samples(measured, folder),
    }
    page = render.render(document, pictures)
    with atomic_path(folder / REPORT_DIR, folder=True) as tmp:
        (tmp / JSON).write_text(json.dumps(document, indent=2, default=render.to_json) + "\n")
        (tmp / HTML).write_text(page)
    return folder / REPORT_DIR / HTML


def report_version(
    folder: Path,
    config: ReportConfig,
    shards: Sequence[Path] = (),
    tracking_uri: str | None = None,
) -> dict[str, float]:
    """The report of a version a run just published (`<root>/<name>/v<N>`), compared with the
    registry's previous version; returns its headline as `quality.*` metrics."""
    name, _ = _settings(folder)
    number = _version_number(folder) or 0
    previous, problem = None, None
    try:
        found = compare.previous_version(name, number, folder.parent.parent, tracking_uri)
        previous = found[1] if found else None
    except Exception as exc:
        problem = f"The previous version cannot be read from the registry ({exc})."
    path = quality_report(
        folder,
        config.reference,
        previous,
        shards,
        clip=config.clip,
        nearest_k=config.nearest_k,
        tracking_uri=tracking_uri,
        previous_problem=problem,
    )
    return headline_metrics(json.loads((path.parent / JSON).read_text()))
