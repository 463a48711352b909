"""Two-way margins released with DP for the pairs of columns the priors get most wrong.

Under DP the model starts from priors (a Gaussian copula over the numeric scores, each
categorical column at its own shares, see `synthset.privacy.tabular.prior`) and a few hundred
noisy DP-SGD steps add little to them, so dependence between a categorical column and another
column is mostly lost: on ACTG 320 at ε = 10, SDMetrics' pair-trend score of the treatment
indicator against the treatment group (one determines the other) was 0.50 in every fit, and
of the CD4 count against its stratum 0.65. Following AIM (McKenna et al., 2022), part of the
budget selects such pairs and measures their joint counts, and calibration rakes the sampled
rows to them (`synthset.privacy.tabular.calibrate`), as it does to the one-way margins:

1. select: for every pair with at least one categorical column (the class target counts as
   one; numeric pairs are the copula's), the L1 distance, in rows, between the private rows'
   joint cell counts and what the priors imply (the product of the two margins) has
   sensitivity 2 under adding or removing a row and is released with Gaussian noise. A pair
   is worth measuring when its distance exceeds the L1 error that measuring it adds,
   √(2/π)·σ per cell, plus the distance an independent pair has from sampling alone (from a
   noisy row count); it is kept when its noisy distance exceeds that by a margin that the
   selection noise of all candidates passes with probability at most `FALSE_SELECTION` (at
   ε = 1 on 300 rows, noise alone otherwise picked an independent pair); the `most` largest
   gains are kept.
2. measure: each kept pair's joint cell counts, with Gaussian noise σ (one histogram each,
   sensitivity 1), floored at 0, normalised and fitted to the one-way margins
   (`fit_margins`).

Cells are those of calibration, coarser for numeric columns (`PAIR_BINS` equal CDF-level bins
of the encoder's maps, plus one for missing values where a column has them), so that a
measured pair has few cells for the noise to spread over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.special import ndtri

from synthset.privacy.dp import Mechanism, PrivacyLedger
from synthset.privacy.tabular.dp_stats import noisy_shares

PAIR_BINS = 5
SELECT_SHARE = 0.25
"""Share of the pairs' budget spent on selecting them; the rest measures them."""
FALSE_SELECTION = 0.05
FIT_ROUNDS = 50


@dataclass(frozen=True)
class PairColumns:
    """The columns pairs are drawn from: each row's cell, the cells' shares under the
    priors, the column names, and which columns are numeric."""

    cells: list[np.ndarray]
    margins: list[np.ndarray]
    names: list[str]
    numeric: list[bool]

    def joint(self, first: int, second: int) -> np.ndarray:
        """Each row's cell of the pair (first, second), in row-major order of their cells."""
        return self.cells[first] * len(self.margins[second]) + self.cells[second]

    def product(self, first: int, second: int) -> np.ndarray:
        """The pair's cell shares under the priors: the product of the two margins."""
        return np.outer(self.margins[first], self.margins[second]).ravel()

    def counts(self, first: int, second: int) -> np.ndarray:
        """The pair's joint cell counts, row-major."""
        size = len(self.margins[first]) * len(self.margins[second])
        return np.bincount(self.joint(first, second), minlength=size).astype(float)


@dataclass(frozen=True)
class PairMargin:
    """The DP shares of the joint cells of two pair columns, row-major."""

    first: int
    second: int
    shares: np.ndarray


def candidates(columns: PairColumns) -> list[tuple[int, int]]:
    """Every pair of columns but two numeric ones (their dependence is the copula's)."""
    return [
        (a, b)
        for a, b in combinations(range(len(columns.cells)), 2)
        if not (columns.numeric[a] and columns.numeric[b])
    ]


def select_pairs(
    columns: PairColumns,
    pairs: list[tuple[int, int]],
    z_select: float,
    z_measure: float,
    most: int,
    rng: np.random.Generator,
) -> list[tuple[int, int]]:
    """Up to `most` of `pairs`, by noisy distance from the priors beyond the error that
    measuring them adds and the distance sampling alone gives an independent pair,
    √(2/π)·Σ √(rows·p·(1 − p)) over its cells (noise z_select on each distance, sensitivity
    2, and on the row count, sensitivity 1)."""
    n = len(columns.cells[0])
    products = [columns.product(a, b) for a, b in pairs]
    distances = np.array(
        [np.abs(columns.counts(*ab) - n * p).sum() for ab, p in zip(pairs, products, strict=True)]
    )
    noisy = distances + rng.normal(0.0, 2 * z_select, len(pairs))
    rows = max(n + rng.normal(0.0, z_select), 1.0)
    floor = np.array([np.sqrt(rows * p * (1 - p)).sum() for p in products])
    sizes = np.array([p.size for p in products])
    worth = math.sqrt(2 / math.pi) * (z_measure * sizes + floor)
    margin = 2 * z_select * float(ndtri(1 - FALSE_SELECTION / len(pairs)))
    gain = noisy - worth - margin
    return [pairs[i] for i in np.argsort(-gain)[:most] if gain[i] > 0]


def release_pairs(
    columns: PairColumns,
    ledger: PrivacyLedger,
    share: float,
    most: int,
    rng: np.random.Generator,
) -> list[PairMargin]:
    """Select up to `most` pairs and measure their joint shares with `share` of the budget,
    recording both mechanisms in `ledger`."""
    pairs = candidates(columns)
    if not pairs or most < 1:
        return []
    z_select = ledger.share_noise(len(pairs) + 1, share * SELECT_SHARE)
    z_measure = ledger.share_noise(most, share * (1 - SELECT_SHARE))
    chosen = select_pairs(columns, pairs, z_select, z_measure, most, rng)
    ledger.add(
        Mechanism(
            "pair selection",
            f"distance of {len(pairs)} pairs of columns' joint counts from the priors (L1, "
            "sensitivity 2) and the row count",
            z_select,
            steps=len(pairs) + 1,
        )
    )
    if not chosen:
        return []
    names = ", ".join(f"{columns.names[a]} × {columns.names[b]}" for a, b in chosen)
    ledger.add(Mechanism("pair margins", f"joint counts of {names}", z_measure, steps=len(chosen)))
    out = []
    for a, b in chosen:
        counts = columns.counts(a, b)
        noisy = noisy_shares(counts + rng.normal(0.0, z_measure, counts.shape))
        rows, cols = columns.margins[a], columns.margins[b]
        out.append(PairMargin(a, b, fit_margins(noisy.reshape(len(rows), -1), rows, cols).ravel()))
    return out


def fit_margins(table: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """`table` scaled (iterative proportional fitting) to the row and column shares given.

    A measured pair's own margins are noisier than the one-way releases (the noise of every
    cell in a row adds up) and disagree with them; raking sampled rows to both then settles
    between the two and matches neither (ACTG 320 at ε = 10: strat2's share 4.6 points off
    where both targets were within 0.5 of the truth). Projected onto the one-way margins, the
    pair keeps only its dependence. Rows or columns with no mass stay empty."""
    out = table.copy()
    for _ in range(FIT_ROUNDS):
        out *= np.divide(rows, out.sum(1), out=np.zeros_like(rows), where=out.sum(1) > 0)[:, None]
        out *= np.divide(columns, out.sum(0), out=np.zeros_like(columns), where=out.sum(0) > 0)
    return out / out.sum()
