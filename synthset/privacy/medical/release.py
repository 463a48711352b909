"""The steps of a synthetic-image release, as plain functions: ingest and split the private
images, train (or resume) the DDPM, generate, run the memorization gate, measure TSTR vs TRTR,
decide, report, and publish or record the blocked attempt.

`synthset.flows.medical` wires these into Prefect tasks; `release` runs them in order without
Prefect. Near-copies the memorization gate finds are removed; the release is blocked when
they exceed `gate.max_rejected_share` (the model memorizes), when fewer than
`gate.min_released` images are left, or when TSTR ÷ TRTR falls below `gate.min_tstr_ratio`.

Private things stay beside the versions, never in one: the checkpoint under
`<datasets root>/<name>/.checkpoints/<fingerprint>/` (a killed run resumes from it; a rerun
with other generation or gate settings reuses it) and the report under `.reports/<stamp>/`.
What is published or recorded names the input by its folder's last part only, and carries
nothing from a DICOM header: `Ingested.metadata` and counts, never file names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from synthset.layout import DatasetLayout, datasets_root
from synthset.privacy.errors import ReleaseBlocked
from synthset.privacy.gate import GateResult, Threshold, apply_thresholds
from synthset.privacy.medical.config import MedicalConfig
from synthset.privacy.medical.generate import Synthetic, generate
from synthset.privacy.medical.memorization import MemorizationResult, check_with_config
from synthset.privacy.medical.train import TrainedModel, fingerprint, train
from synthset.privacy.medical.utility import Utility, tstr_vs_trtr
from synthset.privacy.release import Outcome, privacy_metrics, report_folder
from synthset.privacy.report import write_report

RELEASE_CHECKS = (
    Threshold("min_released", "released", ">="),
    Threshold("min_tstr_ratio", "tstr_ratio", ">="),
)
CHECKPOINTS = ".checkpoints"

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Prepared:
    """The ingested images and their split: training and real holdout (by patient)."""

    ingested: Any
    train: np.ndarray
    holdout: np.ndarray

    @property
    def classes(self) -> list[Any]:
        return list(self.ingested.classes or [])

    def images(self, part: str) -> np.ndarray:
        return self.ingested.images[getattr(self, part)]

    def labels(self, part: str) -> np.ndarray | None:
        labels = self.ingested.labels
        return None if labels is None else labels[getattr(self, part)]


def split(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and holdout indices with whole groups (patients) on one side; the holdout
    gets about `fraction` of the images. Groups are taken in order of their first image, so
    the split does not depend on how they are named (pseudonyms change with every ingest)."""
    if fraction == 0 or len(groups) < 2:
        return np.arange(len(groups)), np.arange(0)
    names, first = np.unique(groups, return_index=True)
    names = names[np.argsort(first)]
    rng = np.random.default_rng(seed)
    held: list[Any] = []
    target, taken = fraction * len(groups), 0
    for name in rng.permutation(names):
        if taken >= target or len(held) == len(names) - 1:
            break
        held.append(name)
        taken += int((groups == name).sum())
    mask = np.isin(groups, held)
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def prepare(config: MedicalConfig) -> Prepared:
    """Read and de-identify the images (`ingest.load_images`) and split off the holdout."""
    from synthset.privacy.medical.ingest import load_images

    ingested = load_images(config.data, config.size, config.labels, config.allow_burned_in)
    keys = ingested.metadata["patient_key"].fillna("").astype(str).to_numpy()
    groups = np.where(keys == "", [f"image-{i}" for i in range(len(keys))], keys)
    train_at, holdout_at = split(groups, config.holdout, config.seed)
    if len(train_at) < 2:
        from synthset.errors import InputError

        raise InputError(Path(config.data).name, "fewer than 2 training images after the holdout")
    return Prepared(ingested, train_at, holdout_at)


def checkpoint_folder(
    config: MedicalConfig, prepared: Prepared, root: str | Path | None = None
) -> Path:
    """Where this training's checkpoint lives: named by the images and training settings, so
    a rerun finds it and other settings never resume it."""
    layout = DatasetLayout(Path(root) if root else datasets_root(), config.dataset)
    key = fingerprint(prepared.images("train"), prepared.labels("train"), config.train)
    return layout.dataset_dir / CHECKPOINTS / key


