"""Calibration: raking weights bring a skewed pool of rows to the target marginals (overall or
within each class), and the weighted subset keeps distinct rows in order."""

import numpy as np
from scipy.special import ndtr

from synthset.privacy.tabular.calibrate import (
    class_margins,
    class_shares,
    inclusion,
    margins,
    rake,
    weighted_subset,
)


def test_raking_then_subsetting_matches_every_marginal():
    rng = np.random.default_rng(0)
    rows = 9000
    group = rng.choice(3, rows, p=[0.6, 0.3, 0.1])
    flag = (rng.random(rows) < np.where(group == 2, 0.7, 0.2)).astype(int)
    missing = (rng.random(rows) < 0.3).astype(int)
    x_num = np.where(missing[:, None] == 1, 0.0, rng.normal(0.5, 1.2, (rows, 1)))
    x_cat = np.stack([group, flag, missing], axis=1)
    priors = [np.array([0.4, 0.4, 0.2]), np.array([0.5, 0.5]), np.array([0.9, 0.1])]
    cells = margins(x_num, x_cat, priors, indicators=[2])
    keep = weighted_subset(rake(cells, rows, cap=3.0), 3000, np.random.default_rng(1))
    assert len(set(keep)) == 3000 and np.all(np.diff(keep) > 0)
    for j, p in enumerate(priors):
        seen = np.bincount(x_cat[keep, j], minlength=len(p)) / len(keep)
        assert np.abs(seen - p).max() < 0.03, j
    present = x_num[keep][x_cat[keep, 2] == 0, 0]
    levels = np.histogram(ndtr(present), bins=4, range=(0, 1))[0] / len(present)
    assert np.abs(levels - 0.25).max() < 0.04


def test_per_class_raking_keeps_what_each_class_looks_like():
    rng = np.random.default_rng(0)
    train_y = (rng.random(2000) < 0.1).astype(int)
    train_flag = (rng.random(2000) < np.where(train_y == 1, 0.8, 0.2)).astype(int)
    train_x = rng.normal(np.where(train_y == 1, 0.5, -0.1), 0.8)[:, None]
    shares = class_shares(train_x, train_flag[:, None], train_y, 2, [2], [-1])
    assert [s.shape for s in shares] == [(2, 2), (2, 21)]
    assert np.isclose(shares[0].sum(), 1) and np.isclose(shares[0][1].sum(), train_y.mean())
    pool_y = (rng.random(9000) < 0.1).astype(int)
    pool_flag = (rng.random(9000) < np.where(pool_y == 1, 0.55, 0.35)).astype(int)
    pool_x = rng.normal(0, 1, (9000, 1))
    cells = class_margins(pool_x, pool_flag[:, None], pool_y, shares, [-1])
    keep = weighted_subset(rake(cells, 9000, cap=3.0), 3000, np.random.default_rng(1))
    for c in (0, 1):
        rows, train = keep[pool_y[keep] == c], train_y == c
        assert abs(pool_flag[rows].mean() - train_flag[train].mean()) < 0.05, c
        assert abs(np.median(pool_x[rows, 0]) - np.median(train_x[train, 0])) < 0.15, c


def test_sorting_by_strata_gives_each_stratum_its_expected_rows():
    rng = np.random.default_rng(0)
    group = rng.choice(5, 9000, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    flag = (rng.random(9000) < 0.04).astype(int)
    weights = rng.gamma(2.0, 1.0, 9000)
    p = inclusion(weights, 3000)
    plain = weighted_subset(weights, 3000, np.random.default_rng(1))
    sorted_ = weighted_subset(weights, 3000, np.random.default_rng(1), [flag, group])
    assert len(set(sorted_)) == 3000 and np.all(np.diff(sorted_) > 0)
    for key in (flag, group):
        expected = np.bincount(key, weights=p)
        assert np.abs(np.bincount(key[sorted_], minlength=len(expected)) - expected).max() <= 2
    expected = np.bincount(group, weights=p)
    assert np.abs(np.bincount(group[plain], minlength=5) - expected).max() > 5
