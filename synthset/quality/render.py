"""The report as one self-contained HTML page: every chart and thumbnail a PNG data URI, the
JSON document embedded; nothing is fetched from anywhere when it is opened."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

LABELS = {
    "images": "kept images",
    "generated": "generated images",
    "rejected": "rejected images",
    "duplicate_rate": "duplicate rate among raw generations",
    "duplicate_rate_max_prompt": "duplicate rate, worst prompt",
    "vendi": "Vendi score of all kept images",
    "vendi_per_prompt_mean": "Vendi score per prompt (mean)",
    "clip_score_mean": "CLIP score of kept images (mean)",
    "fd": "Fréchet distance to the reference",
    "fd_floor": "FD floor: real vs real at this n",
    "kid": "KID",
    "precision": "precision",
    "recall": "recall",
    "density": "density",
    "coverage": "coverage",
    "reference_images": "reference images",
}

MAX_ROWS = 1000
PROMPT_COLUMNS = ("item", "prompt", "generated", "kept", "duplicates", "duplicate_rate", "vendi")
SCORE_COLUMNS = ("item", "prompt", "kept", "clip_score_mean", "clip_score_p10", "clip_score_p50")
SCORE_COLUMNS += ("clip_score_p90",)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
font-size:13px;text-align:left;vertical-align:top}th{background:#f3f3f3}
.note{color:#555;font-size:13px}.warn{background:#fff6d6;padding:.6em 1em;border-radius:6px}
.thumbs{display:flex;flex-wrap:wrap;gap:6px;margin:.3em 0 1em}
.thumbs figure{margin:0;text-align:center;font-size:11px;color:#555}
img.thumb{image-rendering:pixelated;border:1px solid #ddd}img.plot{max-width:100%}
.up{color:#1a7f37}.down{color:#b42318}
"""

