"""The report's pictures, each a PNG data URI so the page stands alone: small matplotlib charts
(CLIP scores, duplicates and Vendi per prompt, tag frequencies) and image thumbnails."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

THUMB = 64
MAX_PROMPTS = 24
MAX_TAGS = 20


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _uri(fig: Any) -> str:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _label(row: dict[str, Any], width: int = 38) -> str:
    text = f"{row['item']}: {row['prompt']}"
    return text if len(text) <= width else text[: width - 1] + "…"


def clip_score_chart(kept: pd.DataFrame, prompts: list[dict[str, Any]]) -> str | None:
    """Box plots of the kept images' CLIP scores, one per prompt (the first `MAX_PROMPTS`)."""
    if "clip_score" not in kept or kept["clip_score"].isna().all() or not prompts:
        return None
    shown = prompts[:MAX_PROMPTS]
    data = [
        kept.loc[kept["item_index"] == p["item"], "clip_score"].dropna().astype(float).tolist()
        for p in shown
    ]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(shown) + 1.2))
    ax.boxplot(data, orientation="horizontal", widths=0.6, showfliers=True)
    ax.set_yticks(range(1, len(shown) + 1), [_label(p) for p in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("CLIP score (100 × cosine) of kept images")
    ax.grid(axis="x", alpha=0.3)
    return _uri(fig)


def per_prompt_chart(prompts: list[dict[str, Any]]) -> str | None:
    """Duplicate rate among raw generations and Vendi score of kept images, per prompt."""
    shown = [p for p in prompts[:MAX_PROMPTS] if p["generated"]]
    if not shown:
        return None
    plt = _pyplot()
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(8, 0.35 * len(shown) + 1.2), sharey=True, layout="constrained"
    )
    y = range(len(shown))
    left.barh(y, [100 * (p["duplicate_rate"] or 0) for p in shown], color="#c0504d")
    left.set_yticks(list(y), [_label(p, 30) for p in shown], fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("duplicates, % of generated")
    right.barh(y, [p["vendi"] or 0 for p in shown], color="#4f81bd")
    right.set_xlabel("Vendi score of kept images")
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
    return _uri(fig)


def tag_chart(tags: list[dict[str, Any]]) -> str | None:
    """The most frequent zero-shot tags of kept images."""
    if not tags:
        return None
    shown = tags[:MAX_TAGS]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(shown) + 1.0))
    ax.barh(range(len(shown)), [t["images"] for t in shown], color="#9bbb59")
    ax.set_yticks(range(len(shown)), [t["tag"] for t in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("kept images with the tag")
    ax.grid(axis="x", alpha=0.3)
    return _uri(fig)


def thumbnail(path: Path, size: int = THUMB) -> str | None:
    """An image file as a small PNG data URI (small images enlarged without smoothing), or
    None when it cannot be read."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, ValueError):
        return None
    scale = size / max(image.size)
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    shape = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    buffer = io.BytesIO()
    image.resize(shape, resample).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
