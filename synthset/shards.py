"""Shards: the unit of generation work, written to staging atomically and skipped once done.

A shard folder holds `images/<sample_id>.png`, `rows.parquet` (one row per request, failed
ones included with `status="error"`) and the marker `_DONE`. It is written under a temporary
name and renamed, so a shard folder either is complete or does not exist.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from synthset.atomic import atomic_path
from synthset.manifest import GenerationRequest

if TYPE_CHECKING:
    from synthset.generators.pipeline import GenerationResult

MARKER = "_DONE"
ROWS = "rows.parquet"


def shard_id(requests: Sequence[GenerationRequest]) -> str:
    """A shard is named by the hash of its sample ids: same requests, same shard."""
    return hashlib.sha256("\n".join(r.sample_id for r in requests).encode()).hexdigest()[:16]


def shard_is_done(folder: Path) -> bool:
    return (folder / MARKER).is_file()


CONDITION_COLUMNS = ("condition_image", "condition_mask", "condition_control")
"""Metadata columns naming an item's condition images (in a version: `conditions/<hash>`)."""


def request_row(request: GenerationRequest) -> dict[str, Any]:
    """The columns a request contributes to its metadata row."""
    return {
        "sample_id": request.sample_id,
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "seed": request.seed,
        "tags": list(request.tags),
        "metadata": json.dumps(request.metadata, sort_keys=True, default=str),
        "condition_image": request.image,
        "condition_mask": request.mask,
        "condition_control": request.control,
        "item_index": request.item_index,
        "index": request.index,
    }


def write_shard(folder: Path, results: Sequence[GenerationResult], settings: dict[str, Any]) -> int:
    """Write a shard's images and rows atomically; returns the number of images written.

    `settings` are columns shared by every row (model, scheduler, steps, ...).
    """
    now = datetime.now(UTC)
    rows = []
    with atomic_path(folder, folder=True) as tmp:
        (tmp / "images").mkdir()
        for res in results:
            file_name = None
            if res.image is not None:
                file_name = f"images/{res.request.sample_id}.png"
                res.image.save(tmp / file_name, format="PNG")
            rows.append(
                {
                    **request_row(res.request),
                    "file_name": file_name,
                    **settings,
                    "created_at": now,
                    "status": "ok" if res.error is None else "error",
                    "error": res.error,
                }
            )
        pd.DataFrame(rows).to_parquet(tmp / ROWS, index=False)
        (tmp / MARKER).touch()
    return sum(r.image is not None for r in results)


def read_shard_rows(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / ROWS)
