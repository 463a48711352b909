"""The audit tells a copy of the training rows from fresh rows of the same population."""

import numpy as np
import pytest

from synthset.privacy.tabular.audit import audit, exact_matches, random_rows
from synthset.privacy.tabular.gate import GateConfig, evaluate
from synthset.privacy.tabular.schema import prepare_table
from tests.privacy.conftest import mixed_frame


@pytest.fixture(scope="module")
def population():
    table = prepare_table(mixed_frame(900, seed=5), identifiers=["patient"], target="risk")
    f = table.frame
    return table.schema, f.iloc[:300], f.iloc[300:600].reset_index(drop=True), f.iloc[600:]


def test_fresh_rows_look_private_and_useful(population):
    schema, train, holdout, fresh = population
    result = audit(train, holdout, fresh.reset_index(drop=True), schema, "risk", ["smoker"])
    m = result.metrics
    assert 0.4 < m["dcr_share"] < 0.6
    assert 0.4 < m["mia_auc"] < 0.6
    assert m["exact_matches"] == 0
    assert abs(m["tstr_gap"]) < 0.08
    assert m["column_shape_mean"] > 0.85 and m["correlation_difference"] < 0.1
    assert result.attribute[0]["column"] == "smoker" and result.attribute[0]["risk"] < 0.1
    assert evaluate(m, GateConfig()).passed


def test_copies_of_training_rows_are_caught_and_blocked(population):
    schema, train, holdout, _ = population
    copies = train.sample(frac=1.0, random_state=0)
    m = audit(train, holdout, copies, schema, "risk").metrics
    assert m["exact_match_rate"] == 1.0 and m["mia_auc"] > 0.95 and m["dcr_share"] > 0.9
    assert m["dcr_overfitting_protection"] < 0.2 and m["dcr_baseline_protection"] == 0
    gate = evaluate(m, GateConfig())
    assert not gate.passed
    assert any(r.startswith("mia_auc") for r in gate.reasons)


def test_exact_matches_count_rows_not_values(population):
    schema, train, _, _ = population
    one = train.iloc[[0]].copy()
    assert exact_matches(one, train, schema) == 1
    one.loc[one.index[0], "city"] = "elsewhere"
    assert exact_matches(one, train, schema) == 0


def test_random_baseline_stays_in_range(population):
    schema, train, _, _ = population
    rows = random_rows(train, schema, 500, seed=0)
    assert rows["age"].between(train["age"].min(), train["age"].max()).all()
    assert set(rows["city"]) <= set(train["city"])
    assert np.isfinite(rows["age"]).all()
