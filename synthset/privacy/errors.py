"""Errors of the privacy tools, for every modality: bad input (a table, a declaration, a
release config) and releases blocked by the audit gate."""

from __future__ import annotations

from synthset.errors import SynthsetError, one_line


class TableError(SynthsetError):
    """An input table, a column declaration or a release config is invalid.

    The message reads ``FILE: row R: column 'C': PROBLEM`` (parts that do not apply are
    left out), so that it can be acted on without a traceback.
    """

    def __init__(
        self,
        file: str,
        message: str,
        column: str | None = None,
        row: int | None = None,
    ):
        self.file, self.column, self.row = str(file), column, row
        parts = [str(file)]
        if row is not None:
            parts.append(f"row {row}")
        if column is not None:
            parts.append(f"column '{column}'")
        parts.append(message)
        super().__init__(one_line(": ".join(parts)))


class ReleaseBlocked(SynthsetError):
    """The audit failed the release gate: nothing was published.

    `reasons` holds one line per failed check; `report` is the folder of the private audit
    report (HTML and JSON) that says why.
    """

    def __init__(self, name: str, reasons: list[str], report: str | None = None):
        self.name, self.reasons, self.report = name, reasons, report
        where = f"; report: {report}" if report else ""
        super().__init__(
            f"{name}: release blocked by the audit gate, nothing published: "
            + "; ".join(reasons)
            + where
        )


def missing_extra(package: str) -> ImportError:
    """The ImportError raised when the `[privacy]` extra is not installed."""
    return ImportError(
        f"{package} is needed for private synthesis; "
        "install the extra: pip install 'synthset[privacy]'"
    )
