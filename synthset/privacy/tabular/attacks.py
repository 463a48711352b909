"""Attacks on a synthetic table that the audit runs with the real training and holdout rows.

- Membership inference: the attacker scores a real row by how close its nearest synthetic row
  is (−DCR). Members (training rows, subsampled to the holdout's size) against non-members
  (holdout rows): the ROC AUC is 0.5 when the synthetic data says nothing about membership.
- Attribute inference, per declared sensitive column: the attacker knows every other column
  of a person, takes the `k` nearest synthetic rows on those columns and guesses the
  sensitive value (majority class; for a numeric column the median, right when within 5% of
  the range). Accuracy on training rows against accuracy on holdout rows: the difference is
  what the synthetic data reveals about the people it was trained on beyond what it reveals
  about anyone like them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from synthset.privacy.tabular.encoder import as_float
from synthset.privacy.tabular.neighbors import DistanceSpace, NeighbourIndex
from synthset.privacy.tabular.schema import TableSchema

ATTRIBUTE_K = 5
NUMERIC_TOLERANCE = 0.05


def balanced_members(train: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """A random subset of `size` training rows (all of them when fewer)."""
    if len(train) <= size:
        return train
    index = np.random.default_rng(seed).choice(len(train), size, replace=False)
    return train.iloc[np.sort(index)]


def membership_auc(members_dcr: np.ndarray, holdout_dcr: np.ndarray) -> float:
    """ROC AUC of the closest-synthetic-row attack (members are expected closer)."""
    from sklearn.metrics import roc_auc_score

    labels = np.concatenate([np.ones(len(members_dcr)), np.zeros(len(holdout_dcr))])
    scores = -np.concatenate([members_dcr, holdout_dcr])
    return float(roc_auc_score(labels, scores))


def _guesses(
    sensitive: str, schema: TableSchema, synthetic: pd.DataFrame, rows: pd.DataFrame, k: int
) -> np.ndarray:
    known = TableSchema([c for c in schema.columns if c.name != sensitive], schema.source)
    space = DistanceSpace.fit(synthetic, known, rows)
    index = NeighbourIndex(space, synthetic, len(rows))
    _, neighbours = index.search(rows, min(k, len(synthetic)))
    spec = schema.column(sensitive)
    if spec.kind in ("numeric", "datetime"):
        values = as_float(synthetic[sensitive], spec)
        return np.nanmedian(values[neighbours], axis=1)
    tokens = synthetic[sensitive].astype(object).where(synthetic[sensitive].notna(), None)
    tokens = tokens.map(repr).to_numpy()
    picked = tokens[neighbours]
    return np.array([pd.Series(row).mode().iloc[0] for row in picked], dtype=object)


def _correct(spec: Any, truth: pd.Series, guess: np.ndarray, span: float) -> np.ndarray:
    if spec.kind in ("numeric", "datetime"):
        values = as_float(truth, spec)
        return np.abs(values - guess) <= NUMERIC_TOLERANCE * span
    tokens = truth.astype(object).where(truth.notna(), None).map(repr).to_numpy()
    return tokens == guess


def attribute_inference(
    schema: TableSchema,
    sensitive: Sequence[str],
    members: pd.DataFrame,
    holdout: pd.DataFrame,
    synthetic: pd.DataFrame,
    k: int = ATTRIBUTE_K,
) -> list[dict[str, Any]]:
    """Per sensitive column: accuracy on members, on holdout, a baseline, and the risk."""
    out = []
    for name in sensitive:
        spec = schema.column(name)
        if spec.kind in ("numeric", "datetime"):
            real = as_float(members[name], spec)
            span = float(np.nanmax(real) - np.nanmin(real)) or 1.0
            baseline_guess = np.full(len(holdout), np.nanmedian(real))
        else:
            span = 1.0
            common = members[name].astype(object).where(members[name].notna(), None).map(repr)
            baseline_guess = np.full(len(holdout), common.mode().iloc[0], dtype=object)
        on_members = _correct(
            spec, members[name], _guesses(name, schema, synthetic, members, k), span
        )
        on_holdout = _correct(
            spec, holdout[name], _guesses(name, schema, synthetic, holdout, k), span
        )
        baseline = _correct(spec, holdout[name], baseline_guess, span)
        out.append(
            {
                "column": name,
                "accuracy_members": float(on_members.mean()),
                "accuracy_holdout": float(on_holdout.mean()),
                "baseline": float(baseline.mean()),
                "risk": max(0.0, float(on_members.mean() - on_holdout.mean())),
            }
        )
    return out
