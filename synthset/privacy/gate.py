"""The release gate's machinery, for any modality: thresholds evaluated on audit metrics into
pass or fail, one row per check and one reason per failed check.

A modality defines its thresholds as a pydantic model (None switches a check off) and the
checks as `Threshold(setting, metric, op)` rows; `apply_thresholds` does the rest. A check
whose metric was not measured is skipped, and says so; a check switched off explicitly (the
setting given as None) is listed as relaxed; any failed check blocks the release. The
tabular thresholds and checks are in `synthset.privacy.tabular.gate`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import BaseModel


class Threshold(NamedTuple):
    """One check: the config `setting` holding the threshold, the `metric` it applies to,
    and `op`: "<=" (the metric may not exceed it) or ">=" (may not fall below it)."""

    setting: str
    metric: str
    op: str


@dataclass
class GateResult:
    """The decision and one row per check (metric, value, threshold, status)."""

    passed: bool
    checks: list[dict[str, Any]]

    @property
    def reasons(self) -> list[str]:
        """One line per failed check: the value, how far past the threshold, and where."""
        out = []
        for c in self.checks:
            if c["status"] != "fail":
                continue
            line = (
                f"{c['metric']} = {c['value']:.4g}, {abs(c['value'] - c['threshold']):.3g} past "
                f"the allowed {c['op']} {c['threshold']:.4g}"
            )
            out.append(line + (f" ({c['detail']})" if c.get("detail") else ""))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": self.checks, "reasons": self.reasons}


def _check(metric: str, value: Any, op: str, threshold: float, detail: str) -> dict[str, Any]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        status, value = "skipped (not measured)", None
    else:
        value = float(value)
        status = "pass" if (value <= threshold if op == "<=" else value >= threshold) else "fail"
    return {
        "metric": metric,
        "value": value,
        "op": op,
        "threshold": threshold,
        "status": status,
        "detail": detail,
    }


def apply_thresholds(
    values: Mapping[str, Any],
    config: BaseModel,
    checks: Sequence[Threshold],
    details: Mapping[str, str] | None = None,
) -> GateResult:
    """Evaluate every check of `checks` whose threshold in `config` is set on `values`
    (`details`: where each metric's worst value was found, quoted in the reasons).

    A threshold left at None is no check; one set to None in the config (so in its
    `model_fields_set`) is listed with the status "off (relaxed: ...)".
    """
    details = details or {}
    rows = []
    for setting, metric, op in checks:
        threshold = getattr(config, setting)
        if threshold is not None:
            rows.append(_check(metric, values.get(metric), op, threshold, details.get(metric, "")))
        elif setting in config.model_fields_set:
            relaxed = f"off (relaxed: {setting} is null in the config)"
            row = _check(metric, values.get(metric), op, math.nan, "")
            rows.append(row | {"threshold": None, "status": relaxed})
    return GateResult(all(c["status"] != "fail" for c in rows), rows)
