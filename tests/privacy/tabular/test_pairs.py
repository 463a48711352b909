"""DP two-way margins: the select step finds the pair the priors get wrong, the measure step
releases its joint shares, and calibration makes sampled rows follow them."""

import numpy as np
import pandas as pd

from synthset.privacy.dp import PrivacyBudget, PrivacyLedger
from synthset.privacy.tabular.pairs import PairColumns, candidates, fit_margins, release_pairs
from synthset.privacy.tabular.schema import prepare_table
from synthset.privacy.tabular.synthesizer import TabularSynthesizer
from tests.privacy.conftest import TINY


def _columns(rows: int, seed: int = 0) -> PairColumns:
    """group (4 values) determines arm = group % 2; noise is independent of both; the two
    numeric columns (five bins each) are equal."""
    rng = np.random.default_rng(seed)
    group, noise, score = (
        rng.integers(0, 4, rows),
        rng.integers(0, 3, rows),
        rng.integers(0, 5, rows),
    )
    cells = [group, group % 2, noise, score, score]
    margins = [
        np.full(4, 0.25),
        np.full(2, 0.5),
        np.full(3, 1 / 3),
        np.full(5, 0.2),
        np.full(5, 0.2),
    ]
    return PairColumns(
        cells,
        margins,
        ["group", "arm", "noise", "score", "score2"],
        [False, False, False, True, True],
    )


def test_numeric_pairs_are_left_to_the_copula():
    pairs = candidates(_columns(10))
    assert (3, 4) not in pairs and len(pairs) == 10 - 1


def test_the_dependent_pair_is_selected_and_measured_within_its_noise():
    columns = _columns(2000)
    ledger = PrivacyLedger(PrivacyBudget(epsilon=10.0, delta=1e-6))
    margins = release_pairs(columns, ledger, share=0.2, most=1, rng=np.random.default_rng(1))
    assert [(m.first, m.second) for m in margins] == [(0, 1)]
    truth = columns.counts(0, 1) / 2000
    assert np.abs(margins[0].shares - truth).max() < 0.02
    names = [(m.name, m.steps) for m in ledger.mechanisms]
    assert names == [("pair selection", 10), ("pair margins", 1)]
    assert "group × arm" in ledger.mechanisms[1].covers


def test_a_measured_pair_keeps_its_dependence_on_the_one_way_margins():
    noisy = np.array([[0.30, 0.02, 0.0], [0.03, 0.40, 0.25]])
    fitted = fit_margins(noisy, np.array([0.4, 0.6]), np.array([0.3, 0.3, 0.4]))
    np.testing.assert_allclose(fitted.sum(1), [0.4, 0.6], atol=1e-3)
    np.testing.assert_allclose(fitted.sum(0), [0.3, 0.3, 0.4], atol=1e-3)
    assert fitted[0, 2] == 0 and fitted[0, 0] > fitted[0, 1] and fitted[1, 1] > fitted[1, 0]


def test_independent_pairs_are_not_worth_their_noise_at_a_small_budget():
    columns = _columns(300)
    columns.cells[1] = np.random.default_rng(3).integers(0, 2, 300)
    ledger = PrivacyLedger(PrivacyBudget(epsilon=1.0, delta=1e-6))
    assert release_pairs(columns, ledger, share=0.2, most=3, rng=np.random.default_rng(2)) == []
    assert [m.name for m in ledger.mechanisms] == ["pair selection"]


def test_dp_samples_keep_a_deterministic_pair_that_the_priors_miss(tmp_path):
    rng = np.random.default_rng(0)
    group = rng.choice(["a", "b", "c", "d"], 1500)
    frame = pd.DataFrame(
        {
            "group": group,
            "arm": np.where(np.isin(group, ["a", "c"]), "x", "y"),
            "value": rng.normal(size=1500),
        }
    )
    table = prepare_table(frame)
    settings = TINY | {"steps": 3, "dp_draws": 1, "epsilon": 20.0}

    def consistent(synthesizer: TabularSynthesizer) -> float:
        rows = synthesizer.sample(600, seed=0)
        return float((np.isin(rows["group"], ["a", "c"]) == (rows["arm"] == "x")).mean())

    without = TabularSynthesizer(**settings, pairs=0).fit(table.frame, table.schema)
    with_pairs = TabularSynthesizer(**settings).fit(table.frame, table.schema)
    assert consistent(without) < 0.7
    assert consistent(with_pairs) > 0.95
    again = TabularSynthesizer.load(with_pairs.save(tmp_path / "model"))
    pd.testing.assert_frame_equal(again.sample(50, seed=4), with_pairs.sample(50, seed=4))


def test_no_pairs_are_released_when_calibration_is_off(frame):
    table = prepare_table(frame, identifiers=["patient"], target="risk")
    settings = TINY | {"steps": 2, "dp_draws": 1, "calibrate": False}
    synthesizer = TabularSynthesizer(**settings, epsilon=5.0).fit(table.frame, table.schema)
    names = [m["name"] for m in synthesizer.privacy()["mechanisms"]]
    assert not any(name.startswith("pair") for name in names) and not synthesizer.pair_margins


def test_a_dp_model_saved_before_pairs_existed_still_loads(tmp_path, frame):
    """Its config has no `pairs` and the old split (0.5 + 0.4), which with the new default
    pair share would leave DP-SGD nothing: it was fitted without pairs, and loads so."""
    import json

    from synthset.privacy.tabular.synthesizer import CONFIG

    table = prepare_table(frame, identifiers=["patient"], target="risk")
    settings = TINY | {"steps": 2, "dp_draws": 1, "pairs": 0, "prior_share": 0.4}
    fitted = TabularSynthesizer(**settings, epsilon=5.0).fit(table.frame, table.schema)
    folder = fitted.save(tmp_path / "old")
    meta = json.loads((folder / CONFIG).read_text())
    for key in ("pairs", "pair_share"):
        del meta["config"][key]
    del meta["pairs"]
    (folder / CONFIG).write_text(json.dumps(meta))
    again = TabularSynthesizer.load(folder)
    assert again.config.pairs == 0 and again.pair_margins == []
    pd.testing.assert_frame_equal(again.sample(20, seed=1), fitted.sample(20, seed=1))
