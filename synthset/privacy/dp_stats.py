"""Differentially private estimates of what the encoder needs from the private rows.

Every estimate is a histogram in which each row adds 1 to exactly one bin, released with
Gaussian noise of standard deviation z (L2 sensitivity 1 per histogram):

- bounds of a numeric column without declared bounds: a histogram over a fixed grid of
  signed half-octaves (±2^-10 … ±2^30); starting from the bin with the largest noisy count,
  the range grows over adjacent bins whose noisy count passes 2z, so a noise spike beyond an
  empty bin cannot stretch it (values outside are clipped: a thin tail is cut rather than
  a range doubled by noise, which would put synthetic values where no row lies);
- its quantile map: a histogram of `bins` equal-width bins between the bounds plus one bin
  for missing values; the noisy cumulative counts, made monotone, give a piecewise-linear
  CDF (see `noisy_cdf`);
- the category set of a categorical column without declared categories: noisy counts of the
  values seen, released only when above τ = 1 + z·Φ⁻¹(1 − δ_extra/k) (k such columns), so a
  value held by a single row is released with probability at most δ_extra/k;
- the class shares of a conditioning target (noisy counts over its category set, floored at
  0; the "missing" class only counts above 3z, so a target without gaps gets none).

All m histograms share one noise multiplier z, calibrated so that their composition costs
the budget's preprocessing share; they enter the ledger as one Gaussian mechanism of m steps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtri

from synthset.privacy.dp import Mechanism, PrivacyLedger
from synthset.privacy.encoder import ColumnStats, as_float, category_index
from synthset.privacy.errors import TableError
from synthset.privacy.schema import TableSchema

DEFAULT_BINS = 10
UNIFORM_SHARE = 0.01
BOUNDS_THRESHOLD = 2.0
_HALF_OCTAVES = 2.0 ** (np.arange(-20, 61) / 2)
GRID = np.concatenate([-_HALF_OCTAVES[::-1], _HALF_OCTAVES])
"""Edges of the bounds grid: bins are [GRID[i], GRID[i+1]); the one around 0 is ±2^-10."""


def _noisy(counts: np.ndarray, z: float, rng: np.random.Generator) -> np.ndarray:
    return counts + rng.normal(0.0, z, size=counts.shape)


def _bounds(values: np.ndarray, z: float, rng: np.random.Generator) -> tuple[float, float, bool]:
    observed = np.clip(values[~np.isnan(values)], GRID[0], GRID[-1])
    index = np.clip(np.searchsorted(GRID, observed, side="right") - 1, 0, len(GRID) - 2)
    noisy = _noisy(np.bincount(index, minlength=len(GRID) - 1).astype(float), z, rng)
    passed = noisy > BOUNDS_THRESHOLD * z
    anchor = int(np.argmax(noisy))
    low = high = anchor
    while low > 0 and passed[low - 1]:
        low -= 1
    while high < len(noisy) - 1 and passed[high + 1]:
        high += 1
    fallback = not passed[anchor]
    if fallback:
        low, high = max(anchor - 1, 0), min(anchor + 1, len(noisy) - 1)
    return float(GRID[low]), float(GRID[high + 1]), fallback


def _per_class(
    values: np.ndarray,
    classes: np.ndarray,
    n_classes: int,
    lower: float,
    upper: float,
    bins: int,
    z: float,
    rng: np.random.Generator,
) -> ColumnStats:
    """One noisy histogram per class (disjoint rows); the overall map is their mixture."""
    edges = np.linspace(lower, upper, bins + 1)
    noisy = []
    for c in range(n_classes):
        part = values[classes == c]
        missing = np.isnan(part)
        counts = np.histogram(np.clip(part[~missing], lower, upper), bins=edges)[0]
        noisy.append(_noisy(np.append(counts.astype(float), missing.sum()), z, rng))
    noisy = np.stack(noisy)
    stats = _from_counts(noisy.sum(axis=0), edges, lower, upper, z * np.sqrt(n_classes))
    stats.class_levels = np.stack([noisy_cdf(row[:-1]) for row in noisy])
    return stats


def noisy_cdf(counts: np.ndarray, uniform_share: float = UNIFORM_SHARE) -> np.ndarray:
    """CDF levels at the bin edges from noisy bin counts.

    The noisy cumulative counts are made monotone by isotonic regression (least squares,
    which keeps the noise unbiased instead of flooring each bin at 0), normalised, and mixed
    with a uniform CDF (1%) so that every bin keeps some mass and the map stays invertible;
    more would spread that share of the synthetic values evenly up to the bounds, and heavy
    made-up tails mislead models trained on them.
    """
    from sklearn.isotonic import IsotonicRegression

    cumulative = np.concatenate([[0.0], np.cumsum(counts)])
    x = np.arange(len(cumulative), dtype=float)
    fitted = IsotonicRegression().fit_transform(x, cumulative)
    fitted = np.maximum(fitted - fitted[0], 0.0)
    uniform = np.linspace(0.0, 1.0, len(cumulative))
    if fitted[-1] <= 0:
        return uniform
    return (1 - uniform_share) * fitted / fitted[-1] + uniform_share * uniform


def _quantiles(
    values: np.ndarray, lower: float, upper: float, bins: int, z: float, rng: np.random.Generator
) -> ColumnStats:
    missing = np.isnan(values)
    observed = np.clip(values[~missing], lower, upper)
    edges = np.linspace(lower, upper, bins + 1)
    counts = np.histogram(observed, bins=edges)[0].astype(float)
    noisy = _noisy(np.append(counts, missing.sum()), z, rng)
    return _from_counts(noisy, edges, lower, upper, z)


def _from_counts(
    noisy: np.ndarray, edges: np.ndarray, lower: float, upper: float, z: float
) -> ColumnStats:
    """Stats from noisy value-bin counts with the missing count last."""
    return ColumnStats(
        knots=edges,
        levels=noisy_cdf(noisy[:-1]),
        lower=lower,
        upper=upper,
        nullable=bool(noisy[-1] > 3.5 * z),
    )


def _released_categories(
    series: pd.Series, z: float, tau: float, rng: np.random.Generator
) -> tuple[list, np.ndarray]:
    counts = series.value_counts(dropna=False)
    noisy = _noisy(counts.to_numpy(dtype=float), z, rng)
    keep = np.flatnonzero(noisy > tau)
    keep = keep[np.argsort(-noisy[keep], kind="stable")]
    values = [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in counts.index]
    return [values[i] for i in keep], noisy[keep]


def dp_stats(
    frame: pd.DataFrame,
    schema: TableSchema,
    ledger: PrivacyLedger,
    bins: int = DEFAULT_BINS,
    rng: np.random.Generator | None = None,
    per_class: bool = False,
) -> dict[str, ColumnStats]:
    """Estimate every column's statistics with DP, recording the cost in `ledger`.

    Declared bounds and categories (and the two values of a boolean) cost nothing. With
    `per_class` and a target whose classes are declared (or boolean), each numeric column
    also gets one quantile map per class from that class's rows: the classes are disjoint,
    so these histograms compose in parallel and cost what one histogram costs. `rng`
    defaults to one seeded from OS entropy: DP noise must not be predictable from a seed.
    """
    rng = rng or np.random.default_rng()
    numeric = [c for c in schema.columns if c.kind in ("numeric", "datetime")]
    need_bounds = [c for c in numeric if c.lower is None or c.upper is None]
    need_keys = [c for c in schema.columns if c.kind == "categorical" and c.categories is None]
    target = schema.column(schema.target) if schema.target else None
    need_shares = target is not None and (
        target.kind == "boolean" or (target.kind == "categorical" and target.categories is not None)
    )
    releases = len(numeric) + len(need_bounds) + len(need_keys) + int(need_shares)
    if releases == 0:
        return {}
    delta_extra = ledger.reserve_threshold_delta() if need_keys else 0.0
    z = ledger.preprocessing_noise(releases)
    covers = [f"quantile map and missing share of {len(numeric)} numeric columns"]
    if need_bounds:
        covers.append("bounds of " + ", ".join(c.name for c in need_bounds))
    if need_keys:
        covers.append("category sets of " + ", ".join(c.name for c in need_keys))
    if need_shares:
        covers.append(f"class shares of the target {target.name}")
    classes, class_set = None, []
    if per_class and need_shares:
        declared = [False, True] if target.kind == "boolean" else list(target.categories)
        class_set = [*declared, None]
        classes = category_index(frame[target.name], class_set)
        covers[0] = (
            f"quantile maps and missing shares of {len(numeric)} numeric columns, one per "
            "target class (disjoint rows: parallel composition)"
        )
    ledger.add(
        Mechanism(
            name="preprocessing histograms",
            covers="; ".join(covers),
            noise_multiplier=z,
            sample_rate=1.0,
            steps=releases,
            delta_extra=delta_extra,
        )
    )
    out: dict[str, ColumnStats] = {}
    for spec in numeric:
        values = as_float(frame[spec.name], spec)
        lower, upper = spec.lower, spec.upper
        if lower is None or upper is None:
            lower, upper, fallback = _bounds(values, z, rng)
            if fallback:
                ledger.notes.append(
                    f"{spec.name}: no bounds bin passed the threshold; the strongest noisy bin "
                    "was used (declare its bounds for better results)"
                )
        if classes is not None and spec.name != schema.target:
            out[spec.name] = _per_class(values, classes, len(class_set), lower, upper, bins, z, rng)
        else:
            out[spec.name] = _quantiles(values, lower, upper, bins, z, rng)
    tau = 1 + z * float(ndtri(1 - delta_extra / max(len(need_keys), 1))) if need_keys else 0.0
    for spec in schema.columns:
        if spec.kind not in ("categorical", "boolean"):
            continue
        series = frame[spec.name]
        if spec.kind == "categorical" and spec.categories is None:
            categories, counts = _released_categories(series, z, tau, rng)
            if not categories:
                raise TableError(
                    schema.source,
                    "no category passed the DP release threshold at this budget; declare "
                    "its categories or raise epsilon / preprocessing_share",
                    spec.name,
                )
        else:
            declared = [False, True] if spec.kind == "boolean" else list(spec.categories)
            categories = [*declared, None]
            counts = None
            if spec is target:
                index = category_index(series, categories)
                counts = _noisy(np.bincount(index, minlength=len(categories)).astype(float), z, rng)
        stats = ColumnStats(categories=categories)
        if spec is target and counts is not None:
            shares = np.maximum(counts, 0.0)
            missing = [i for i, c in enumerate(categories) if c is None]
            shares[missing] = np.where(counts[missing] > 3 * z, shares[missing], 0.0)
            stats.shares = shares / shares.sum() if shares.sum() > 0 else None
        out[spec.name] = stats
    return out
