"""The model's view of a table: numeric columns through a quantile map to standard normal
scores, categorical and boolean columns as category indices, missing values kept.

A numeric (or datetime) column becomes one normal score; when it can be missing it also gets a
two-category indicator, and a missing cell's score is 0. A categorical column's missing value
is one more category. The statistics behind the maps (quantile knots, bounds, category sets)
come from `ColumnStats`: exact ones from the data, or differentially private ones from
`synthset.privacy.tabular.dp_stats`. Decoding rounds whole-number columns, applies decimals,
clips to the bounds and restores each column's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from synthset.privacy.tabular.schema import ColumnSpec, TableSchema
from synthset.privacy.tabular.timestamps import from_seconds, to_seconds

CDF_EPS = 1e-7
MAX_KNOTS = 1000


@dataclass
class ColumnStats:
    """What the encoder knows of one column.

    Numeric: `knots` (non-decreasing values) at CDF `levels`, `lower`/`upper`, whether it
    can be missing and its `missing_share`. Categorical: `categories` (None stands for
    missing) and their `shares` (the target's class shares; every column's category prior).
    """

    knots: np.ndarray | None = None
    levels: np.ndarray | None = None
    lower: float | None = None
    upper: float | None = None
    nullable: bool = False
    categories: list[Any] | None = None
    shares: np.ndarray | None = None
    missing_share: float | None = None
    class_levels: np.ndarray | None = None
    """Per target class CDF levels at the same knots (DP per-class maps), shape (classes, knots)."""


def knot_count(rows: int) -> int:
    """Quantile knots of an exact map: TabDDPM's max(min(n // 30, 1000), 10).

    Far fewer knots than rows, so decoded values do not snap onto individual training values
    (one knot per row would copy each column's training values into the synthetic table).
    """
    return int(max(min(rows // 30, MAX_KNOTS), 10))


def as_float(series: pd.Series, spec: ColumnSpec) -> np.ndarray:
    """Numeric or datetime values as float64 (datetimes in seconds since the epoch)."""
    if spec.kind == "datetime":
        return to_seconds(series)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64")


def _interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Interpolation that averages both directions where `xp` repeats (as scikit-learn's
    QuantileTransformer does), so that a tied knot maps to the middle of its levels."""
    forward = np.interp(x, xp, fp)
    backward = -np.interp(-x, -xp[::-1], -fp[::-1])
    return 0.5 * (forward + backward)


def to_normal(x: np.ndarray, stats: ColumnStats, levels: np.ndarray | None = None) -> np.ndarray:
    levels = stats.levels if levels is None else levels
    u = _interp(np.clip(x, stats.knots[0], stats.knots[-1]), stats.knots, levels)
    return ndtri(np.clip(u, CDF_EPS, 1 - CDF_EPS))


def from_normal(z: np.ndarray, stats: ColumnStats, levels: np.ndarray | None = None) -> np.ndarray:
    levels = stats.levels if levels is None else levels
    return np.interp(ndtr(z), levels, stats.knots)


def _categories(series: pd.Series, spec: ColumnSpec) -> list[Any]:
    if spec.kind == "boolean":
        found = [False, True]
    elif spec.categories is not None:
        found = list(spec.categories)
    else:
        found = sorted(series.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    if series.isna().any():
        found.append(None)
    return [_plain(v) for v in found]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def exact_stats(frame: pd.DataFrame, schema: TableSchema) -> dict[str, ColumnStats]:
    """Statistics read straight from the data (no privacy): quantiles, ranges, categories."""
    out: dict[str, ColumnStats] = {}
    for spec in schema.columns:
        series = frame[spec.name]
        if spec.kind in ("numeric", "datetime"):
            values = as_float(series, spec)
            observed = values[~np.isnan(values)]
            lower = spec.lower if spec.lower is not None else float(observed.min())
            upper = spec.upper if spec.upper is not None else float(observed.max())
            observed = np.clip(observed, lower, upper)
            levels = np.linspace(0, 1, knot_count(len(observed)))
            knots = np.quantile(observed, levels)
            out[spec.name] = ColumnStats(
                knots=knots,
                levels=levels,
                lower=lower,
                upper=upper,
                nullable=bool(np.isnan(values).any()),
                missing_share=float(np.isnan(values).mean()),
            )
        else:
            categories = _categories(series, spec)
            index = category_index(series, categories)
            shares = np.bincount(index, minlength=len(categories)) / len(index)
            out[spec.name] = ColumnStats(categories=categories, shares=shares)
    return out


def category_index(series: pd.Series, categories: list[Any]) -> np.ndarray:
    """Index of each value in `categories` (None there stands for missing).

    Values outside the set go to its first non-missing category, the most common one for a
    DP category set, as out-of-range numbers are clipped to the bounds; missing values go to
    the missing category, or to that same first category when the set has none.
    """
    lookup = {category_key(c): i for i, c in enumerate(categories)}
    fallback = next(i for i, c in enumerate(categories) if c is not None)
    missing = lookup.get(category_key(None), fallback)
    keys = series.map(lambda v: category_key(None) if _isna(v) else category_key(v))
    index = keys.map(lambda k: lookup.get(k, missing if k == category_key(None) else fallback))
    return np.array(index.to_numpy(dtype="int64"))


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def category_key(value: Any) -> Any:
    """A hashable key that tells categories apart by kind and value (1 and "1" differ)."""
    if value is None:
        return ("<missing>",)
    if isinstance(value, bool | np.bool_):
        return ("bool", bool(value))
    if isinstance(value, int | float | np.number):
        return ("num", float(value))
    return ("str", str(value))


@dataclass
class TableEncoder:
    """Encodes rows into model tensors and decodes samples back into a typed table."""

    schema: TableSchema
    stats: dict[str, ColumnStats]
    numeric: list[str] = field(init=False)
    categorical: list[str] = field(init=False)
    indicators: list[str] = field(init=False)

    def __post_init__(self) -> None:
        target = self.schema.target
        self.numeric = [
            c.name
            for c in self.schema.columns
            if c.kind in ("numeric", "datetime") and c.name != target
        ]
        self.categorical = [
            c.name
            for c in self.schema.columns
            if c.kind in ("categorical", "boolean") and c.name != target
        ]
        self.indicators = [n for n in self.numeric if self.stats[n].nullable]

    @property
    def target_kind(self) -> str | None:
        """'classes' or 'numeric' for a conditioning target, None without one."""
        if self.schema.target is None:
            return None
        kind = self.schema.column(self.schema.target).kind
        return "numeric" if kind in ("numeric", "datetime") else "classes"

    @property
    def n_classes(self) -> int:
        if self.target_kind != "classes":
            return 0
        return len(self.stats[self.schema.target].categories)

    @property
    def category_sizes(self) -> list[int]:
        """Number of categories of each categorical feature (indicators last)."""
        return [len(self.stats[n].categories) for n in self.categorical] + [2] * len(
            self.indicators
        )

    def category_priors(self) -> list[np.ndarray]:
        """Shares of each categorical feature's categories (indicators last), in the order of
        `category_sizes`: the prior of the categorical diffusion (uniform where unknown)."""
        priors = []
        for name in self.categorical:
            stats = self.stats[name]
            k = len(stats.categories)
            priors.append(stats.shares if stats.shares is not None else np.full(k, 1 / k))
        for name in self.indicators:
            share = self.stats[name].missing_share
            share = 0.5 if share is None else share
            priors.append(np.array([1 - share, share]))
        return [np.asarray(p, dtype=np.float64) for p in priors]

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """`x_num` (float32 normal scores), `x_cat` (int64 indices) and `y` when conditioned."""
        n = len(frame)
        x_num = np.zeros((n, len(self.numeric)), dtype=np.float32)
        classes = None
        if self.target_kind == "classes":
            target = self.schema.target
            classes = category_index(frame[target], self.stats[target].categories)
        for j, name in enumerate(self.numeric):
            spec, stats = self.schema.column(name), self.stats[name]
            values = as_float(frame[name], spec)
            for rows, levels in self._groups(stats, classes, len(frame)):
                ok = rows & ~np.isnan(values)
                x_num[ok, j] = to_normal(values[ok], stats, levels)
        cats = [category_index(frame[n], self.stats[n].categories) for n in self.categorical]
        cats += [
            np.isnan(as_float(frame[n], self.schema.column(n))).astype("int64")
            for n in self.indicators
        ]
        x_cat = np.stack(cats, axis=1) if cats else np.zeros((n, 0), dtype=np.int64)
        out = {"x_num": x_num, "x_cat": x_cat}
        target = self.schema.target
        if self.target_kind == "classes":
            out["y"] = category_index(frame[target], self.stats[target].categories)
        elif self.target_kind == "numeric":
            values = as_float(frame[target], self.schema.column(target))
            y = np.zeros(n, dtype=np.float32)
            ok = ~np.isnan(values)
            y[ok] = to_normal(values[ok], self.stats[target])
            out["y"] = y
        return out

    @staticmethod
    def _groups(
        stats: ColumnStats, classes: np.ndarray | None, n: int
    ) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """(row mask, CDF levels) pairs: one per class with per-class maps, else one."""
        if stats.class_levels is None or classes is None:
            return [(np.ones(n, dtype=bool), None)]
        return [(classes == c, levels) for c, levels in enumerate(stats.class_levels)]

    def _numeric_column(
        self,
        spec: ColumnSpec,
        z: np.ndarray,
        missing: np.ndarray,
        classes: np.ndarray | None = None,
    ) -> pd.Series:
        stats = self.stats[spec.name]
        values = np.zeros(len(z))
        for rows, levels in self._groups(stats, classes, len(z)):
            values[rows] = from_normal(z[rows].astype("float64"), stats, levels)
        values = np.clip(values, stats.lower, stats.upper)
        if spec.integer:
            values = np.round(values)
        elif spec.decimals is not None:
            values = np.round(values, spec.decimals)
        values[missing] = np.nan
        if spec.kind == "datetime":
            return from_seconds(values, spec.dtype, spec.resolution)
        if spec.integer:
            series = pd.Series(values)
            return series.astype("Int64" if missing.any() else "int64")
        return pd.Series(values, dtype="float64")

    def _category_column(self, spec: ColumnSpec, index: np.ndarray) -> pd.Series:
        categories = self.stats[spec.name].categories
        values = [categories[i] for i in index]
        if spec.kind == "boolean":
            series = pd.Series(values, dtype="boolean")
            return series.astype(bool) if not series.isna().any() else series
        series = pd.Series(values, dtype=object)
        numeric = [c for c in categories if c is not None]
        if numeric and all(isinstance(c, int | float) and not isinstance(c, bool) for c in numeric):
            as_float = pd.to_numeric(series)
            whole = all(float(c).is_integer() for c in numeric)
            if whole and "int" in spec.dtype.lower():
                return as_float.astype("Int64" if series.isna().any() else "int64")
            return as_float.astype("float64")
        try:
            return series.astype(spec.dtype) if spec.dtype != "object" else series
        except (TypeError, ValueError):
            return series

    def decode(
        self, x_num: np.ndarray, x_cat: np.ndarray, y: np.ndarray | None = None
    ) -> pd.DataFrame:
        """Samples in model space → a table with the schema's columns, order and dtypes."""
        columns: dict[str, pd.Series] = {}
        n_cat = len(self.categorical)
        for j, name in enumerate(self.numeric):
            missing = np.zeros(len(x_num), dtype=bool)
            if name in self.indicators:
                missing = x_cat[:, n_cat + self.indicators.index(name)] == 1
            classes = y.astype(int) if self.target_kind == "classes" else None
            columns[name] = self._numeric_column(
                self.schema.column(name), x_num[:, j], missing, classes
            )
        for j, name in enumerate(self.categorical):
            columns[name] = self._category_column(self.schema.column(name), x_cat[:, j])
        target = self.schema.target
        if self.target_kind == "classes":
            columns[target] = self._category_column(self.schema.column(target), y.astype(int))
        elif self.target_kind == "numeric":
            columns[target] = self._numeric_column(
                self.schema.column(target), y, np.zeros(len(y), dtype=bool)
            )
        return pd.DataFrame(
            {name: columns[name].reset_index(drop=True) for name in self.schema.names}
        )

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (for safetensors) and JSON-ready metadata that rebuild this encoder."""
        arrays, meta = {}, {}
        for name, stats in self.stats.items():
            entry: dict[str, Any] = {"nullable": stats.nullable}
            if stats.missing_share is not None:
                entry["missing_share"] = stats.missing_share
            if stats.knots is not None:
                arrays[f"encoder.{name}.knots"] = stats.knots.astype("float64")
                arrays[f"encoder.{name}.levels"] = stats.levels.astype("float64")
                entry |= {"lower": stats.lower, "upper": stats.upper, "numeric": True}
            else:
                entry["categories"] = stats.categories
            if stats.shares is not None:
                arrays[f"encoder.{name}.shares"] = stats.shares.astype("float64")
            if stats.class_levels is not None:
                arrays[f"encoder.{name}.class_levels"] = stats.class_levels.astype("float64")
            meta[name] = entry
        return arrays, {"schema": self.schema.to_dict(), "stats": meta}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> TableEncoder:
        stats = {}
        for name, entry in meta["stats"].items():
            s = ColumnStats(nullable=entry["nullable"], missing_share=entry.get("missing_share"))
            if entry.get("numeric"):
                s.knots = np.asarray(arrays[f"encoder.{name}.knots"])
                s.levels = np.asarray(arrays[f"encoder.{name}.levels"])
                s.lower, s.upper = entry["lower"], entry["upper"]
            else:
                s.categories = entry["categories"]
            if f"encoder.{name}.shares" in arrays:
                s.shares = np.asarray(arrays[f"encoder.{name}.shares"])
            if f"encoder.{name}.class_levels" in arrays:
                s.class_levels = np.asarray(arrays[f"encoder.{name}.class_levels"])
            stats[name] = s
        return cls(TableSchema.from_dict(meta["schema"]), stats)
