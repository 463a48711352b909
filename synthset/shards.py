"""Shards: the unit of generation work, written to staging atomically and skipped once done.

A shard folder holds `images/<sample_id>.png`, `rows.parquet` (one row per request, failed
ones included with `status="error"`, each image's `file_sha256`) and the marker `_DONE`. It is
written under a temporary name and renamed, so a shard folder either is complete or does not
exist. What happens to it afterwards (a truncated or deleted image, a planted symlink) is caught
by `image_problems` before anything is published.
"""

from __future__ import annotations

import hashlib
import io
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
    """The columns a request contributes to its metadata row; its metadata as JSON in the
    manifest's key order, made into label columns when a version is published."""
    return {
        "sample_id": request.sample_id,
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "seed": request.seed,
        "tags": list(request.tags),
        "metadata": json.dumps(request.metadata, default=str),
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
            file_name = file_sha256 = None
            if res.image is not None:
                file_name = f"images/{res.request.sample_id}.png"
                buffer = io.BytesIO()
                res.image.save(buffer, format="PNG")
                (tmp / file_name).write_bytes(buffer.getvalue())
                file_sha256 = hashlib.sha256(buffer.getvalue()).hexdigest()
            rows.append(
                {
                    **request_row(res.request),
                    "file_name": file_name,
                    "file_sha256": file_sha256,
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


def image_problems(folder: Path, rows: pd.DataFrame) -> list[str | None]:
    """Per row, why its image cannot be published, or None when it can.

    A shard's images may change after they were written and scored: truncated, deleted, or
    replaced by a symlink to a file outside the datasets root. Each image must be a regular
    file inside `folder` whose bytes still hash to `file_sha256` (shards written before that
    column existed are decoded instead).
    """
    root = folder.resolve()
    digests = rows["file_sha256"] if "file_sha256" in rows else [None] * len(rows)
    return [
        _image_problem(root, name, digest) if isinstance(name, str) else None
        for name, digest in zip(rows["file_name"], digests, strict=True)
    ]


def _image_problem(root: Path, file_name: str, digest: str | None) -> str | None:
    path = root / file_name
    if path.is_symlink() or not path.resolve().is_relative_to(root):
        return f"{file_name} is a link or lies outside its shard"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"{file_name} cannot be read: {exc.strerror or exc}"
    if digest is not None:
        if hashlib.sha256(data).hexdigest() != digest:
            return f"{file_name} changed after it was generated (sha256 differs)"
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as exc:
        return f"{file_name} does not decode: {exc}"
    return None
