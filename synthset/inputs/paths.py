"""Input paths confined to the folders a user allowed.

A manifest read by a scheduled worker must not reach into the rest of its machine: items
files and condition images named as `../..`, as absolute paths elsewhere, or through a
symlink that leads out, are refused unless the manifest widens its inputs explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from synthset.errors import InputError


def resolve(value: str, relative_to: Path, file: str, where: str | None, field: str) -> Path:
    """`value` (relative to `relative_to`, `~` expanded) as an absolute path, links followed."""
    try:
        return (relative_to / Path(value).expanduser()).resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(file, f"not a usable path: {value!r} ({exc})", where, field) from None


def is_file(path: Path) -> bool:
    """Whether `path` is a regular file; an unusable name (too long, a NUL) is not one."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def confined(
    value: str,
    relative_to: Path,
    roots: Sequence[Path],
    file: str,
    where: str | None,
    field: str,
) -> Path:
    """The resolved path of `value`, which must lie inside one of `roots` (resolved folders)
    and be an existing file; the first root is the manifest's own folder."""
    path = resolve(value, relative_to, file, where, field)
    if not any(path.is_relative_to(root) for root in roots):
        widened = f" or {', '.join(map(str, roots[1:]))} (inputs_root)" if roots[1:] else ""
        raise InputError(
            file,
            f"{value!r} is outside the manifest's folder {roots[0]}{widened}; move it there "
            "or allow its folder with inputs_root",
            where,
            field,
        )
    if not is_file(path):
        raise InputError(file, f"no such file: {value}", where, field)
    return path
