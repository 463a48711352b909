"""The tabular release gate: thresholds on audit metrics that decide whether a synthetic table
may be published, evaluated by the shared machinery of `synthset.privacy.gate`. A check whose
metric was not measured (no target, no sensitive column) is skipped, and says so; any failed
check blocks the release.

The defaults block leaks and useless tables alike: a table whose categories vanish or whose
missing rates, column shapes or pair trends are far from the real rows', or whose target
cannot be predicted from it, is not released with a "passed" on it. A user relaxes a check
explicitly by setting its threshold (None switches it off; the report lists it as relaxed).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from synthset.privacy.gate import GateResult, Threshold, apply_thresholds


class GateConfig(BaseModel):
    """Thresholds; None switches a check off."""

    model_config = ConfigDict(extra="forbid")

    max_exact_match_rate: float | None = Field(
        default=0.0,
        description="synthetic rows equal to a training row, beyond the holdout's own rate",
    )
    max_dcr_share: float | None = Field(
        default=0.6, description="share of synthetic rows closer to training than to holdout rows"
    )
    max_mia_auc: float | None = Field(default=0.6, description="membership-inference ROC AUC")
    max_attribute_risk: float | None = Field(
        default=0.1, description="attribute-inference accuracy on members minus on holdout"
    )
    min_dcr_baseline_protection: float | None = None
    min_tstr_skill: float | None = Field(
        default=0.3,
        description="(TSTR − chance) / (TRTR − chance): below it the target is near chance or "
        "far below what the real rows give",
    )
    max_tstr_gap: float | None = Field(default=None, description="TRTR minus TSTR")
    min_column_shape: float | None = Field(
        default=0.7, description="mean KS/TV complement over columns"
    )
    min_worst_column_shape: float | None = Field(
        default=0.5, description="KS/TV complement of the worst column"
    )
    min_pair_trends: float | None = Field(
        default=0.6, description="mean pair-trend similarity (SDMetrics' Column Pair Trends)"
    )
    max_category_share_error: float | None = Field(
        default=0.1, description="largest difference of one category's share (missing counted)"
    )
    max_vanished_categories: float | None = Field(
        default=0, description="categories with ≥ 5% of the real rows and none synthetic"
    )
    max_missing_rate_error: float | None = Field(
        default=0.05, description="largest difference of a column's missing rate"
    )
    max_correlation_difference: float | None = None


CHECKS: tuple[Threshold, ...] = tuple(
    Threshold(*row)
    for row in (
        ("max_exact_match_rate", "exact_match_excess", "<="),
        ("max_dcr_share", "dcr_share", "<="),
        ("max_mia_auc", "mia_auc", "<="),
        ("max_attribute_risk", "attribute_risk_max", "<="),
        ("min_dcr_baseline_protection", "dcr_baseline_protection", ">="),
        ("min_tstr_skill", "tstr_skill", ">="),
        ("max_tstr_gap", "tstr_gap", "<="),
        ("min_column_shape", "column_shape_mean", ">="),
        ("min_worst_column_shape", "column_shape_min", ">="),
        ("min_pair_trends", "pair_trends", ">="),
        ("max_category_share_error", "category_share_error", "<="),
        ("max_vanished_categories", "vanished_categories", "<="),
        ("max_missing_rate_error", "missing_rate_error", "<="),
        ("max_correlation_difference", "correlation_difference", "<="),
    )
)
"""Which metric each `GateConfig` setting bounds, and in which direction."""


def evaluate(
    metrics: dict[str, float], config: GateConfig, details: dict[str, str] | None = None
) -> GateResult:
    """Apply the thresholds of `config` to audit `metrics` (`details`: where each metric's
    worst value was found, quoted in the reasons).

    The exact-match check compares the synthetic rate with the rate at which holdout rows
    already equal a training row (tables of few categorical columns repeat by nature).
    """
    values = dict(metrics)
    if "exact_match_rate" in values:
        values["exact_match_excess"] = max(
            0.0, values["exact_match_rate"] - values.get("holdout_exact_match_rate", 0.0)
        )
    return apply_thresholds(values, config, CHECKS, details)
