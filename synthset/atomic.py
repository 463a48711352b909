"""Files and folders appear complete or not at all: each is written under a temporary name
beside its target and renamed into place, so a crash or a concurrent reader never sees half
of it. The one helper every writer of shards, scores, caches and pulls goes through."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: Path, folder: bool = False, keep_existing: bool = False) -> Iterator[Path]:
    """Yield a temporary path (a file path, or an empty folder with `folder`) to write, then
    rename it to `target`. An existing target is replaced, or, with `keep_existing` (another
    process built the same thing first), left as it is and ours dropped. On an error nothing
    is renamed and the temporary is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    work = tmp if folder else tmp / target.name
    try:
        yield work
        if target.exists():
            if keep_existing:
                return
            if target.is_dir():
                shutil.rmtree(target)
        os.replace(work, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
