"""Rows of CSV, JSONL and Parquet files as dicts, each with a label of where it is.

A file is refused, with one line, when it is empty, cannot be decoded, has a header naming
a column twice or not at all, or a row whose cells do not match the header: pandas would
rename a repeated column `x.1` and pad or cut rows, and the mistake would travel on.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from synthset.errors import InputError
from synthset.inputs.structured import MAX_DEPTH, depth_exceeded, load_json
from synthset.inputs.text import read_text

SUFFIXES = (".csv", ".jsonl", ".parquet")
Row = tuple[str, dict[str, Any]]


def check_names(names: Sequence[str], file: str, where: str | None = "line 1") -> None:
    """Refuse a header with an unnamed or repeated column."""
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        if not str(name).strip():
            raise InputError(file, f"column {position} has no name", where=where)
        if name in seen:
            raise InputError(file, f"column {name!r} appears more than once", where=where)
        seen.add(name)


def csv_header(path: Path, encoding: str = "utf-8-sig", file: str | None = None) -> list[str]:
    """The checked header of a CSV file, reading its first record only (tables may be large)."""
    file = file or str(path)
    with path.open(newline="", encoding=encoding) as stream:
        try:
            header = next(csv.reader(stream), None)
        except csv.Error as exc:
            raise InputError(file, f"not valid CSV: {exc}", where="line 1") from None
    if header is None:
        raise InputError(file, f"the file is empty; {_NO_HEADER}")
    if not header:
        raise InputError(file, _NO_HEADER, where="line 1")
    check_names(header, file)
    return header


_NO_HEADER = "the first line must name the columns"


def rows(path: Path, file: str | None = None) -> Iterator[Row]:
    """The rows of a `.csv`, `.jsonl` or `.parquet` file, lazily, in order."""
    file = file or str(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _jsonl_rows(path, file)
    if suffix == ".parquet":
        return _parquet_rows(path, file)
    return _csv_rows(path, file)


def columns(path: Path, file: str | None = None) -> list[str]:
    """The column names of a CSV or Parquet file (a JSONL file has none: rows vary)."""
    file = file or str(path)
    if path.suffix.lower() == ".parquet":
        return list(_parquet_file(path, file).schema_arrow.names)
    if path.suffix.lower() == ".csv":
        return _csv_reader(read_text(path, file), file)[1]
    return []


def _csv_reader(text: str, file: str) -> tuple[Any, list[str]]:
    if not text.strip():
        raise InputError(file, f"the file is empty; {_NO_HEADER}")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise InputError(file, f"not valid CSV: {exc}", where="line 1") from None
    check_names(header, file)
    return reader, header


def _csv_rows(path: Path, file: str) -> Iterator[Row]:
    reader, header = _csv_reader(read_text(path, file), file)
    n = 0
    while True:
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            raise InputError(file, f"not valid CSV: {exc}", f"line {reader.line_num}") from None
        if cells is None:
            return
        if not cells:
            continue
        n += 1
        where = f"row {n} (line {reader.line_num})"
        if len(cells) != len(header):
            raise InputError(
                file, f"{len(cells)} cells where the header names {len(header)} columns", where
            )
        yield where, dict(zip(header, cells, strict=True))


def _jsonl_rows(path: Path, file: str) -> Iterator[Row]:
    for lineno, line in enumerate(read_text(path, file).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"line {lineno}"
        row = load_json(line, file, where)
        if not isinstance(row, dict):
            raise InputError(file, "each line must be a JSON object", where)
        yield where, row


def _parquet_file(path: Path, file: str) -> Any:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        raise InputError(file, f"not a readable Parquet file ({_first_line(exc)})") from None
    check_names(parquet.schema_arrow.names, file, where=None)
    return parquet


def _parquet_rows(path: Path, file: str) -> Iterator[Row]:
    parquet = _parquet_file(path, file)
    n = 0
    batches = parquet.iter_batches(batch_size=1024)
    while True:
        try:
            batch = next(batches, None)
            values = batch.to_pylist() if batch is not None else None
        except Exception as exc:
            where = f"after row {n}"
            raise InputError(
                file, f"not a readable Parquet file ({_first_line(exc)})", where
            ) from None
        if values is None:
            return
        for row in values:
            n += 1
            if depth_exceeded(row):
                raise InputError(file, f"nested more than {MAX_DEPTH} levels deep", f"row {n}")
            yield f"row {n}", row


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__
