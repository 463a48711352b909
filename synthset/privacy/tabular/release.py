"""The steps of a synthetic-table release, as plain functions: load and split the private
table, fit, sample, audit, decide, report, and publish or record the blocked attempt.

`synthset.flows.tabular` wires these into Prefect tasks; `release` runs them in order
without Prefect. Nothing is published unless the gate passes; the report is written either
way, under `<datasets root>/<name>/.reports/<stamp>/` (private: it is computed from the real
rows), and logged with the MLflow run. What any modality's release shares (the `Outcome`,
the report folder, params and (ε, δ) metrics) is `synthset.privacy.release`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from synthset.layout import DatasetLayout, datasets_root
from synthset.privacy.errors import ReleaseBlocked
from synthset.privacy.gate import GateResult
from synthset.privacy.release import Outcome, params_of, privacy_metrics, report_folder
from synthset.privacy.report import write_report
from synthset.privacy.tabular.audit import AuditResult, audit
from synthset.privacy.tabular.config import TabularConfig
from synthset.privacy.tabular.gate import evaluate
from synthset.privacy.tabular.report import build_report, privacy_statement
from synthset.privacy.tabular.schema import Table, load_table, split_holdout
from synthset.privacy.tabular.synthesizer import TabularSynthesizer


@dataclass
class Prepared:
    """The private table, its split, and the schema."""

    table: Table
    train: pd.DataFrame
    holdout: pd.DataFrame


def prepare(config: TabularConfig) -> Prepared:
    """Load the private table with the config's declarations and split off the holdout."""
    table = load_table(config.data, **config.table_options())
    train, holdout = split_holdout(table, config.holdout, config.seed)
    return Prepared(table, train, holdout)


def fit(config: TabularConfig, prepared: Prepared) -> TabularSynthesizer:
    """Fit the synthesizer on the training rows only."""
    return TabularSynthesizer(config.synthesizer).fit(prepared.train, prepared.table.schema)


def generate(
    config: TabularConfig, synthesizer: TabularSynthesizer, prepared: Prepared
) -> pd.DataFrame:
    """Sample the synthetic table (as many rows as training rows unless `rows` is set)."""
    return synthesizer.sample(config.rows or len(prepared.train), seed=config.seed)


def run_audit(config: TabularConfig, prepared: Prepared, synthetic: pd.DataFrame) -> AuditResult:
    """Audit the synthetic rows against the training and holdout rows."""
    schema = prepared.table.schema
    return audit(
        prepared.train,
        prepared.holdout,
        synthetic,
        schema,
        target=schema.target,
        sensitive=schema.sensitive,
        seed=config.audit.seed,
        tstr_model=config.audit.tstr_model,
    )


def make_report(
    config: TabularConfig,
    prepared: Prepared,
    synthetic: pd.DataFrame,
    result: AuditResult,
    gate: GateResult,
    privacy: dict[str, Any] | None,
    folder: Path,
) -> Path:
    """Write the HTML report and audit JSON into `folder`; returns the HTML file."""
    from synthset import __version__

    extra = {
        "source": config.data,
        "synthset_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows_synthetic": len(synthetic),
        "synthesizer": config.synthesizer.model_dump(),
    }
    page, document = build_report(
        config.dataset,
        result,
        gate,
        prepared.table.schema,
        prepared.train,
        synthetic,
        privacy,
        extra,
    )
    return write_report(folder, page, document)


def metrics_of(
    result: AuditResult, privacy: dict[str, Any] | None, history: dict[str, Any]
) -> dict[str, float]:
    """The audit metrics, the (ε, δ) spent, and the fit's seconds and final loss."""
    metrics = dict(result.metrics) | privacy_metrics(privacy)
    for key in ("seconds_train", "final_loss"):
        if key in history:
            metrics[key] = float(history[key])
    return metrics


def publish_release(
    config: TabularConfig,
    prepared: Prepared,
    synthetic: pd.DataFrame,
    gate: GateResult,
    privacy: dict[str, Any] | None,
    metrics: dict[str, float],
    report: Path,
    datasets_root_: str | Path | None,
    tracking_uri: str | None,
) -> Outcome:
    """Publish the synthetic table as the next version and record it; the gate must pass."""
    from synthset.privacy.tabular.publish import publish_table, record_table_version, table_card
    from synthset.storage.versioning import check_writable, last_version_number

    if not gate.passed:
        raise ValueError("publish_release called for a release the gate blocked")
    check_writable(config.dataset, tracking_uri)
    schema = prepared.table.schema.to_dict()
    public_schema = {
        "columns": [{"name": c["name"], "kind": c["kind"]} for c in schema["columns"]],
        "target": schema["target"],
    }
    statement = privacy_statement(privacy, prepared.table.schema)
    layout = DatasetLayout(
        Path(datasets_root_) if datasets_root_ else datasets_root(), config.dataset
    )
    first = last_version_number(config.dataset, tracking_uri) + 1
    published = publish_table(
        layout,
        synthetic,
        public_schema,
        {"statement": statement, "accounting": privacy},
        lambda version: table_card(
            config.dataset,
            version,
            synthetic,
            public_schema,
            statement,
            gate.to_dict(),
            config.description,
        ),
        first,
    )
    run_id = record_table_version(
        published, params_of(config), metrics, report.parent, tracking_uri
    )
    return Outcome.published_as(published, report, metrics, privacy, run_id)


def block_release(
    config: TabularConfig,
    gate: GateResult,
    privacy: dict[str, Any] | None,
    metrics: dict[str, float],
    report: Path,
    tracking_uri: str | None,
) -> Outcome:
    """Record a blocked release (a FAILED MLflow run with the report); publishes nothing."""
    from synthset.privacy.publish import record_blocked
    from synthset.privacy.tabular.publish import KIND

    run_id = record_blocked(
        config.dataset, KIND, params_of(config), metrics, gate.reasons, report.parent, tracking_uri
    )
    return Outcome.blocked_by(config.dataset, gate.reasons, report, metrics, privacy, run_id)


def release(
    config: TabularConfig,
    datasets_root_: str | Path | None = None,
    tracking_uri: str | None = None,
) -> Outcome:
    """Run every step in order, without Prefect. Raises `ReleaseBlocked` when the gate fails."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    prepared = prepare(config)
    synthesizer = fit(config, prepared)
    seconds["fit"] = time.perf_counter() - t0
    synthetic = generate(config, synthesizer, prepared)
    t1 = time.perf_counter()
    result = run_audit(config, prepared, synthetic)
    gate = evaluate(result.metrics, config.gate, result.details)
    seconds["audit"] = time.perf_counter() - t1
    privacy = synthesizer.privacy()
    report = make_report(
        config,
        prepared,
        synthetic,
        result,
        gate,
        privacy,
        report_folder(config.dataset, datasets_root_),
    )
    metrics = metrics_of(result, privacy, synthesizer.history)
    if not gate.passed:
        outcome = block_release(config, gate, privacy, metrics, report, tracking_uri)
        raise ReleaseBlocked(config.dataset, outcome.reasons, str(report))
    outcome = publish_release(
        config, prepared, synthetic, gate, privacy, metrics, report, datasets_root_, tracking_uri
    )
    outcome.seconds = seconds | {"total": time.perf_counter() - t0}
    return outcome
