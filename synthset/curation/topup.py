"""Counts that survive curation: how many more images each short item should get.

An item's `count` is what the user wants kept. After curation, an item short of it gets more
images with its next seeds, as many as its observed pass rate says are needed (the share of
its images that passed every rule so far; at worst 1/attempt_budget), never more than its
attempt budget allows. An item whose budget is spent stays short, and says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from synthset.curation.config import CurationConfig
from synthset.curation.curate import Curation


def more_images(
    curation: Curation, counts: Mapping[int, int], config: CurationConfig
) -> dict[int, int]:
    """{item index: further images to generate} for the items below their count."""
    rows = curation.rows
    reasons = rows["reject_reason"]
    passed = reasons.isna() | reasons.eq("surplus")
    attempted = rows.groupby("item_index").size()
    passing = passed.groupby(rows["item_index"]).sum()
    kept = reasons.isna().groupby(rows["item_index"]).sum()
    more: dict[int, int] = {}
    for item, count in counts.items():
        tried = int(attempted.get(item, 0))
        need = count - int(kept.get(item, 0))
        room = config.max_attempts(count) - tried
        if need <= 0 or room <= 0:
            continue
        rate = max(int(passing.get(item, 0)) / tried if tried else 1.0, 1 / config.attempt_budget)
        more[item] = min(room, max(need, math.ceil(round(need / rate, 9))))
    return more
