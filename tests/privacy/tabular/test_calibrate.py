"""Calibration: raking weights bring a skewed pool of rows to the target marginals, and the
weighted subset keeps distinct rows in order."""

import numpy as np
from scipy.special import ndtr

from synthset.privacy.tabular.calibrate import margins, rake, weighted_subset


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
