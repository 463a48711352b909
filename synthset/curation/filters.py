"""Keep-or-drop rules that look at one score at a time: top fraction and counts.

(Thresholds on a single column, `min_clip_score` and the blank flag, are plain comparisons in
`synthset.curation.curate`.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd


def kept_of(n: int, fraction: float) -> int:
    """How many of `n` images a top `fraction` keeps: ⌈fraction·n⌉ (at least one of one)."""
    return min(n, math.ceil(round(fraction * n, 9)))


def top_fraction(rank: np.ndarray, groups: np.ndarray | None, fraction: float) -> np.ndarray:
    """True for rows outside the best `fraction` (by `rank`) of their group (or of all rows).

    DataComp-style CLIP filtering: within each group the ⌈fraction·n⌉ best-ranked rows stay.
    """
    frame = pd.DataFrame({"rank": rank, "group": 0 if groups is None else groups})
    place = frame.groupby("group", sort=False)["rank"].rank(method="first").to_numpy()
    size = frame.groupby("group", sort=False)["rank"].transform("size").to_numpy()
    allowed = np.array([kept_of(int(n), fraction) for n in size], dtype=np.int64)
    return place > allowed


def surplus(item_index: np.ndarray, index: np.ndarray, counts: Mapping[int, int]) -> np.ndarray:
    """True for rows beyond their item's `count`, taking the lowest image indices first.

    Top-ups ask for more images than may be needed; the ones with the original seeds stay.
    """
    frame = pd.DataFrame({"item": item_index, "index": index})
    place = frame.groupby("item", sort=False)["index"].rank(method="first").to_numpy()
    wanted = frame["item"].map(counts).to_numpy(dtype=float)
    return place > wanted
