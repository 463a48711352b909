"""The audit report's frame, for any modality: one self-contained HTML page (plots embedded as
PNG data URIs, the audit JSON embedded too), `audit.json` beside it, and the statement of
what an (ε, δ) guarantee covers and what it does not.

A modality supplies its sections (metric tables), its plots and the items its guarantee does
not cover; the tabular report is `synthset.privacy.tabular.report`. The report is computed
from the private data and is itself not covered by any DP guarantee: it is for the data
owner, and it says so.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthset.privacy.gate import GateResult

HTML = "report.html"
JSON = "audit.json"
WARNING = """This report is computed from the private rows and is not covered by any
differential-privacy guarantee. Share the synthetic table, not this report."""
"""The page's warning (a modality names its own data in place of rows and table)."""


def pyplot() -> Any:
    """matplotlib's pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_uri(fig: Any) -> str:
    """A matplotlib figure as a PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def dp_statement(
    privacy: dict[str, Any] | None, not_covered: Sequence[str], unit: str = "row"
) -> dict[str, Any]:
    """What the guarantee of a ledger (`PrivacyLedger.to_dict()`, None without DP) covers and
    what it does not (`not_covered`: the modality's list), in words; `unit` is what one
    individual's contribution is (the guarantee is for adding or removing one)."""
    if privacy is None:
        return {
            "differential_privacy": False,
            "summary": f"No differential privacy: the synthesizer saw the private {unit}s "
            "directly. Protection rests on the audit and its gate only.",
            "covered": [],
            "not_covered": ["everything: no (ε, δ) guarantee"],
        }
    spent = privacy["spent"]
    return {
        "differential_privacy": True,
        "summary": f"(ε = {spent['epsilon']:.3g}, δ = {spent['delta']:.3g})-differential privacy "
        f"with respect to adding or removing one {unit} of the training data, for everything "
        "listed as covered, composed with Rényi DP.",
        "covered": [
            f"{m['name']}: {m['covers']} (noise multiplier {m['noise_multiplier']:.3g}, "
            f"sampling rate {m['sample_rate']:.3g}, {m['steps']} steps)"
            for m in privacy["mechanisms"]
        ],
        "not_covered": list(not_covered),
        "notes": privacy.get("notes", []),
    }


def html_table(rows: list[dict[str, Any]]) -> str:
    """An HTML table of `rows` (the first row's keys are the header); "none" when empty."""
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


def render_report(
    name: str,
    gate: GateResult,
    privacy: dict[str, Any] | None,
    statement: dict[str, Any],
    audit: dict[str, Any],
    sections: Sequence[tuple[str, str]],
    plots: Sequence[tuple[str, str]],
    extra: dict[str, Any] | None = None,
    warning: str = WARNING,
) -> tuple[str, dict[str, Any]]:
    """The HTML page and the JSON document of one audit.

    The page: the gate's verdict, the `warning` that the report is private, `extra`'s scalar
    facts, the gate's checks, the privacy `statement` (from `dp_statement`), then each of
    `sections` (title, HTML body) and the `plots` (title, data URI). The document holds
    `extra`, the gate, the ledger `privacy`, the statement and `audit`; it is embedded in
    the page as JSON.
    """
    document = {
        "dataset": name,
        **(extra or {}),
        "gate": gate.to_dict(),
        "privacy": privacy,
        "privacy_statement": statement,
        "audit": audit,
    }
    verdict = (
        '<div class="verdict pass">Release gate: PASSED</div>'
        if gate.passed
        else '<div class="verdict fail">Release gate: FAILED, nothing published: '
        + html.escape("; ".join(gate.reasons))
        + "</div>"
    )
    facts = {k: v for k, v in (extra or {}).items() if not isinstance(v, dict | list)}
    figures = "".join(
        f"<h3>{html.escape(title)}</h3><img class='plot' alt='{html.escape(title)}' src='{uri}'>"
        for title, uri in plots
    )
    body = "\n".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    covered = (
        "".join(f"<li>{html.escape(c)}</li>" for c in statement["covered"]) or "<li>nothing</li>"
    )
    uncovered = "".join(f"<li>{html.escape(c)}</li>" for c in statement["not_covered"])
    notes = "".join(f"<li>{html.escape(c)}</li>" for c in statement.get("notes", []))
    payload = _dumps(document).replace("</", "<\\/")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(name)}: synthetic data audit</title>
<style>{_STYLE}</style></head><body>
<h1>{html.escape(name)}: synthetic data audit</h1>
{verdict}
<p class="warn">{html.escape(warning)}</p>
{html_table([facts]) if facts else ""}
<h2>Gate</h2>{html_table(gate.checks)}
<h2>Privacy guarantee</h2><p>{html.escape(statement["summary"])}</p>
<h3>Covered</h3><ul>{covered}</ul><h3>Not covered</h3><ul>{uncovered}</ul>
{"<h3>Notes</h3><ul>" + notes + "</ul>" if notes else ""}
{body}
<h2>Plots</h2>{figures}
<script type="application/json" id="synthset-audit">{payload}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
    return page, document


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities as None: JSON has no NaN, and a browser's JSON.parse
    refuses the whole report for one."""
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return None
    return value


def _dumps(document: dict[str, Any], indent: int | None = None) -> str:
    return json.dumps(_finite(document), indent=indent, default=_json, allow_nan=False)


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
    (folder / JSON).write_text(_dumps(document, indent=2) + "\n")
    (folder / HTML).write_text(page)
    return folder / HTML
