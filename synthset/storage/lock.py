"""One run of a plan at a time, and word of a run that died holding it.

Runs of one manifest share a staging folder (it is named by the plan digest, which is what
makes a re-run resume). A second run of the same plan waits for the first instead of
generating into, publishing from or deleting the folder under it. The lock is an `flock` on
`.staging/<plan>.lock`, so the kernel releases it when its holder dies, even by SIGKILL; the
holder writes who it is into the file and removes it when it ends, so whoever finds the file
still filled knows the previous run was killed and can say so (and mark it crashed).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Holder = dict[str, Any]


def _read(fd: int) -> Holder:
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 1 << 16)
    try:
        holder = json.loads(data) if data.strip() else {}
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _write(fd: int, holder: Holder) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(holder).encode() if holder else b"")
    os.fsync(fd)


def _open_locked(path: Path, on_wait: Callable[[Holder], None]) -> int:
    """An fd holding the lock on the file now at `path` (a holder that finished may have
    removed the file we waited on, and its folder; then the new one is locked)."""
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait(_read(fd))
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def plan_lock(
    path: Path,
    about: Mapping[str, str] | None = None,
    on_wait: Callable[[Holder], None] = lambda holder: None,
) -> Iterator[Holder | None]:
    """Hold the lock at `path` for the block; yields what a killed previous holder left
    (pid, host, since and its `about`, e.g. its Prefect flow run id), or None.

    `on_wait(holder)` is called once when another live run holds the lock; the call then
    blocks until that run ends. The lock file goes when the block ends, and its folder with
    it when nothing else is left there.
    """
    fd = _open_locked(path, on_wait)
    try:
        previous = _read(fd) or None
        me = {"pid": os.getpid(), "host": socket.gethostname(), **(about or {})}
        _write(fd, {**me, "since": datetime.now(UTC).isoformat(timespec="seconds")})
        yield previous
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
            path.parent.rmdir()
        os.close(fd)