def fit(config: MedicalConfig, prepared: Prepared, folder: Path, log: Log = _quiet) -> TrainedModel:
    """Train the DDPM on the training images only (resuming from `folder`)."""
    return train(
        prepared.images("train"),
        prepared.labels("train"),
        prepared.classes,
        config.train,
        folder,
        log,
    )


def make_images(config: MedicalConfig, model: TrainedModel, device: str = "auto") -> Synthetic:
    return generate(model, config.generate, device)


def check(config: MedicalConfig, prepared: Prepared, synthetic: Synthetic) -> MemorizationResult:
    """The memorization gate: every synthetic image against the training images."""
    return check_with_config(synthetic.images, prepared.images("train"), config.gate)


def measure_utility(
    config: MedicalConfig, prepared: Prepared, synthetic: Synthetic, memo: MemorizationResult
) -> Utility | None:
    """TSTR (the released images) vs TRTR on the real holdout; None without labels or
    holdout."""
    kept = memo.kept
    holdout_labels = prepared.labels("holdout")
    if synthetic.labels is None or holdout_labels is None or len(holdout_labels) == 0:
        return None
    if kept.sum() == 0:
        return None
    return tstr_vs_trtr(
        prepared.images("train"),
        prepared.labels("train"),
        synthetic.images[kept],
        synthetic.labels[kept],
        prepared.images("holdout"),
        holdout_labels,
        max(len(prepared.classes), 2),
        config.utility,
    )


def decide(config: MedicalConfig, memo: MemorizationResult, utility: Utility | None) -> GateResult:
    """The release gate: the memorization gate's release check, then what is left (count and
    TSTR ÷ TRTR)."""
    values: dict[str, Any] = {"released": int(memo.kept.sum())}
    if utility is not None:
        values["tstr_ratio"] = utility.metrics().get("tstr_ratio")
    rest = apply_thresholds(values, config.gate, RELEASE_CHECKS)
    return GateResult(memo.gate.passed and rest.passed, memo.gate.checks + rest.checks)


def metrics_of(
    model: TrainedModel,
    synthetic: Synthetic,
    memo: MemorizationResult,
    utility: Utility | None,
) -> dict[str, float]:
    """What MLflow and the flow record: counts, gate figures, utility, (ε, δ), timings."""
    summary = memo.summary()
    metrics: dict[str, float] = {
        "generated": float(len(synthetic.images)),
        "released": float(memo.kept.sum()),
        "rejected": float(summary["rejected"]),
        "rejected_share": float(summary["rejected_share"]),
        "seconds_generate": synthetic.seconds,
    }
    for space in ("pixel_ratio", "embedding_ratio"):
        if summary[space]["min"] is not None:
            metrics[f"{space}_min"] = summary[space]["min"]
            metrics[f"{space}_median"] = summary[space]["p50"]
    if summary["ssim"]["max"] is not None:
        metrics["ssim_max"] = summary["ssim"]["max"]
    if utility is not None:
        metrics |= utility.metrics() | {"seconds_utility": utility.seconds}
    history = model.history
    for key in ("seconds_train", "seconds_pretrain", "final_loss", "steps", "epochs"):
        if history.get(key) is not None:
            metrics[key] = float(history[key])
    return metrics | privacy_metrics(model.privacy())


def make_report(
    config: MedicalConfig,
    prepared: Prepared,
    model: TrainedModel,
    synthetic: Synthetic,
    memo: MemorizationResult,
    utility: Utility | None,
    gate: GateResult,
    folder: Path,
) -> Path:
    """Write the HTML report and audit JSON into `folder`; returns the HTML file."""
    from synthset import __version__
    from synthset.privacy.medical.report import build_report

    extra = {
        "source": Path(config.data).name,
        "synthset_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "images_generated": len(synthetic.images),
        "images_released": int(memo.kept.sum()),
        "size": config.size,
        "classes": ", ".join(str(c) for c in model.classes) or "none (unconditional)",
        "public_pretraining": model.public or "none",
        "config": config.public(),
    }
    page, document = build_report(
        config.dataset, prepared, model, synthetic, memo, utility, gate, extra
    )
    return write_report(folder, page, document)


