"""The tabular bench judges each DP bar fit by fit: one fit off the bar is a MISS even when
the mean over fits meets it."""

from bench.tabular_quality import bars


def _mixed(missing: list[float]) -> dict:
    fits = [{"lost": {}, "missing_diff": {"age": m}, "share_diff": {}} for m in missing]
    return {"dataset": "mixed", "method": "synthset DP ε=3", "per_fit": fits, "lost": []}


def test_one_fit_off_the_bar_is_a_miss():
    lines = bars([_mixed([1.0, -3.75, 0.5])])
    assert lines[0].startswith("PASS") and "(3/3 fits)" in lines[0]
    assert lines[1].startswith("MISS") and "worst 1.0, 3.8, 0.5 (2/3 fits)" in lines[1]


def test_every_fit_within_the_bar_passes():
    assert bars([_mixed([1.0, 2.9])])[1].startswith("PASS")
