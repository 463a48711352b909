"""The tabular audit report: its plots (distances to closest records, membership inference,
column shapes, pairwise associations, marginals), its metric tables and what a synthetic
table's (ε, δ) does not cover, in the shared frame of `synthset.privacy.report` (one
self-contained HTML page with embedded PNGs and JSON, and `audit.json`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from synthset.privacy.gate import GateResult
from synthset.privacy.report import dp_statement, figure_uri, html_table, pyplot, render_report
from synthset.privacy.tabular.audit import AuditResult
from synthset.privacy.tabular.schema import TableSchema

MAX_MARGINALS = 12


def _plots(
    result: AuditResult, train: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema
) -> list[tuple[str, str]]:
    plt = pyplot()
    plots = []
    d = result.distances
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    top = max(float(np.quantile(np.concatenate(list(d.values())), 0.99)), 1e-6)
    bins = np.linspace(0, top, 40)
    for key, label in (
        ("synthetic_to_train", "synthetic → training"),
        ("holdout_to_train", "holdout → training"),
        ("random_to_train", "random → training"),
    ):
        ax.hist(np.clip(d[key], 0, top), bins=bins, alpha=0.5, density=True, label=label)
    ax.set_xlabel("distance to closest training record (SDMetrics DCR)")
    ax.legend()
    plots.append(("Distance to closest record", figure_uri(fig)))

    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for key, label in (
        ("members_to_synthetic", "training rows → synthetic"),
        ("holdout_to_synthetic", "holdout rows → synthetic"),
    ):
        ax.hist(np.clip(d[key], 0, top), bins=bins, alpha=0.5, density=True, label=label)
    ax.set_xlabel("distance to closest synthetic record (membership attack score)")
    ax.legend()
    plots.append(("Membership inference", figure_uri(fig)))

    shapes = result.columns
    fig, ax = plt.subplots(figsize=(6.5, max(2.5, 0.22 * len(shapes))))
    ax.barh(shapes["column"], shapes["score"], color="#4c72b0")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("KS / TV complement (1 = same distribution)")
    plots.append(("Column shapes", figure_uri(fig)))

    real, syn = result.real_associations, result.synthetic_associations
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, matrix, title in (
        (axes[0], real.to_numpy(), "real"),
        (axes[1], syn.to_numpy(), "synthetic"),
        (axes[2], np.abs(real.to_numpy() - syn.to_numpy()), "|difference|"),
    ):
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=axes, shrink=0.8)
    plots.append(("Pairwise associations", figure_uri(fig)))

    columns = schema.columns[:MAX_MARGINALS]
    rows = (len(columns) + 3) // 4
    fig, axes = plt.subplots(rows, 4, figsize=(12, 2.4 * rows), squeeze=False)
    for ax, spec in zip(axes.flat, columns, strict=False):
        r, s = train[spec.name], synthetic[spec.name]
        if spec.kind in ("numeric", "datetime"):
            from synthset.privacy.tabular.encoder import as_float

            rv, sv = as_float(r, spec), as_float(s, spec)
            both = np.concatenate([rv[~np.isnan(rv)], sv[~np.isnan(sv)]])
            edges = np.linspace(both.min(), both.max() + 1e-12, 25)
            ax.hist(rv[~np.isnan(rv)], bins=edges, alpha=0.5, density=True, label="real")
            ax.hist(sv[~np.isnan(sv)], bins=edges, alpha=0.5, density=True, label="synthetic")
        else:
            p = r.astype(str).value_counts(normalize=True).head(10)
            q = s.astype(str).value_counts(normalize=True).reindex(p.index, fill_value=0)
            x = np.arange(len(p))
            ax.bar(x - 0.2, p.to_numpy(), 0.4, label="real")
            ax.bar(x + 0.2, q.to_numpy(), 0.4, label="synthetic")
            ax.set_xticks(x, [str(v)[:8] for v in p.index], rotation=45, fontsize=7)
        ax.set_title(spec.name, fontsize=9)
    for ax in list(axes.flat)[len(columns) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    plots.append(("Marginals (real training rows vs synthetic)", figure_uri(fig)))
    return plots


def privacy_statement(privacy: dict[str, Any] | None, schema: TableSchema) -> dict[str, Any]:
    """What the guarantee covers and what it does not, in words."""
    inferred = [c.name for c in schema.columns if not c.declared]
    not_covered = [
        "the number of rows (it sets DP-SGD's sampling rate and the default synthetic row count)",
        "the train/holdout split and this audit report, computed on the private rows without "
        "noise: keep the report with the data owner",
        "any choice of settings made by looking at the private data",
    ]
    if inferred:
        not_covered.insert(
            0,
            "the schema read from the data: the kinds of columns "
            + ", ".join(inferred[:20])
            + (" …" if len(inferred) > 20 else "")
            + " were inferred from their values (declare them to remove this)",
        )
    if privacy is not None and any(
        "one model per target class" in m["covers"] for m in privacy["mechanisms"]
    ):
        not_covered.insert(
            1,
            "the number of rows of each target class (Opacus scales each class model's noisy "
            "gradient sum by its expected batch size)",
        )
    return dp_statement(privacy, not_covered)


def build_report(
    name: str,
    result: AuditResult,
    gate: GateResult,
    schema: TableSchema,
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    privacy: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The HTML page and the JSON document of one audit."""
    statement = privacy_statement(privacy, schema)
    sections = [
        ("Metrics", html_table([{"metric": k, "value": v} for k, v in result.metrics.items()])),
        ("TSTR vs TRTR", html_table([result.tstr] if result.tstr else [])),
        ("Attribute inference", html_table(result.attribute)),
    ]
    return render_report(
        name,
        gate,
        privacy,
        statement,
        result.to_dict(),
        sections,
        _plots(result, train, synthetic, schema),
        extra,
    )
