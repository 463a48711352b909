"""The release gate: thresholds on audit metrics that decide whether a synthetic table may be
published. A check whose metric was not measured (no target, no sensitive column) is skipped,
and says so; any failed check blocks the release."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class GateConfig(BaseModel):
    """Thresholds; None switches a check off. Defaults block clear leaks, not weak utility."""

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
    max_tstr_gap: float | None = Field(default=None, description="TRTR minus TSTR")
    min_column_shape: float | None = Field(
        default=None, description="mean KS/TV complement over columns"
    )
    max_correlation_difference: float | None = None


_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("max_exact_match_rate", "exact_match_excess", "<="),
    ("max_dcr_share", "dcr_share", "<="),
    ("max_mia_auc", "mia_auc", "<="),
    ("max_attribute_risk", "attribute_risk_max", "<="),
    ("min_dcr_baseline_protection", "dcr_baseline_protection", ">="),
    ("max_tstr_gap", "tstr_gap", "<="),
    ("min_column_shape", "column_shape_mean", ">="),
    ("max_correlation_difference", "correlation_difference", "<="),
)


@dataclass
class GateResult:
    """The decision and one row per check (metric, value, threshold, status)."""

    passed: bool
    checks: list[dict[str, Any]]

    @property
    def reasons(self) -> list[str]:
        return [
            f"{c['metric']} = {c['value']:.4g} (allowed {c['op']} {c['threshold']:.4g})"
            for c in self.checks
            if c["status"] == "fail"
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": self.checks, "reasons": self.reasons}


def evaluate(metrics: dict[str, float], config: GateConfig) -> GateResult:
    """Apply the thresholds of `config` to audit `metrics`.

    The exact-match check compares the synthetic rate with the rate at which holdout rows
    already equal a training row (tables of few categorical columns repeat by nature).
    """
    values = dict(metrics)
    if "exact_match_rate" in values:
        values["exact_match_excess"] = max(
            0.0, values["exact_match_rate"] - values.get("holdout_exact_match_rate", 0.0)
        )
    checks = []
    for setting, metric, op in _CHECKS:
        threshold = getattr(config, setting)
        if threshold is None:
            continue
        value = values.get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            checks.append(
                {
                    "metric": metric,
                    "value": None,
                    "op": op,
                    "threshold": threshold,
                    "status": "skipped (not measured)",
                }
            )
            continue
        ok = value <= threshold if op == "<=" else value >= threshold
        checks.append(
            {
                "metric": metric,
                "value": float(value),
                "op": op,
                "threshold": threshold,
                "status": "pass" if ok else "fail",
            }
        )
    return GateResult(all(c["status"] != "fail" for c in checks), checks)
