"""Errors a user can fix: each carries one line that names where the mistake is."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class SynthsetError(Exception):
    """Base class of every error that is the user's to fix; the CLI prints it and exits 2."""


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters escaped (`\\n`, `\\x00`).

    File names, column names and YAML keys come from users; printed raw, a newline in one
    would split an error into several lines that a log reader or a script takes apart.
    """
    return _BREAKS.sub(lambda m: repr(m.group())[1:-1], text)


_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class InputError(SynthsetError):
    """A file the user gave (a manifest, an items file, a table, a config) cannot be read.

    The message has the form ``FILE: WHERE: field 'F': PROBLEM`` so that it can be read
    on one line and acted on without opening a traceback.
    """

    def __init__(self, file: str, message: str, where: str | None = None, field: str | None = None):
        self.file, self.where, self.field, self.problem = str(file), where, field, message
        parts = [str(file)]
        if where:
            parts.append(where)
        if field:
            parts.append(f"field '{field}'")
        parts.append(message)
        super().__init__(one_line(": ".join(parts)))


class ManifestError(InputError):
    """A manifest or an `items_from` file is invalid."""


class DatasetNotFound(SynthsetError):
    """A dataset name, version or alias does not exist in the tracking store."""


class DigestMismatch(SynthsetError):
    """Downloaded files do not hash to the digest recorded for the version."""


def format_loc(loc: Sequence[str | int]) -> str:
    """`("items", 2, "prompt")` → `items[2].prompt`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def fields_at(root: Any) -> Callable[[tuple[Any, ...]], list[str]]:
    """For `describe_validation`: the fields of the pydantic model nested in `root` at a
    location (so an unknown key lists what is allowed there); none below a non-model."""
    from pydantic import BaseModel

    def allowed(loc: tuple[Any, ...]) -> list[str]:
        model: Any = root
        for part in loc:
            field = model.model_fields.get(part) if isinstance(part, str) else None
            model = field.annotation if field is not None else None
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                return []
        return list(model.model_fields)

    return allowed


def describe_validation(
    exc: ValidationError, allowed: Callable[[tuple[Any, ...]], Sequence[str]] | None = None
) -> tuple[list[str | int], str]:
    """The first problem of a pydantic error as (location, one-line message): the one formatter
    behind every config error. `allowed(loc)` names the fields of the model at `loc`, so an
    unknown field lists what is allowed."""
    errors = exc.errors()
    error = errors[0]
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        names = list(allowed(tuple(error["loc"][:-1]))) if allowed else []
        message = f"unknown field; allowed: {', '.join(names)}" if names else "unknown field"
    else:
        message = message.removeprefix("Value error, ")
        if error["type"] != "missing" and not isinstance(error.get("input"), dict | list):
            message += f" (got {repr(error.get('input'))[:60]})"
    if len(errors) > 1:
        more = len(errors) - 1
        message += f" (and {more} more problem{'s' * (more > 1)})"
    return list(error["loc"]), message
