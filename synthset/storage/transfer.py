"""A version's images travel as a few large tar shards, not one request per file.

`pack` writes `images/` into WebDataset-style tar files (uncompressed: PNGs are compressed
already) of at most `SHARD_FILES` files or `SHARD_BYTES` bytes; `unpack` extracts them back
into the same `images/` layout and removes them, refusing members outside `images/`. Small
files (Parquet, card, index) travel as they are, so a reader can fetch the metadata alone.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

IMAGES = "images"
SHARDS = "shards"
SHARD_FILES = 2000
SHARD_BYTES = 256 << 20


def _groups(files: list[Path]) -> list[list[Path]]:
    groups: list[list[Path]] = []
    size = 0
    for path in files:
        length = path.stat().st_size
        if not groups or len(groups[-1]) >= SHARD_FILES or size + length > SHARD_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(path)
        size += length
    return groups


def pack(folder: Path, out: Path) -> list[Path]:
    """Tar shards of `folder/images/` written under `out`, in file-name order."""
    files = sorted((folder / IMAGES).iterdir()) if (folder / IMAGES).is_dir() else []
    out.mkdir(parents=True, exist_ok=True)
    shards = []
    for n, group in enumerate(_groups(files)):
        shards.append(out / f"{IMAGES}-{n:05d}.tar")
        with tarfile.open(shards[-1], "w", format=tarfile.PAX_FORMAT) as tar:
            for path in group:
                tar.add(path, arcname=f"{IMAGES}/{path.name}", recursive=False)
    return shards


def unpack(folder: Path) -> int:
    """Extract `folder/shards/*.tar` into `folder/images/` and remove the shards; returns how
    many files came out. Members must be plain files directly under `images/`."""
    shards = sorted((folder / SHARDS).glob("*.tar")) if (folder / SHARDS).is_dir() else []
    extracted = 0
    for shard in shards:
        with tarfile.open(shard) as tar:
            members = tar.getmembers()
            for member in members:
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) != 2 or parts[0] != IMAGES:
                    raise ValueError(f"{shard.name}: unexpected member {member.name!r}")
            tar.extractall(folder, members=members, filter="data")
            extracted += len(members)
    shutil.rmtree(folder / SHARDS, ignore_errors=True)
    return extracted
