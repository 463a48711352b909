"""The leakage and utility audit of a synthetic table against the real training and holdout
rows it must be compared with.

Privacy (all distances are SDMetrics' DCR distance, see `synthset.privacy.tabular.neighbors`):

- `dcr_share`: share of synthetic rows strictly closer to the training rows than to the
  holdout rows, SDMetrics' DCROverfittingProtection "closer_to_training"; its score is
  `dcr_overfitting_protection` = min(2·(1 − share), 1). SDMetrics passes the whole training
  set, which makes 0.5 the ideal only when training and holdout have the same size; here
  the training side is a random subset of the holdout's size, so 0.5 is always the ideal.
- `dcr_baseline_protection`: SDMetrics' DCRBaselineProtection, min(median DCR of synthetic
  rows to the training rows / median DCR of as many uniformly random rows, 1) (random rows:
  numbers uniform in each column's real range, categories uniform over those seen).
- `exact_matches` / `exact_match_rate`: synthetic rows equal in every column to a training
  row (by value, missing equal to missing), next to `holdout_exact_match_rate`, the same for
  holdout rows, i.e. how often real people share a row by nature.
- `nndr_median`: median ratio of the nearest to the second-nearest training row's distance
  of synthetic rows (low: a row sits on one particular person), next to the holdout's.
- `mia_auc` and attribute-inference risks (see `synthset.privacy.tabular.attacks`).

Utility: `column_shape_mean` and `column_shape_min` (KS/TV complements), `pair_trends`,
`correlation_difference`, `category_share_error`, `missing_rate_error`,
`vanished_categories`, and TSTR vs TRTR with `tstr_skill` when a target is given (see
`synthset.privacy.tabular.utility`); `details` says where the worst values were found.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from synthset.privacy.tabular.attacks import attribute_inference, balanced_members, membership_auc
from synthset.privacy.tabular.encoder import as_float
from synthset.privacy.tabular.neighbors import DistanceSpace, NeighbourIndex
from synthset.privacy.tabular.schema import TableSchema
from synthset.privacy.tabular.timestamps import from_seconds
from synthset.privacy.tabular.utility import (
    column_shapes,
    correlation_difference,
    marginal_errors,
    pair_trends,
    tstr,
    tstr_skill,
)


@dataclass
class AuditResult:
    """Scalar metrics plus the tables and distributions the report plots."""

    metrics: dict[str, float]
    columns: pd.DataFrame
    real_associations: pd.DataFrame
    synthetic_associations: pd.DataFrame
    attribute: list[dict[str, Any]] = field(default_factory=list)
    tstr: dict[str, Any] | None = None
    details: dict[str, str] = field(default_factory=dict)
    """Where the worst value of a metric was found (column, category), for gate reasons."""
    distances: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (distributions as quantiles, not raw distances)."""
        qs = [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
        return {
            "metrics": self.metrics,
            "columns": self.columns.to_dict(orient="records"),
            "tstr": self.tstr,
            "details": self.details,
            "attribute_inference": self.attribute,
            "distance_quantiles": {
                k: dict(zip(map(str, qs), np.quantile(v, qs).tolist(), strict=True))
                for k, v in self.distances.items()
                if len(v)
            },
            "seconds": self.seconds,
        }


def _row_hashes(frame: pd.DataFrame, schema: TableSchema) -> np.ndarray:
    parts = {}
    for spec in schema.columns:
        series = frame[spec.name]
        if spec.kind in ("numeric", "datetime"):
            parts[spec.name] = as_float(series, spec)
        else:
            tokens = series.astype(object).where(series.notna(), None).map(repr)
            parts[spec.name] = tokens.to_numpy()
    return pd.util.hash_pandas_object(pd.DataFrame(parts), index=False).to_numpy()


def exact_matches(rows: pd.DataFrame, reference: pd.DataFrame, schema: TableSchema) -> int:
    """Rows of `rows` equal in every column to some row of `reference`."""
    return int(np.isin(_row_hashes(rows, schema), _row_hashes(reference, schema)).sum())


def random_rows(real: pd.DataFrame, schema: TableSchema, n: int, seed: int) -> pd.DataFrame:
    """SDMetrics' random baseline: uniform in numeric ranges, uniform over seen categories."""
    rng = np.random.default_rng(seed)
    out = {}
    for spec in schema.columns:
        series = real[spec.name]
        if spec.kind in ("numeric", "datetime"):
            values = as_float(series, spec)
            drawn = rng.uniform(np.nanmin(values), np.nanmax(values), n)
            out[spec.name] = from_seconds(drawn, spec.dtype) if spec.kind == "datetime" else drawn
        else:
            seen = series.dropna().unique()
            out[spec.name] = seen[rng.integers(0, len(seen), n)]
    return pd.DataFrame(out)


def audit(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: TableSchema,
    target: str | None = None,
    sensitive: Sequence[str] = (),
    seed: int = 0,
    tstr_model: str = "auto",
) -> AuditResult:
    """Measure privacy leakage and utility of `synthetic` (see the module docstring)."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    space = DistanceSpace.fit(train, schema, holdout, synthetic)
    members = balanced_members(train, len(holdout), seed)
    train_index = NeighbourIndex(space, train, len(synthetic) + len(holdout))
    syn_train, _ = train_index.search(synthetic, 2)
    hold_train, _ = train_index.search(holdout, 2)
    syn_members, _ = NeighbourIndex(space, members, len(synthetic)).search(synthetic, 1)
    syn_holdout, _ = NeighbourIndex(space, holdout, len(synthetic)).search(synthetic, 1)
    synthetic_index = NeighbourIndex(space, synthetic, len(members) + len(holdout))
    members_syn, _ = synthetic_index.search(members, 1)
    holdout_syn, _ = synthetic_index.search(holdout, 1)
    random = random_rows(train, schema, len(synthetic), seed)
    random_train, _ = train_index.search(random, 1)
    seconds["neighbours"] = time.perf_counter() - t0

    share = float(np.mean(syn_members[:, 0] < syn_holdout[:, 0]))
    median_random = float(np.median(random_train[:, 0]))
    median_syn = float(np.median(syn_train[:, 0]))
    matches = exact_matches(synthetic, train, schema)

    def nndr(d: np.ndarray) -> np.ndarray:
        return np.where(d[:, 1] > 0, d[:, 0] / np.maximum(d[:, 1], 1e-12), 1.0)

    metrics: dict[str, float] = {
        "rows_train": len(train),
        "rows_holdout": len(holdout),
        "rows_synthetic": len(synthetic),
        "dcr_share": share,
        "dcr_ties": float(np.mean(syn_members[:, 0] == syn_holdout[:, 0])),
        "dcr_overfitting_protection": min(2 * (1 - share), 1.0),
        "dcr_baseline_protection": min(median_syn / median_random, 1.0)
        if median_random > 0
        else float("nan"),
        "dcr_median_synthetic": median_syn,
        "dcr_median_holdout": float(np.median(hold_train[:, 0])),
        "dcr_median_random": median_random,
        "exact_matches": matches,
        "exact_match_rate": matches / len(synthetic),
        "holdout_exact_match_rate": exact_matches(holdout, train, schema) / len(holdout),
        "nndr_median": float(np.median(nndr(syn_train))),
        "nndr_median_holdout": float(np.median(nndr(hold_train))),
        "mia_auc": membership_auc(members_syn[:, 0], holdout_syn[:, 0]),
    }
    t1 = time.perf_counter()
    attribute = attribute_inference(schema, sensitive, members, holdout, synthetic)
    if attribute:
        metrics["attribute_risk_max"] = max(a["risk"] for a in attribute)
    seconds["attacks"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    shapes = column_shapes(train, synthetic, schema)
    corr, real_assoc, syn_assoc = correlation_difference(train, synthetic, schema)
    metrics["column_shape_mean"] = float(shapes["score"].mean())
    metrics["column_shape_min"] = float(shapes["score"].min())
    metrics["correlation_difference"] = corr
    metrics["pair_trends"] = pair_trends(train, synthetic, schema)
    marginals = marginal_errors(train, synthetic, schema)
    metrics["category_share_error"] = marginals["category_share_error"]
    metrics["missing_rate_error"] = marginals["missing_rate_error"]
    metrics["vanished_categories"] = len(marginals["vanished_categories"])
    worst = shapes.loc[shapes["score"].idxmin()]
    details = {
        "category_share_error": marginals["category_share_error_at"],
        "missing_rate_error": marginals["missing_rate_error_at"],
        "vanished_categories": ", ".join(marginals["vanished_categories"]),
        "column_shape_min": f"{worst['column']} ({worst['metric']})",
    }
    utility = None
    if target is not None:
        utility = tstr(train, synthetic, holdout, schema, target, tstr_model)
        metrics |= {"tstr": utility["tstr"], "trtr": utility["trtr"], "tstr_gap": utility["gap"]}
        metrics["tstr_skill"] = tstr_skill(utility)
        details["tstr_skill"] = (
            f"{utility['metric']} {utility['tstr']:.3f} synthetic-trained vs "
            f"{utility['trtr']:.3f} real-trained ({utility['model']})"
        )
    seconds["utility"] = time.perf_counter() - t2
    return AuditResult(
        metrics={k: float(v) for k, v in metrics.items()},
        columns=shapes,
        real_associations=real_assoc,
        synthetic_associations=syn_assoc,
        attribute=attribute,
        tstr=utility,
        details={k: v for k, v in details.items() if v},
        distances={
            "synthetic_to_train": syn_train[:, 0],
            "holdout_to_train": hold_train[:, 0],
            "random_to_train": random_train[:, 0],
            "members_to_synthetic": members_syn[:, 0],
            "holdout_to_synthetic": holdout_syn[:, 0],
        },
        seconds=seconds,
    )
