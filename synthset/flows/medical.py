"""The `release_synthetic_images` Prefect flow: ingest → train → generate → memorization gate
→ utility → gate → report → publish (or block).

Thin wiring around `synthset.privacy.medical.release`: each step is a task, and the Prefect
UI gets a markdown summary (gate, (ε, δ), TSTR vs TRTR, the report's location), a table of
the gate's checks and a link to the report. Nothing from a DICOM header reaches a log line
or an artifact: they carry counts, figures and the input folder's last part only. A blocked
release publishes nothing and fails the flow run with the gate's reasons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from synthset.flows.artifacts import post_release, refuse_blocked, release_result
from synthset.privacy.medical import release as steps
from synthset.privacy.medical.config import MedicalConfig, load_config, parse_config
from synthset.privacy.release import Outcome, report_folder


@task(name="ingest-images", cache_policy=NO_CACHE)
def ingest_task(config: MedicalConfig) -> steps.Prepared:
    prepared = steps.prepare(config)
    get_run_logger().info(
        "%s: %d images de-identified and read at %d×%d (%d training, %d holdout), %s",
        Path(config.data).name,
        len(prepared.ingested),
        config.size,
        config.size,
        len(prepared.train),
        len(prepared.holdout),
        f"{len(prepared.classes)} classes" if prepared.classes else "no labels",
    )
    return prepared


@task(name="train-ddpm", cache_policy=NO_CACHE)
def train_task(config: MedicalConfig, prepared: steps.Prepared, datasets_root: str | None) -> Any:
    logger = get_run_logger()
    folder = steps.checkpoint_folder(config, prepared, datasets_root)
    model = steps.fit(config, prepared, folder, logger.info)
    privacy = model.privacy()
    logger.info(
        "trained %d epochs (%d steps) in %.1f s, final loss %.4f%s",
        model.history["epochs"],
        model.history["steps"],
        model.history["seconds_train"],
        model.history["final_loss"],
        f", ε = {privacy['spent']['epsilon']:.3g}" if privacy else ", no DP",
    )
    return model


@task(name="generate-images", cache_policy=NO_CACHE)
def generate_task(config: MedicalConfig, model: Any) -> Any:
    synthetic = steps.make_images(config, model)
    get_run_logger().info(
        "generated %d images in %.1f s (%s, %d steps)",
        len(synthetic.images),
        synthetic.seconds,
        config.generate.scheduler,
        config.generate.steps,
    )
    return synthetic


@task(name="memorization-gate", cache_policy=NO_CACHE)
def memorization_task(config: MedicalConfig, prepared: steps.Prepared, synthetic: Any) -> Any:
    memo = steps.check(config, prepared, synthetic)
    summary = memo.summary()
    get_run_logger().info(
        "memorization gate: %d of %d images rejected as near-copies (%.1f%%)",
        summary["rejected"],
        summary["synthetic"],
        100 * summary["rejected_share"],
    )
    return memo


@task(name="utility", cache_policy=NO_CACHE)
def utility_task(config: MedicalConfig, prepared: steps.Prepared, synthetic: Any, memo: Any) -> Any:
    return steps.measure_utility(config, prepared, synthetic, memo)


@task(name="publish-images", cache_policy=NO_CACHE)
def publish_task(
    cfg: MedicalConfig,
    model: Any,
    synthetic: Any,
    memo: Any,
    gate: Any,
    metrics: dict,
    report: Path,
    datasets_root: str | None,
    tracking_uri: str | None,
) -> Outcome:
    return steps.publish_release(
        cfg, model, synthetic, memo, gate, metrics, report, datasets_root, tracking_uri
    )


def _summary(
    cfg: MedicalConfig, gate: Any, metrics: dict, privacy: dict | None, public: Any
) -> str:
    verdict = "**PASSED**" if gate.passed else "**FAILED: nothing published**"
    eps = (
        f"(ε = {privacy['spent']['epsilon']:.3g}, δ = {privacy['spent']['delta']:.3g}) per image"
        if privacy
        else "none (no DP)"
    )
    keys = (
        "generated",
        "released",
        "rejected",
        "rejected_share",
        "pixel_ratio_min",
        "embedding_ratio_min",
        "ssim_max",
        "tstr_accuracy",
        "trtr_accuracy",
        "tstr_auc",
        "trtr_auc",
        "tstr_ratio",
        "seconds_train",
    )
    rows = "\n".join(f"| {k} | {metrics[k]:.4g} |" for k in keys if k in metrics)
    reasons = "".join(f"\n- {r}" for r in gate.reasons)
    return (
        f"# {cfg.dataset}: release gate {verdict}\n\n"
        f"Differential privacy: {eps}\n\nPublic pretraining: {public or 'none'}\n{reasons}\n\n"
        f"| metric | value |\n| --- | --- |\n{rows}\n\n"
        "Report (private: it shows training images) linked below and logged with the MLflow "
        "run under `report/`.\n"
    )


def _flow_name() -> str:
    return str(flow_run.parameters.get("config", {}).get("dataset", "images"))


@flow(name="release_synthetic_images", flow_run_name=_flow_name, log_prints=True)
def release_synthetic_images(
    config: dict[str, Any],
    datasets_root: str | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Train, generate, gate and (if the gate passes) publish synthetic images; returns what
    happened."""
    cfg = parse_config(config)
    logger = get_run_logger()
    prepared = ingest_task(cfg)
    model = train_task(cfg, prepared, datasets_root)
    synthetic = generate_task(cfg, model)
    memo = memorization_task(cfg, prepared, synthetic)
    utility = utility_task(cfg, prepared, synthetic, memo)
    gate = steps.decide(cfg, memo, utility)
    report = steps.make_report(
        cfg,
        prepared,
        model,
        synthetic,
        memo,
        utility,
        gate,
        report_folder(cfg.dataset, datasets_root),
    )
    metrics = steps.metrics_of(model, synthetic, memo, utility)
    privacy = model.privacy()
    post_release(
        cfg.dataset,
        (
            _summary(cfg, gate, metrics, privacy, model.public),
            "release",
            f"{cfg.dataset}: memorization gate, utility and release decision",
        ),
        gate,
        report,
        "audit report (HTML, private)",
    )
    refuse_blocked(
        cfg.dataset,
        gate,
        lambda: steps.block_release(cfg, model, gate, metrics, report, tracking_uri),
        report,
        logger,
    )
    outcome = publish_task(
        cfg, model, synthetic, memo, gate, metrics, report, datasets_root, tracking_uri
    )
    logger.info("published %s v%d (%d images)", outcome.name, outcome.version, outcome.rows)
    return release_result(outcome, report, "images", public_pretraining=model.public)


def release_from_file(path: str, **kwargs: Any) -> dict[str, Any]:
    """Run the flow on a YAML/JSON config file (validated before Prefect starts)."""
    config = load_config(path)
    return release_synthetic_images(config.model_dump(mode="json"), **kwargs)
