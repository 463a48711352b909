"""The content digest of a dataset version: sha256 over its images and its metadata.

Images: in sample-id order, each id and file length hashed before the file's bytes. Metadata:
every column of `metadata.parquet` but the provenance ones (`created_at`), by column name,
rows in sample-id order, values rendered as JSON (floats exactly), so a label, prompt or score
edited in a pulled copy fails verification while row order and Parquet encoding do not matter.
Scores are floats: the same run on other hardware or thread counts can differ in their last
bits, and so does the digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from synthset.shards import CONDITION_COLUMNS

_CHUNK = 1 << 20
PROVENANCE = ("created_at",)
"""Metadata columns that record when, not what: left out of the digest."""


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _metadata_chunks(metadata: pd.DataFrame) -> Iterable[bytes]:
    frame = metadata.drop(columns=[c for c in PROVENANCE if c in metadata])
    frame = frame.sort_values("sample_id", kind="stable")
    for column in sorted(frame.columns):
        values = frame[column].tolist()
        yield json.dumps([column, values], default=_plain, separators=(",", ":")).encode()


def content_digest(folder: str | Path, metadata: pd.DataFrame) -> str:
    """Digest of the images named by `metadata` (`sample_id`, `file_name`) under `folder`,
    and of `metadata` itself."""
    folder = Path(folder)
    h = hashlib.sha256()
    files = zip(metadata["sample_id"], metadata["file_name"], strict=True)
    for sample_id, file_name in sorted(files):
        path = folder / file_name
        h.update(sample_id.encode() + b"\0" + str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    conditions = {p for c in CONDITION_COLUMNS if c in metadata for p in metadata[c].dropna()}
    for name in sorted(conditions):
        h.update(name.encode() + b"\0" + (folder / name).read_bytes())
    for chunk in _metadata_chunks(metadata):
        h.update(str(len(chunk)).encode() + b"\0" + chunk)
    return "sha256:" + h.hexdigest()


TABLE_FILE = "data.parquet"
"""The file that marks a tabular version (a synthetic table instead of images)."""


def tree_digest(folder: str | Path) -> str:
    """Digest of every file under `folder`: sorted relative paths, each with length and bytes."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        h.update(str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return "sha256:" + h.hexdigest()
