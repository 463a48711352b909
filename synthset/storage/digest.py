"""The content digest of a dataset version: sha256 over sorted sample ids and image bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20


def content_digest(folder: str | Path, files: Iterable[tuple[str, str]]) -> str:
    """Digest of `(sample_id, file_name)` pairs whose files lie under `folder`.

    Pairs are taken in sample-id order, so the digest does not depend on row order; each id
    and each file's length is hashed before its bytes, so boundaries cannot shift.
    """
    folder = Path(folder)
    h = hashlib.sha256()
    for sample_id, file_name in sorted(files):
        path = folder / file_name
        h.update(sample_id.encode() + b"\0" + str(path.stat().st_size).encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return "sha256:" + h.hexdigest()


TABLE_FILE = "data.parquet"
"""The file that marks a tabular version (a synthetic table instead of images)."""


def is_table_version(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / TABLE_FILE).is_file() and not (folder / "metadata.parquet").is_file()


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


def version_digest(folder: str | Path) -> str:
    """Recompute the digest of a version folder: from its `metadata.parquet` and images, or,
    for a tabular version, over all its files."""
    import pyarrow.parquet as pq

    if is_table_version(folder):
        return tree_digest(folder)
    table = pq.read_table(Path(folder) / "metadata.parquet", columns=["sample_id", "file_name"])
    return content_digest(
        folder, zip(table["sample_id"].to_pylist(), table["file_name"].to_pylist(), strict=True)
    )