_SCRIPT = """
window.addEventListener('load', () => {
  const imgs = Array.from(document.querySelectorAll('img'));
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute('data-images-loaded', String(ok));
  document.body.setAttribute('data-images-total', String(imgs.length));
  const data = JSON.parse(document.getElementById('synthset-quality').textContent);
  document.body.setAttribute('data-version', String(data.version));
});
"""


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """An HTML table of `rows` (columns: the first row's keys unless given), at most
    `MAX_ROWS` of them (the JSON document has them all)."""
    if not rows:
        return "<p class='note'>none</p>"
    more = len(rows) - MAX_ROWS
    rows, columns = rows[:MAX_ROWS], list(columns or rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    rest = f"<p class='note'>{more} more rows in quality.json</p>" if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{rest}"


def plot(title: str, uri: str | None) -> str:
    if uri is None:
        return ""
    return f"<img class='plot' alt='{html.escape(title)}' src='{uri}'>"


def thumbs(entries: Sequence[tuple[str, str]]) -> str:
    """(data URI, caption) pairs as a row of captioned thumbnails."""
    figures = "".join(
        f"<figure><img class='thumb' src='{uri}' alt='{html.escape(caption)}' "
        f"title='{html.escape(caption)}'><figcaption>{html.escape(caption)}</figcaption></figure>"
        for uri, caption in entries
    )
    return f"<div class='thumbs'>{figures}</div>"


def _headline(headline: dict[str, Any]) -> str:
    rows = [{"figure": LABELS.get(k, k), "value": v} for k, v in headline.items() if k in LABELS]
    return table(rows)


def _fidelity(fidelity: dict[str, Any]) -> str:
    if "unavailable" in fidelity:
        return f"<p class='warn'>{html.escape(fidelity['unavailable'])}</p>"
    ref = fidelity["reference"]
    prdc = fidelity.get("prdc") or {}
    floor = fidelity.get("fd_floor") or {}
    subsets = f"{fidelity.get('kid_subsets')} subsets of {fidelity.get('kid_subset_size')}"
    rows = [
        {"figure": "Fréchet distance", "value": fidelity["fd"]},
        {"figure": f"FD floor ({floor.get('images')} real vs the rest)", "value": floor.get("fd")},
        {"figure": f"KID ({subsets})", "value": fidelity["kid"]},
    ] + [
        {"figure": f"{name} (k = {prdc.get('k')})", "value": prdc.get(name)}
        for name in ("precision", "recall", "density", "coverage")
    ]
    return (
        f"<p>Against <b>{html.escape(ref['description'])}</b> (<code>{html.escape(ref['spec'])}"
        f"</code>): {fidelity['generated_images']} generated and {fidelity['reference_images']}"
        " reference images.</p>"
        + table(rows)
        + f"<p class='note'>{html.escape(fidelity.get('note', ''))}</p>"
    )


def _comparison(comparison: dict[str, Any] | None) -> str:
    if not comparison:
        return "<p class='note'>No earlier version of this dataset.</p>"
    if "unavailable" in comparison:
        return f"<p class='warn'>{html.escape(comparison['unavailable'])}</p>"
    changes = comparison["changes"]
    facts = (
        f"<p>{changes['images_shared']} images shared with v{comparison['version']}, "
        f"{changes['images_added']} added, {changes['images_removed']} removed. "
        f"Prompts added: {html.escape(', '.join(changes['prompts_added']) or 'none')}; "
        f"removed: {html.escape(', '.join(changes['prompts_removed']) or 'none')}.</p>"
    )
    rows = [
        {
            "figure": r["figure"],
            f"v{comparison['version']}": r["previous"],
            "this version": r["current"],
            "change": r["change"],
            "relative": None if r["relative"] is None else f"{100 * r['relative']:+.1f}%",
        }
        for r in comparison["figures"]
    ]
    return facts + table(rows)


def render(document: dict[str, Any], pictures: dict[str, Any]) -> str:
    """The HTML page of a quality `document` with its `pictures` (charts: data URIs;
    `rejections` and `samples`: lists of (title, [(uri, caption)])."""
    d = document
    title = f"{d['dataset']} v{d['version']}: quality report"
    space = d["feature_space"]
    rejected_rows = d["rejections"]["by_reason"]
    rejection_examples = "".join(
        f"<h3>{html.escape(reason)}</h3>{thumbs(entries)}"
        for reason, entries in pictures.get("rejections", [])
    )
    samples = "".join(
        f"<h3>{html.escape(prompt)}</h3>{thumbs(entries)}"
        for prompt, entries in pictures.get("samples", [])
    )
    shown = d["limits"]
    payload = json.dumps(d, default=to_json).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="note">Built {html.escape(d["built_at"])} by synthset {html.escape(d["synthset"])}.
Features: <b>{html.escape(space["name"])}</b>, {fmt(space.get("dim"))} dimensions
({html.escape(space["source"])}).</p>
<h2>Headline</h2>{_headline(d["headline"])}
<h2>Fidelity</h2>{_fidelity(d["fidelity"])}
<h2>Diversity and duplicates per prompt</h2>
<p class="note">Duplicates among raw generations: images rejected as a duplicate ÷ images
generated for the prompt. Vendi: the effective number of distinct kept images (Friedman &amp;
Dieng 2023). Charts show the first {shown["prompts"]} prompts; the table shows all.</p>
{plot("duplicates and Vendi per prompt", pictures.get("per_prompt"))}
{table(d["prompts"], PROMPT_COLUMNS)}
<h2>CLIP scores per prompt</h2>
{plot("CLIP scores per prompt", pictures.get("clip_scores"))}
{table(d["prompts"], SCORE_COLUMNS)}
<h2>Rejections</h2>{table(rejected_rows)}
<p class="note">{html.escape(d["rejections"]["thumbnails"])}</p>{rejection_examples}
<h2>Samples per prompt</h2>{samples or "<p class='note'>no kept images</p>"}
<h2>Tags</h2>{plot("tag frequencies", pictures.get("tags"))}{table(d["tags"][: shown["tags"]])}
<h2>Compared with the previous version</h2>{_comparison(d.get("comparison"))}
<script type="application/json" id="synthset-quality">{payload}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def to_json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
