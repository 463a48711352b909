"""How `synthset tabular run` and `synthset medical run` end, the same for every modality:
a blocked release exits 3 with the gate's reasons, a user's mistake stays a one-line error
(exit 2, by the CLI), anything else is one line and exit 1."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from synthset.privacy.errors import ReleaseBlocked

EXIT_BLOCKED = 3


def run_release(
    run: Callable[[], dict[str, Any]],
    show: Callable[[dict[str, Any]], None],
    user_errors: tuple[type[Exception], ...],
) -> int:
    """`run()` the release and `show` its result; returns the exit code."""
    try:
        result = run()
    except ReleaseBlocked as exc:
        print(f"synthset: release blocked: {exc}", file=sys.stderr)
        return EXIT_BLOCKED
    except user_errors:
        raise
    except Exception as exc:
        print(f"synthset: error: run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    show(result)
    return 0
