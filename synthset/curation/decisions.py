"""The decision columns of a curation being filled in: which rows are still open, and why the
others were rejected (a reason, a detail, and for duplicates what, in which tier and version)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

DECISION_COLUMNS = ("reject_reason", "detail", "dup_of", "dup_tier", "dup_version")


class Decisions:
    """The decision columns being filled in, and which rows are still undecided."""

    def __init__(self, n: int, sample_ids: np.ndarray):
        self.ids = sample_ids
        self.columns = {name: np.full(n, None, dtype=object) for name in DECISION_COLUMNS}

    def open(self) -> np.ndarray:
        return np.flatnonzero(pd.isna(self.columns["reject_reason"]))

    def reject(self, rows: np.ndarray, reason: str, details: Sequence[str] | str) -> None:
        self.columns["reject_reason"][rows] = reason
        self.columns["detail"][rows] = details

    def duplicate(
        self,
        rows: np.ndarray,
        of: np.ndarray,
        tier: str,
        details: Sequence[str],
        versions: Sequence[Any] | None = None,
    ) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return
        self.columns["reject_reason"][rows] = [f"duplicate_of:{o}" for o in of]
        self.columns["detail"][rows] = list(details)
        self.columns["dup_of"][rows] = list(of)
        self.columns["dup_tier"][rows] = tier
        if versions is not None:
            self.columns["dup_version"][rows] = [int(v) for v in versions]
