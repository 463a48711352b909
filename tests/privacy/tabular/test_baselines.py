"""The two comparison synthesizers produce tables of the right shape and kinds."""

import pytest

from synthset.privacy.tabular.baselines import GaussianCopula, SmoteInterpolation
from synthset.privacy.tabular.schema import prepare_table


@pytest.mark.parametrize("cls", [GaussianCopula, SmoteInterpolation])
def test_baseline_samples_the_schema(cls, frame):
    table = prepare_table(frame, identifiers=["patient"])
    rows = cls().fit(table.frame, table.schema).sample(100, seed=1)
    assert list(rows.columns) == table.schema.names and len(rows) == 100
    assert set(rows["city"]) <= {"north", "south", "east"}
    assert rows["age"].dtype.kind == "i"
    assert rows["income"].isna().any()
    again = cls().fit(table.frame, table.schema).sample(100, seed=1)
    assert rows.equals(again)
