"""DP statistics of a table: declared statistics cost nothing, value sets never reveal a value
held by one row, and noisy bounds and quantiles land near the data."""

import numpy as np
import pandas as pd
import pytest

from synthset.privacy.dp import PrivacyBudget, PrivacyLedger
from synthset.privacy.errors import TableError
from synthset.privacy.tabular.dp_stats import GRID, _bounds, dp_stats, noisy_cdf
from synthset.privacy.tabular.schema import prepare_table


def test_declared_ranges_and_sets_spend_nothing_only_their_shares_do():
    frame = pd.DataFrame({"x": np.linspace(0, 1, 100), "c": ["a", "b"] * 50})
    table = prepare_table(frame, bounds={"x": (0, 1)}, categories={"c": ["a", "b"]})
    ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
    stats = dp_stats(table.frame, table.schema, ledger, rng=np.random.default_rng(0))
    (mechanism,) = ledger.mechanisms
    assert mechanism.steps == 2 and "bounds" not in mechanism.covers
    assert "category sets" not in mechanism.covers and "shares of c" in mechanism.covers
    assert mechanism.delta_extra == 0 and ledger.reserved_delta == 0
    assert stats["x"].lower == 0 and stats["x"].upper == 1
    assert stats["c"].categories[:2] == ["a", "b"]
    assert stats["c"].shares.sum() == pytest.approx(1) and stats["x"].missing_share == 0


def test_missing_category_only_where_the_noisy_count_says_so():
    rng = np.random.default_rng(0)
    full = rng.choice(["a", "b", "c"], 2000, p=[0.9, 0.07, 0.03]).astype(object)
    gappy = full.copy()
    gappy[rng.random(2000) < 0.2] = None
    frame = pd.DataFrame({"full": full, "gappy": gappy, "x": rng.normal(size=2000)})
    table = prepare_table(frame, categories={"full": ["a", "b", "c"]})
    stats = dp_stats(table.frame, table.schema, PrivacyLedger(PrivacyBudget(3.0, 1e-6)), rng=rng)
    assert stats["full"].categories == ["a", "b", "c"]
    assert np.abs(stats["full"].shares - [0.9, 0.07, 0.03]).max() < 0.02
    assert None in stats["gappy"].categories
    missing = stats["gappy"].shares[stats["gappy"].categories.index(None)]
    assert abs(missing - 0.2) < 0.02


def test_per_class_maps_leave_the_missing_share_as_precise_as_one_map():
    """Each row adds 1 to one bin of (class, value bin) or to the one missing bin: the
    missing share's noise is that of one count, not of a sum over the classes."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    x[rng.random(600) < 0.1] = np.nan
    frame = pd.DataFrame({"x": x, "y": rng.choice(["a", "b", "c", "d"], 600)})
    table = prepare_table(frame, bounds={"x": (-4, 4)}, categories={"y": list("abcd")}, target="y")
    true = np.isnan(x).mean()
    errors = {}
    for per_class in (False, True):
        shares = []
        for seed in range(300):
            ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
            stats = dp_stats(
                table.frame,
                table.schema,
                ledger,
                rng=np.random.default_rng(seed),
                per_class=per_class,
            )
            shares.append(stats["x"].missing_share)
        errors[per_class] = np.sqrt(np.mean((np.array(shares) - true) ** 2))
    assert errors[True] < 1.2 * errors[False]


def _missing_error(table, true: float, seeds: int = 300) -> float:
    """Root-mean-square error of x's DP missing share, in units of the histograms' noise z."""
    errors = []
    for seed in range(seeds):
        ledger = PrivacyLedger(PrivacyBudget(1.0, 1e-6))
        stats = dp_stats(table.frame, table.schema, ledger, rng=np.random.default_rng(seed))
        z = ledger.mechanisms[0].noise_multiplier
        errors.append((stats["x"].missing_share - true) * len(table.frame) / z)
    return float(np.sqrt(np.mean(np.square(errors))))


def test_the_bounds_histogram_missing_bin_is_averaged_into_the_missing_share():
    """Without declared bounds, the bounds histogram's free missing bin is a second count of the
    missing values: the share's error, relative to the noise, falls by about 1/√2."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    x[rng.random(600) < 0.1] = np.nan
    frame = pd.DataFrame({"x": x})
    declared = _missing_error(prepare_table(frame, bounds={"x": (-4, 4)}), np.isnan(x).mean())
    found = _missing_error(prepare_table(frame), np.isnan(x).mean())
    assert found < 0.85 * declared


