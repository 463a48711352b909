"""Private input tables: reading CSV/Parquet, column kinds (inferred or declared), identifier
and dropped columns, the train/holdout split, and one-line errors for inputs that cannot work.

Kinds: ``numeric`` (optionally whole numbers and a number of decimals), ``categorical``,
``boolean`` and ``datetime``. Missing values are kept: they are modelled, not filled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthset.errors import InputError
from synthset.inputs.paths import is_file
from synthset.inputs.rows import csv_header
from synthset.inputs.text import text_encoding
from synthset.privacy.errors import TableError
from synthset.privacy.tabular.timestamps import parse_bound, resolution_of, to_seconds

KINDS = ("numeric", "categorical", "boolean", "datetime")
MAX_DECIMALS = 6
MIN_HOLDOUT_ROWS = 20
MIN_TRAIN_ROWS = 50
_TRUE = {"true", "t", "yes", "y"}
_FALSE = {"false", "f", "no", "n"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?")


@dataclass
class ColumnSpec:
    """One modelled column: its kind, how output values are written back, and declarations.

    `categories`, `lower` and `upper` are the user's declarations (public knowledge); when
    absent they are taken from the data, or estimated with differential privacy under DP.
    `declared` says whether the kind came from the user rather than from inference.
    """

    name: str
    kind: str
    integer: bool = False
    decimals: int | None = None
    categories: list[Any] | None = None
    lower: float | None = None
    upper: float | None = None
    declared: bool = False
    dtype: str = "object"
    resolution: str | None = None
    """Datetime columns: the step every value falls on ("D", "s", "ms", "us"), kept on output."""


@dataclass
class TableSchema:
    """The columns that are modelled, plus the roles some of them play."""

    columns: list[ColumnSpec]
    source: str = "<frame>"
    target: str | None = None
    sensitive: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableSchema:
        data = dict(data)
        data["columns"] = [ColumnSpec(**c) for c in data["columns"]]
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_json_default) + "\n"


@dataclass
class Table:
    """A loaded private table in its modelled columns, and its schema."""

    frame: pd.DataFrame
    schema: TableSchema


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {value!r}")


def read_frame(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, with errors that name the file.

    A CSV must be UTF-8 (or UTF-16/32 with a byte-order mark) and name each column once:
    pandas would rename a repeated `age` to `age.1` and release it as a column of its own.
    """
    path = Path(path)
    if not is_file(path):
        raise TableError(str(path), "no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            return _read_csv(path)
        if suffix in (".parquet", ".pq"):
            return _read_parquet(path)
    except TableError:
        raise
    except InputError as exc:
        place = ": ".join(part for part in (exc.where, exc.problem) if part)
        raise TableError(str(path), place, column=exc.field) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TableError(str(path), f"cannot be read: {first}") from None
    except Exception as exc:
        raise TableError(str(path), f"cannot be read: {type(exc).__name__}: {exc}") from None
    raise TableError(str(path), f"unsupported format '{suffix}'; use .csv or .parquet")


def _read_csv(path: Path) -> pd.DataFrame:
    encoding = text_encoding(path)
    csv_header(path, encoding)
    return pd.read_csv(path, low_memory=False, encoding=encoding)


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for column in table.schema:
        if pa.types.is_nested(column.type):
            raise TableError(
                str(path),
                f"holds nested values ({column.type}); a table holds numbers, text, booleans "
                "and dates, one per cell",
                column=column.name,
            )
    return table.to_pandas()


def _show(value: Any) -> str:
    """A cell value as an error quotes it: its repr, cut short."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _decimals(values: np.ndarray) -> int | None:
    scale = np.maximum(1.0, np.abs(values))
    for d in range(MAX_DECIMALS + 1):
        if np.all(np.abs(values - np.round(values, d)) <= 1e-9 * scale):
            return d
    return None


def _first_bad_row(original: pd.Series, converted: pd.Series) -> tuple[int, Any]:
    bad = original.notna() & converted.isna()
    position = int(np.flatnonzero(bad.to_numpy())[0])
    return position + 1, original.iloc[position]


def _as_numeric(series: pd.Series, source: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64")
    if pd.api.types.is_datetime64_any_dtype(series):
        raise TableError(source, "holds dates; declare it as datetime", column=series.name)
    converted = pd.to_numeric(series, errors="coerce")
    if (series.notna() & converted.isna()).any():
        row, value = _first_bad_row(series, converted)
        raise TableError(
            source, f"value {_show(value)} is not a number (kind numeric)", series.name, row
        )
    converted = converted.astype("float64")
    _check_finite(converted, source)
    return converted


def _check_finite(series: pd.Series, source: str) -> None:
    """Refuse infinite values: no quantile map or bound can hold them, and a missing value is
    an empty cell, not `inf`."""
    infinite = np.isinf(series.to_numpy(dtype="float64", na_value=np.nan))
    if infinite.any():
        position = int(np.flatnonzero(infinite)[0])
        raise TableError(
            source,
            f"value {_show(series.iloc[position])} is not a finite number; numeric columns "
            "hold finite numbers (leave a cell empty for a missing value)",
            series.name,
            position + 1,
        )


def _as_datetime(series: pd.Series, source: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        return series
    try:
        converted = pd.to_datetime(series, errors="coerce", format="mixed")
    except ValueError:
        converted = pd.to_datetime(series, errors="coerce", format="mixed", utc=True)
    if (series.notna() & converted.isna()).any():
        row, value = _first_bad_row(series, converted)
        raise TableError(
            source,
            f"value {_show(value)} is not a date or time (kind datetime; use ISO 8601)",
            series.name,
            row,
        )
    return converted


def _as_boolean(series: pd.Series, source: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return series.astype("boolean")

    def parse(value: Any) -> Any:
        if pd.isna(value):
            return pd.NA
        if isinstance(value, bool | np.bool_):
            return bool(value)
        if isinstance(value, int | float | np.number) and value in (0, 1):
            return bool(value)
        text = str(value).strip().lower()
        if text in _TRUE or text == "1":
            return True
        if text in _FALSE or text == "0":
            return False
        return None

    parsed = series.map(parse)
    bad = parsed.isna() & ~series.isna() & parsed.map(lambda v: v is None)
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise TableError(
            source,
            f"value {_show(series.iloc[position])} is not a boolean "
            "(kind boolean allows true/false, yes/no, 1/0)",
            series.name,
            position + 1,
        )
    return parsed.astype("boolean")


def _looks_boolean(series: pd.Series) -> bool:
    values = {str(v).strip().lower() for v in series.dropna().unique()}
    return bool(values) and (values <= {"true", "false"} or values <= {"yes", "no"})


def _looks_datetime(series: pd.Series) -> bool:
    sample = series.dropna().astype(str).head(200)
    return len(sample) > 0 and bool(sample.map(lambda s: bool(_DATE.match(s))).all())


def _infer(series: pd.Series, max_categories: int) -> str:
    values = series.dropna()
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_numeric_dtype(series):
        distinct = values.nunique()
        whole = bool(np.all(np.mod(values.to_numpy(dtype="float64"), 1) == 0))
        if distinct <= 2 or (whole and distinct <= max_categories):
            return "categorical"
        return "numeric"
    if _looks_boolean(series):
        return "boolean"
    if _looks_datetime(series):
        return "datetime"
    return "categorical"


def _check_names(source: str, frame: pd.DataFrame, names: Iterable[str], what: str) -> None:
    for name in names:
        if name not in frame.columns:
            known = ", ".join(map(str, frame.columns[:30]))
            raise TableError(source, f"{what} is not in the table; columns: {known}", name)


def _spec(
    series: pd.Series,
    kind: str,
    declared: bool,
    source: str,
    bounds: tuple[float, float] | None,
    categories: Sequence[Any] | None,
    decimals: int | None,
) -> tuple[ColumnSpec, pd.Series]:
    name = str(series.name)
    spec = ColumnSpec(name=name, kind=kind, declared=declared, dtype=str(series.dtype))
    if kind == "numeric":
        values = _as_numeric(series, source)
        observed = values.dropna().to_numpy()
        spec.integer = bool(np.all(np.mod(observed, 1) == 0))
        spec.decimals = 0 if spec.integer else (decimals if decimals is not None else None)
        if decimals is None and not spec.integer:
            spec.decimals = _decimals(observed)
        series = values
    elif kind == "datetime":
        series = _as_datetime(series, source)
        spec.dtype = str(series.dtype)
        spec.resolution = resolution_of(to_seconds(series))
    elif kind == "boolean":
        series = _as_boolean(series, source)
        spec.dtype = "boolean"
    elif isinstance(series.dtype, pd.CategoricalDtype):
        if categories is None:
            categories = list(series.cat.categories)
        series = series.astype(object).where(series.notna(), None)
        spec.dtype = "object"
    if bounds is not None:
        if kind not in ("numeric", "datetime"):
            raise TableError(
                source, f"bounds are for numeric or datetime columns, not {kind}", name
            )
        lower, upper = (parse_bound(b) if kind == "datetime" else float(b) for b in bounds)
        if not lower < upper:
            raise TableError(source, f"bounds {bounds!r}: the lower must be below the upper", name)
        spec.lower, spec.upper = lower, upper
    if categories is not None:
        if kind != "categorical":
            raise TableError(source, f"categories are for categorical columns, not {kind}", name)
        if len(set(categories)) < 2:
            raise TableError(source, "declared categories need at least two values", name)
        spec.categories = list(categories)
    return spec, series


def prepare_table(
    frame: pd.DataFrame,
    source: str = "<frame>",
    *,
    types: Mapping[str, str] | None = None,
    identifiers: Sequence[str] = (),
    drop: Sequence[str] = (),
    target: str | None = None,
    sensitive: Sequence[str] = (),
    bounds: Mapping[str, tuple[Any, Any]] | None = None,
    categories: Mapping[str, Sequence[Any]] | None = None,
    decimals: Mapping[str, int] | None = None,
    max_categories: int = 10,
) -> Table:
    """Check a frame and describe its columns; identifiers and `drop` columns are removed.

    `types` overrides inferred kinds; `bounds` and `categories` are public declarations
    used instead of the data's own ranges and category sets (required for a DP guarantee
    that covers them without spending budget). Raises `TableError` for an empty table, a
    column of a single value, an unknown kind, values a declared kind cannot hold, or a
    text column with so many distinct values that it must be an identifier.
    """
    types, bounds = dict(types or {}), dict(bounds or {})
    categories, decimals = dict(categories or {}), dict(decimals or {})
    if frame.columns.duplicated().any():
        dup = str(frame.columns[frame.columns.duplicated()][0])
        raise TableError(source, "appears twice in the header", dup)
    frame = frame.rename(columns=str)
    if len(frame) == 0 or len(frame.columns) == 0:
        raise TableError(source, "the table is empty: it has no rows or no columns")
    _check_names(source, frame, identifiers, "identifier column")
    _check_names(source, frame, drop, "column to drop")
    for name, kind in types.items():
        _check_names(source, frame, [name], "column with a declared type")
        if kind not in KINDS:
            raise TableError(
                source, f"unknown type '{kind}'; allowed: {', '.join(KINDS)}", column=name
            )
    for what, given in (("bounds", bounds), ("categories", categories), ("decimals", decimals)):
        _check_names(source, frame, given, f"column with declared {what}")
    kept = frame.drop(columns=[*identifiers, *drop])
    if len(kept.columns) == 0:
        raise TableError(source, "no columns are left once identifiers and drops are removed")
    for name in [*([target] if target else []), *sensitive]:
        if name in identifiers or name in drop:
            raise TableError(
                source, "is declared an identifier or dropped; it cannot be used", name
            )
        _check_names(source, kept, [name], "target or sensitive column")
    specs, columns = [], {}
    for name in kept.columns:
        series = kept[name]
        if pd.api.types.is_float_dtype(series):
            _check_finite(series, source)
        if series.nunique(dropna=False) <= 1:
            raise TableError(
                source,
                f"holds a single value ({_show(series.iloc[0])}) in all {len(series)} rows, "
                "so there is nothing to synthesize; drop it (--drop)",
                name,
            )
        kind = types.get(name) or _infer(series, max_categories)
        if kind == "categorical" and name not in types and name not in categories:
            distinct = series.nunique()
            text = series.dtype == object or pd.api.types.is_string_dtype(series)
            if text and distinct > max(50, len(series) // 2):
                raise TableError(
                    source,
                    f"has {distinct} distinct text values in {len(series)} rows: it looks "
                    "like an identifier or free text; declare it with --id (dropped) or "
                    "give it a type",
                    name,
                )
        spec, columns[name] = _spec(
            series,
            kind,
            name in types,
            source,
            bounds.get(name),
            categories.get(name),
            decimals.get(name),
        )
        specs.append(spec)
    schema = TableSchema(
        columns=specs,
        source=source,
        target=target,
        sensitive=list(sensitive),
        identifiers=list(identifiers),
        dropped=list(drop),
    )
    return Table(pd.DataFrame(columns, index=kept.index).reset_index(drop=True), schema)


def load_table(path: str | Path, **options: Any) -> Table:
    """Read a CSV or Parquet file and prepare it (see `prepare_table` for the options)."""
    return prepare_table(read_frame(path), str(path), **options)


def split_holdout(
    table: Table, fraction: float, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into training and holdout sets (the holdout is never shown to the model).

    The holdout is what the audit compares against: DCR, membership inference and TSTR
    need real rows the synthesizer has not seen.
    """
    source = table.schema.source
    if not 0 < fraction < 1:
        raise TableError(source, f"holdout fraction {fraction} must be between 0 and 1")
    n = len(table.frame)
    n_holdout = int(round(n * fraction))
    if n_holdout < MIN_HOLDOUT_ROWS or n - n_holdout < MIN_TRAIN_ROWS:
        raise TableError(
            source,
            f"{n} rows are too few for the holdout: a fraction of {fraction} leaves "
            f"{n_holdout} holdout and {n - n_holdout} training rows, and the audit needs at "
            f"least {MIN_HOLDOUT_ROWS} and {MIN_TRAIN_ROWS}; give more rows or change --holdout",
        )
    order = np.random.default_rng(seed).permutation(n)
    frame = table.frame
    holdout = frame.iloc[np.sort(order[:n_holdout])].reset_index(drop=True)
    train = frame.iloc[np.sort(order[n_holdout:])].reset_index(drop=True)
    return train, holdout
