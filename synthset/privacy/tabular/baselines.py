"""Two classical synthesizers to compare against, with the same `fit`/`sample(n, seed)` shape.

- `GaussianCopula`: every column is mapped to a standard normal score (numbers by their
  empirical CDF; categories by the interval of their cumulative share, SDV-style), the scores'
  correlation matrix is estimated, and samples are mapped back through the same marginals.
  Missing numbers are drawn independently at the column's missing rate.
- `SmoteInterpolation`: SMOTE-style — each synthetic row lies on the segment between a random
  real row and one of its `k` nearest real rows (numbers interpolated, each category taken
  from the first row with probability 1 − λ). Close to real rows by construction: a leaky
  baseline that the audit should flag.

Neither is differentially private.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from synthset.privacy.tabular.encoder import as_float
from synthset.privacy.tabular.neighbors import DistanceSpace, NeighbourIndex
from synthset.privacy.tabular.schema import TableSchema
from synthset.privacy.tabular.timestamps import from_seconds

_EPS = 1e-6


def _restore(spec, values: np.ndarray) -> pd.Series:
    if spec.kind == "datetime":
        return from_seconds(values, spec.dtype, spec.resolution)
    if spec.integer:
        series = pd.Series(np.round(values))
        return series.astype("Int64" if series.isna().any() else "int64")
    if spec.decimals is not None:
        values = np.round(values, spec.decimals)
    return pd.Series(values, dtype="float64")


class GaussianCopula:
    """A Gaussian copula over empirical marginals."""

    def fit(self, frame: pd.DataFrame, schema: TableSchema) -> GaussianCopula:
        self.schema, self.marginals = schema, {}
        scores = []
        rng = np.random.default_rng(0)
        for spec in schema.columns:
            series = frame[spec.name]
            if spec.kind in ("numeric", "datetime"):
                values = as_float(series, spec)
                observed = np.sort(values[~np.isnan(values)])
                self.marginals[spec.name] = ("numeric", observed, float(np.isnan(values).mean()))
                ranks = np.searchsorted(observed, values, side="right") / (len(observed) + 1)
                u = np.where(np.isnan(values), 0.5, ranks)
            else:
                tokens = series.astype(object).where(series.notna(), None)
                shares = tokens.value_counts(dropna=False, normalize=True)
                values = list(shares.index)
                upper = np.cumsum(shares.to_numpy())
                lower = upper - shares.to_numpy()
                self.marginals[spec.name] = ("categorical", values, upper)
                where = {v: i for i, v in enumerate(values)}
                index = np.array([where[v] for v in tokens])
                u = lower[index] + rng.uniform(0, 1, len(index)) * shares.to_numpy()[index]
            scores.append(ndtri(np.clip(u, _EPS, 1 - _EPS)))
        matrix = np.corrcoef(np.stack(scores)) if len(scores) > 1 else np.ones((1, 1))
        self.correlation = np.nan_to_num(matrix) + 1e-6 * np.eye(len(scores))
        return self

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        z = rng.multivariate_normal(np.zeros(len(self.correlation)), self.correlation, n)
        u = ndtr(z)
        out = {}
        for j, spec in enumerate(self.schema.columns):
            kind, values, extra = self.marginals[spec.name]
            if kind == "numeric":
                drawn = np.quantile(values, u[:, j])
                drawn[rng.uniform(size=n) < extra] = np.nan
                out[spec.name] = _restore(spec, drawn)
            else:
                index = np.minimum(np.searchsorted(extra, u[:, j]), len(values) - 1)
                out[spec.name] = pd.Series([values[i] for i in index], dtype=object)
        return _typed(pd.DataFrame(out), self.schema)


class SmoteInterpolation:
    """SMOTE-style interpolation between real rows and their nearest real neighbours."""

    def __init__(self, k: int = 5):
        self.k = k

    def fit(self, frame: pd.DataFrame, schema: TableSchema) -> SmoteInterpolation:
        self.schema, self.frame = schema, frame.reset_index(drop=True)
        space = DistanceSpace.fit(self.frame, schema)
        k = min(self.k + 1, len(self.frame))
        _, self.neighbours = NeighbourIndex(space, self.frame, len(self.frame)).search(
            self.frame, k
        )
        return self

    def sample(self, n: int, seed: int = 0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        base = rng.integers(0, len(self.frame), n)
        pick = self.neighbours[base, rng.integers(1, self.neighbours.shape[1], n)]
        pick = np.where(pick < 0, base, pick)
        lam = rng.uniform(0, 1, n)
        out = {}
        for spec in self.schema.columns:
            column = self.frame[spec.name]
            if spec.kind in ("numeric", "datetime"):
                values = as_float(column, spec)
                a, b = values[base], values[pick]
                mixed = np.where(np.isnan(b), a, a + lam * (b - a))
                out[spec.name] = _restore(spec, mixed)
            else:
                take_b = rng.uniform(size=n) < lam
                values = column.astype(object).to_numpy()
                out[spec.name] = pd.Series(
                    np.where(take_b, values[pick], values[base]), dtype=object
                )
        return _typed(pd.DataFrame(out), self.schema)


def _typed(frame: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    for spec in schema.columns:
        if spec.kind == "boolean":
            frame[spec.name] = frame[spec.name].astype("boolean")
        elif spec.kind == "categorical" and spec.dtype != "object":
            with contextlib.suppress(TypeError, ValueError):
                frame[spec.name] = frame[spec.name].astype(spec.dtype)
    return frame