def test_datetime_bounds_are_calendar_years():
    days = pd.Series(pd.date_range("2020-01-01", "2024-02-05", freq="D"))
    table = prepare_table(pd.DataFrame({"visit": days, "x": np.arange(len(days))}))
    ledger = PrivacyLedger(PrivacyBudget(3.0, 1e-6))
    stats = dp_stats(table.frame, table.schema, ledger, rng=np.random.default_rng(0))
    lower, upper = (pd.Timestamp(v, unit="s") for v in (stats["visit"].lower, stats["visit"].upper))
    assert lower == pd.Timestamp("2020-01-01") and upper == pd.Timestamp("2025-01-01")


def test_a_value_held_by_one_row_is_not_released():
    frame = pd.DataFrame({"c": ["common"] * 400 + ["rare"], "x": np.arange(401.0)})
    table = prepare_table(frame)
    released = 0
    for seed in range(50):
        ledger = PrivacyLedger(PrivacyBudget(5.0, 1e-6))
        stats = dp_stats(table.frame, table.schema, ledger, rng=np.random.default_rng(seed))
        released += "rare" in stats["c"].categories
        assert "common" in stats["c"].categories
    assert released == 0
    assert ledger.spent()["delta"] <= 1e-6


def test_no_category_released_at_a_tiny_budget_names_the_column():
    frame = pd.DataFrame({"c": list("abcdefghij") * 5, "x": np.arange(50.0)})
    table = prepare_table(frame, "t.csv", types={"c": "categorical"})
    with pytest.raises(TableError, match="column 'c': no category passed"):
        dp_stats(table.frame, table.schema, PrivacyLedger(PrivacyBudget(0.01, 1e-6)))


def test_dp_bounds_and_quantiles_land_near_the_data():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(50, 10, 5000), "y": rng.exponential(3, 5000)})
    table = prepare_table(frame)
    stats = dp_stats(table.frame, table.schema, PrivacyLedger(PrivacyBudget(1.0, 1e-6)), rng=rng)
    assert 8 <= stats["x"].lower <= 30 and 70 <= stats["x"].upper <= 130
    middle = np.interp(0.5, stats["x"].levels, stats["x"].knots)
    assert abs(middle - 50) < 5


def test_noisy_cdf_is_monotone_and_invertible():
    levels = noisy_cdf(np.array([5.0, -3.0, 10.0, 0.0, -1.0]))
    assert levels[0] == 0 and levels[-1] == pytest.approx(1)
    assert np.all(np.diff(levels) > 0)


def test_bounds_grow_over_adjacent_bins_only():
    values = np.concatenate([np.full(300, 100.0), np.full(200, 150.0), np.full(100, 300.0)])
    lower, upper, fallback, _ = _bounds(values, 1e-3, np.random.default_rng(0))
    assert not fallback
    assert (lower, upper) == (GRID[GRID <= 100].max(), GRID[GRID > 150].min())


def test_bounds_of_a_column_that_crosses_zero_cover_both_sides():
    values = np.random.default_rng(0).normal(size=1500)
    lower, upper, fallback, _ = _bounds(values, 0.9, np.random.default_rng(1))
    assert not fallback and lower < -2 and upper > 2


def test_a_noise_spike_across_zero_does_not_stretch_positive_bounds():
    values = np.random.default_rng(0).uniform(1, 3, 400)
    for seed in range(50):
        lower, upper, _, _ = _bounds(values, 5.0, np.random.default_rng(seed))
        assert lower > 0.5
