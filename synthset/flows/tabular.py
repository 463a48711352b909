"""The `release_synthetic_table` Prefect flow: load → fit → sample → audit → gate → report →
publish (or block).

Thin wiring around `synthset.privacy.tabular.release`: each step is a task, and the Prefect UI gets
a markdown summary of the audit, a table of the gate's checks and a link to the report.
A blocked release publishes nothing and fails the flow run with the gate's reasons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from synthset.flows.artifacts import post_release, refuse_blocked, release_result
from synthset.privacy.gate import GateResult
from synthset.privacy.release import Outcome, report_folder
from synthset.privacy.tabular import release as steps
from synthset.privacy.tabular.config import TabularConfig, load_config, parse_config
from synthset.privacy.tabular.gate import evaluate


@task(name="load-table", cache_policy=NO_CACHE)
def load_task(config: TabularConfig) -> steps.Prepared:
    prepared = steps.prepare(config)
    get_run_logger().info(
        "%s: %d training and %d holdout rows, %d columns",
        config.data,
        len(prepared.train),
        len(prepared.holdout),
        len(prepared.table.schema.columns),
    )
    return prepared


@task(name="fit-synthesizer", cache_policy=NO_CACHE)
def fit_task(config: TabularConfig, prepared: steps.Prepared) -> Any:
    synthesizer = steps.fit(config, prepared)
    history = synthesizer.history
    get_run_logger().info(
        "fitted in %.1f s (%d steps, final loss %.4f)%s",
        history["seconds_train"],
        history["steps"],
        history["final_loss"],
        f", ε = {synthesizer.privacy()['spent']['epsilon']:.3g}" if synthesizer.ledger else "",
    )
    return synthesizer


@task(name="sample", cache_policy=NO_CACHE)
def sample_task(config: TabularConfig, synthesizer: Any, prepared: steps.Prepared) -> Any:
    return steps.generate(config, synthesizer, prepared)


@task(name="audit", cache_policy=NO_CACHE)
def audit_task(config: TabularConfig, prepared: steps.Prepared, synthetic: Any) -> Any:
    return steps.run_audit(config, prepared, synthetic)


def _summary(
    config: TabularConfig, gate: GateResult, metrics: dict, privacy: dict | None, report: Path
) -> str:
    verdict = "**PASSED**" if gate.passed else "**FAILED: nothing published**"
    eps = (
        f"(ε = {privacy['spent']['epsilon']:.3g}, δ = {privacy['spent']['delta']:.3g})"
        if privacy
        else "none (no DP)"
    )
    keys = (
        "dcr_share",
        "exact_match_rate",
        "mia_auc",
        "nndr_median",
        "column_shape_mean",
        "correlation_difference",
        "tstr",
        "trtr",
    )
    rows = "\n".join(f"| {k} | {metrics[k]:.4g} |" for k in keys if k in metrics)
    reasons = "".join(f"\n- {r}" for r in gate.reasons)
    return (
        f"# {config.dataset}: release gate {verdict}\n\n"
        f"Differential privacy: {eps}\n{reasons}\n\n"
        f"| metric | value |\n| --- | --- |\n{rows}\n\n"
        f"Report (private, computed from the real rows): `{report}`\n"
    )


def _flow_name() -> str:
    return str(flow_run.parameters.get("config", {}).get("dataset", "table"))


@flow(name="release_synthetic_table", flow_run_name=_flow_name, log_prints=True)
def release_synthetic_table(
    config: dict[str, Any],
    datasets_root: str | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Fit, audit and (if the gate passes) publish a synthetic table; returns what happened."""
    cfg = parse_config(config)
    logger = get_run_logger()
    prepared = load_task(cfg)
    synthesizer = fit_task(cfg, prepared)
    synthetic = sample_task(cfg, synthesizer, prepared)
    result = audit_task(cfg, prepared, synthetic)
    gate = evaluate(result.metrics, cfg.gate, result.details)
    privacy = synthesizer.privacy()
    report = steps.make_report(
        cfg, prepared, synthetic, result, gate, privacy, report_folder(cfg.dataset, datasets_root)
    )
    metrics = steps.metrics_of(result, privacy, synthesizer.history)
    post_release(
        cfg.dataset,
        (
            _summary(cfg, gate, metrics, privacy, report),
            "audit",
            f"{cfg.dataset}: audit and release gate",
        ),
        gate,
        report,
        "audit report (HTML)",
    )
    refuse_blocked(
        cfg.dataset,
        gate,
        lambda: steps.block_release(cfg, gate, privacy, metrics, report, tracking_uri),
        report,
        logger,
    )
    outcome = publish_task(
        cfg, prepared, synthetic, gate, privacy, metrics, report, datasets_root, tracking_uri
    )
    logger.info(
        "published %s v%d (%d rows) at %s",
        outcome.name,
        outcome.version,
        outcome.rows,
        outcome.path,
    )
    return release_result(outcome, report, "rows")


@task(name="publish-table", cache_policy=NO_CACHE)
def publish_task(
    cfg: TabularConfig,
    prepared: steps.Prepared,
    synthetic: Any,
    gate: GateResult,
    privacy: dict | None,
    metrics: dict,
    report: Path,
    datasets_root: str | None,
    tracking_uri: str | None,
) -> Outcome:
    return steps.publish_release(
        cfg, prepared, synthetic, gate, privacy, metrics, report, datasets_root, tracking_uri
    )


def release_from_file(path: str, **kwargs: Any) -> dict[str, Any]:
    """Run the flow on a YAML/JSON config file (validated before Prefect starts)."""
    config = load_config(path)
    return release_synthetic_table(config.model_dump(mode="json"), **kwargs)
