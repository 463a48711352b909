"""Privacy accounting: the composition of every mechanism stays within the budget."""

import pytest

from synthset.privacy.dp import Mechanism, PrivacyBudget, PrivacyLedger, compose_epsilon


def test_gaussian_composition_matches_known_values():
    one = compose_epsilon([Mechanism("g", "", 1.0)], 1e-5)
    many = compose_epsilon([Mechanism("g", "", 1.0, steps=4)], 1e-5)
    assert 3.5 < one < 5.5 and many > one


def test_preprocessing_share_and_sgd_fill_the_budget():
    ledger = PrivacyLedger(PrivacyBudget(epsilon=2.0, delta=1e-6, preprocessing_share=0.2))
    z = ledger.preprocessing_noise(10)
    ledger.add(Mechanism("pre", "", z, 1.0, 10))
    alone = ledger.spent()["epsilon"]
    assert 0 < alone < 2.0
    sigma = ledger.sgd_noise(sample_rate=0.1, steps=200)
    ledger.add(Mechanism("dp-sgd", "", sigma, 0.1, 200))
    assert ledger.spent()["epsilon"] == pytest.approx(2.0, rel=2e-3)
    assert ledger.spent()["epsilon"] <= 2.0 + 1e-9
