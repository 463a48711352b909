"""Errors a user can fix: each carries one line that names where the mistake is."""

from __future__ import annotations


class SynthsetError(Exception):
    """Base class of every error that is the user's to fix; the CLI prints it and exits 2."""


class ManifestError(SynthsetError):
    """A manifest or an `items_from` file is invalid.

    The message has the form ``FILE: WHERE: field 'F': PROBLEM`` so that it can be read
    on one line and acted on without opening a traceback.
    """

    def __init__(self, file: str, message: str, where: str | None = None, field: str | None = None):
        self.file, self.where, self.field = file, where, field
        parts = [str(file)]
        if where:
            parts.append(where)
        if field:
            parts.append(f"field '{field}'")
        parts.append(message)
        super().__init__(": ".join(parts))


class DatasetNotFound(SynthsetError):
    """A dataset name, version or alias does not exist in the tracking store."""


class DigestMismatch(SynthsetError):
    """Downloaded files do not hash to the digest recorded for the version."""
