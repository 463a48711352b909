"""The audit report: one self-contained HTML page (plots embedded as PNG data URIs, the audit
JSON embedded too) and `audit.json`.

The report is computed from the private rows and is itself not covered by any DP guarantee:
it is for the data owner, and it says so. The privacy section states (ε, δ), what each
mechanism released, and what the guarantee does not cover.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthset.privacy.audit import AuditResult
from synthset.privacy.gate import GateResult
from synthset.privacy.schema import TableSchema

HTML = "report.html"
JSON = "audit.json"
MAX_MARGINALS = 12


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _plots(
    result: AuditResult, train: pd.DataFrame, synthetic: pd.DataFrame, schema: TableSchema
) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    plots.append(("Distance to closest record", _png(fig)))

    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for key, label in (
        ("members_to_synthetic", "training rows → synthetic"),
        ("holdout_to_synthetic", "holdout rows → synthetic"),
    ):
        ax.hist(np.clip(d[key], 0, top), bins=bins, alpha=0.5, density=True, label=label)
    ax.set_xlabel("distance to closest synthetic record (membership attack score)")
    ax.legend()
    plots.append(("Membership inference", _png(fig)))

    shapes = result.columns
    fig, ax = plt.subplots(figsize=(6.5, max(2.5, 0.22 * len(shapes))))
    ax.barh(shapes["column"], shapes["score"], color="#4c72b0")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("KS / TV complement (1 = same distribution)")
    plots.append(("Column shapes", _png(fig)))

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
    plots.append(("Pairwise associations", _png(fig)))

    columns = schema.columns[:MAX_MARGINALS]
    rows = (len(columns) + 3) // 4
    fig, axes = plt.subplots(rows, 4, figsize=(12, 2.4 * rows), squeeze=False)
    for ax, spec in zip(axes.flat, columns, strict=False):
        r, s = train[spec.name], synthetic[spec.name]
        if spec.kind in ("numeric", "datetime"):
            from synthset.privacy.encoder import as_float

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
    plots.append(("Marginals (real training rows vs synthetic)", _png(fig)))
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
    if privacy is None:
        return {
            "differential_privacy": False,
            "summary": "No differential privacy: the synthesizer saw the private rows directly. "
            "Protection rests on the audit and its gate only.",
            "covered": [],
            "not_covered": ["everything: no (ε, δ) guarantee"],
        }
    if any("one model per target class" in m["covers"] for m in privacy["mechanisms"]):
        not_covered.insert(
            1,
            "the number of rows of each target class (Opacus scales each class model's noisy "
            "gradient sum by its expected batch size)",
        )
    spent = privacy["spent"]
    return {
        "differential_privacy": True,
        "summary": f"(ε = {spent['epsilon']:.3g}, δ = {spent['delta']:.3g})-differential privacy "
        "with respect to adding or removing one row of the training data, for everything "
        "listed as covered, composed with Rényi DP.",
        "covered": [
            f"{m['name']}: {m['covers']} (noise multiplier {m['noise_multiplier']:.3g}, "
            f"sampling rate {m['sample_rate']:.3g}, {m['steps']} steps)"
            for m in privacy["mechanisms"]
        ],
        "not_covered": not_covered,
        "notes": privacy.get("notes", []),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row.values()) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
font-size:13px;text-align:left}th{background:#f3f3f3}.verdict{padding:.8em 1em;border-radius:6px;
font-weight:600}.pass{background:#e3f4e1}.fail{background:#fbe3e3}img{max-width:100%}
.warn{background:#fff6d6;padding:.6em 1em;border-radius:6px}
"""

_SCRIPT = """
window.addEventListener('load', () => {
  const imgs = Array.from(document.querySelectorAll('img.plot'));
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute('data-plots-loaded', String(ok));
  document.body.setAttribute('data-plots-total', String(imgs.length));
  const data = JSON.parse(document.getElementById('synthset-audit').textContent);
  document.body.setAttribute('data-gate', data.gate.passed ? 'pass' : 'fail');
});
"""


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
    document = {
        "dataset": name,
        **(extra or {}),
        "gate": gate.to_dict(),
        "privacy": privacy,
        "privacy_statement": statement,
        "audit": result.to_dict(),
    }
    verdict = (
        '<div class="verdict pass">Release gate: PASSED</div>'
        if gate.passed
        else '<div class="verdict fail">Release gate: FAILED, nothing published: '
        + html.escape("; ".join(gate.reasons))
        + "</div>"
    )
    facts = {k: v for k, v in (extra or {}).items() if not isinstance(v, dict | list)}
    plots = "".join(
        f"<h3>{html.escape(title)}</h3><img class='plot' alt='{html.escape(title)}' src='{uri}'>"
        for title, uri in _plots(result, train, synthetic, schema)
    )
    metrics = [{"metric": k, "value": v} for k, v in result.metrics.items()]
    covered = (
        "".join(f"<li>{html.escape(c)}</li>" for c in statement["covered"]) or "<li>nothing</li>"
    )
    uncovered = "".join(f"<li>{html.escape(c)}</li>" for c in statement["not_covered"])
    notes = "".join(f"<li>{html.escape(c)}</li>" for c in statement.get("notes", []))
    payload = json.dumps(document, default=_json).replace("</", "<\\/")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(name)}: synthetic data audit</title>
<style>{_STYLE}</style></head><body>
<h1>{html.escape(name)}: synthetic data audit</h1>
{verdict}
<p class="warn">This report is computed from the private rows and is not covered by any
differential-privacy guarantee. Share the synthetic table, not this report.</p>
{_table([facts]) if facts else ""}
<h2>Gate</h2>{_table(gate.checks)}
<h2>Privacy guarantee</h2><p>{html.escape(statement["summary"])}</p>
<h3>Covered</h3><ul>{covered}</ul><h3>Not covered</h3><ul>{uncovered}</ul>
{"<h3>Notes</h3><ul>" + notes + "</ul>" if notes else ""}
<h2>Metrics</h2>{_table(metrics)}
<h2>TSTR vs TRTR</h2>{_table([result.tstr] if result.tstr else [])}
<h2>Attribute inference</h2>{_table(result.attribute)}
<h2>Plots</h2>{plots}
<script type="application/json" id="synthset-audit">{payload}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
    return page, document


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def write_report(folder: str | Path, page: str, document: dict[str, Any]) -> Path:
    """Write `report.html` and `audit.json` into `folder`; returns the HTML path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / JSON).write_text(json.dumps(document, indent=2, default=_json) + "\n")
    (folder / HTML).write_text(page)
    return folder / HTML