def publish_release(
    config: MedicalConfig,
    model: TrainedModel,
    synthetic: Synthetic,
    memo: MemorizationResult,
    gate: GateResult,
    metrics: dict[str, float],
    report: Path,
    datasets_root_: str | Path | None,
    tracking_uri: str | None,
) -> Outcome:
    """Publish the released images as the next version and record it; the gate must pass."""
    from synthset.privacy.medical.publish import publish_images, record_images
    from synthset.privacy.medical.report import privacy_statement
    from synthset.storage.versioning import check_writable, last_version_number

    if not gate.passed:
        raise ValueError("publish_release called for a release the gate blocked")
    check_writable(config.dataset, tracking_uri)
    layout = DatasetLayout(
        Path(datasets_root_) if datasets_root_ else datasets_root(), config.dataset
    )
    privacy = model.privacy()
    published = publish_images(
        layout,
        synthetic,
        memo,
        {
            "statement": privacy_statement(privacy, model.public),
            "accounting": privacy,
            "public_pretraining": model.public,
            "memorization_gate": {
                k: v for k, v in memo.summary().items() if k not in ("gate", "training")
            },
        },
        config,
        gate,
        last_version_number(config.dataset, tracking_uri) + 1,
    )
    run_id = record_images(published, config, metrics, report.parent, tracking_uri)
    return Outcome.published_as(published, report, metrics, privacy, run_id)


def block_release(
    config: MedicalConfig,
    model: TrainedModel,
    gate: GateResult,
    metrics: dict[str, float],
    report: Path,
    tracking_uri: str | None,
) -> Outcome:
    """Record a blocked release (a FAILED MLflow run with the report); publishes nothing."""
    from synthset.privacy.medical.publish import KIND, params_of_config
    from synthset.privacy.publish import record_blocked

    run_id = record_blocked(
        config.dataset,
        KIND,
        params_of_config(config),
        metrics,
        gate.reasons,
        report.parent,
        tracking_uri,
    )
    return Outcome.blocked_by(
        config.dataset, gate.reasons, report, metrics, model.privacy(), run_id
    )


def release(
    config: MedicalConfig,
    datasets_root_: str | Path | None = None,
    tracking_uri: str | None = None,
    log: Log = _quiet,
    device: str = "auto",
) -> Outcome:
    """Run every step in order, without Prefect. Raises `ReleaseBlocked` when the gate fails."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    prepared = prepare(config)
    seconds["ingest"] = time.perf_counter() - t0
    folder = checkpoint_folder(config, prepared, datasets_root_)
    model = fit(config, prepared, folder, log)
    seconds["train"] = time.perf_counter() - t0 - seconds["ingest"]
    synthetic = make_images(config, model, device)
    seconds["generate"] = synthetic.seconds
    t1 = time.perf_counter()
    memo = check(config, prepared, synthetic)
    seconds["memorization"] = time.perf_counter() - t1
    utility = measure_utility(config, prepared, synthetic, memo)
    seconds["utility"] = utility.seconds if utility else 0.0
    gate = decide(config, memo, utility)
    report = make_report(
        config,
        prepared,
        model,
        synthetic,
        memo,
        utility,
        gate,
        report_folder(config.dataset, datasets_root_),
    )
    metrics = metrics_of(model, synthetic, memo, utility)
    if not gate.passed:
        outcome = block_release(config, model, gate, metrics, report, tracking_uri)
        raise ReleaseBlocked(config.dataset, outcome.reasons, str(report.parent))
    outcome = publish_release(
        config, model, synthetic, memo, gate, metrics, report, datasets_root_, tracking_uri
    )
    outcome.seconds = seconds | {"total": time.perf_counter() - t0}
    return outcome
