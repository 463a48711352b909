"""Keep images whose score lies in a range: any numeric score column, built-in or a scorer's."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthset.curation.plugins.base import Filter, register


class RangeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    column: str = Field(min_length=1)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> RangeOptions:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


@register
class ScoreRange(Filter):
    """Rejects rows whose `column` is below `min` or above `max` (or missing), as
    `out_of_range`, with the value and the bound it crossed."""

    kind = "range"
    reason = "out_of_range"
    Options = RangeOptions

    def needs(self) -> tuple[str, ...]:
        return (self.options.column,)

    def reject(self, rows: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        o = self.options
        value = pd.to_numeric(rows[o.column], errors="coerce").to_numpy(dtype=float)
        low = value < o.min if o.min is not None else np.zeros(len(value), bool)
        high = value > o.max if o.max is not None else np.zeros(len(value), bool)
        bad = low | high | np.isnan(value)
        details = [
            f"{o.column} missing"
            if np.isnan(v)
            else f"{o.column} {v:.4g} < {o.min:g}"
            if lo
            else f"{o.column} {v:.4g} > {o.max:g}"
            for v, lo in zip(value[bad], low[bad], strict=True)
        ]
        return bad, details
