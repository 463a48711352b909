"""Where the local servers keep their PID files, logs and data: one folder per checkout, so
`make stop` finds what `make run` started and a test can use a private one."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """`.synthset/` in the working folder, or `$SYNTHSET_STATE`."""
    return Path(os.environ.get("SYNTHSET_STATE", ".synthset")).resolve()


def log_tail(path: Path, lines: int = 5) -> str:
    """The last lines of a server's log on one line, for an error message."""
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"no log at {path}"
    return f"log {path}: {' | '.join(tail)}"
