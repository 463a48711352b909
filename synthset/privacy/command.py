"""How `synthset tabular run` and `synthset medical run` end, the same for every modality:
a blocked release exits 3 with the gate's reasons, a user's mistake stays a one-line error
(exit 2, by the CLI), anything else is one line and exit 1."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
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


def standalone(add_parser: Callable[[Any], Any], argv: Sequence[str] | None = None) -> int:
    """`python -m synthset.privacy.<modality>.cli ...`: one modality's commands alone, with the
    main CLI's exit codes (a `SynthsetError` is one line and exit 2)."""
    from synthset.errors import SynthsetError

    parser = argparse.ArgumentParser(prog="synthset")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SynthsetError as exc:
        print(f"synthset: error: {exc}", file=sys.stderr)
        return 2
