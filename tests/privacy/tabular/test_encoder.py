"""The encoder: exact statistics decode what they encode; types come back as they were."""

import numpy as np
import pandas as pd

from synthset.privacy.tabular.encoder import TableEncoder, exact_stats, knot_count
from synthset.privacy.tabular.schema import prepare_table


def test_round_trip_keeps_values_kinds_and_missing(frame):
    table = prepare_table(frame, identifiers=["patient"], target="risk")
    encoder = TableEncoder(table.schema, exact_stats(table.frame, table.schema))
    data = encoder.encode(table.frame)
    assert data["x_num"].dtype == np.float32 and np.isfinite(data["x_num"]).all()
    assert encoder.category_sizes == [3, 2, 2]
    assert encoder.indicators == ["income"] and encoder.n_classes == 2
    back = encoder.decode(data["x_num"], data["x_cat"], data["y"])
    assert list(back.columns) == list(table.frame.columns)
    assert back["income"].isna().equals(table.frame["income"].isna())
    pd.testing.assert_series_equal(
        back["city"], table.frame["city"].astype(object), check_dtype=False
    )
    assert back["smoker"].dtype == bool and back["smoker"].equals(
        table.frame["smoker"].astype(bool)
    )
    assert back["age"].dtype == np.int64
    assert np.abs(back["age"] - table.frame["age"]).max() <= 2
    assert pd.api.types.is_datetime64_any_dtype(back["visit"])
    assert (back["risk"] == table.frame["risk"]).all()


def test_knots_are_far_fewer_than_rows():
    assert knot_count(300) == 10 and knot_count(3000) == 100 and knot_count(10**7) == 1000


def test_state_round_trip(frame):
    table = prepare_table(frame, identifiers=["patient"])
    encoder = TableEncoder(table.schema, exact_stats(table.frame, table.schema))
    arrays, meta = encoder.state()
    again = TableEncoder.from_state(arrays, meta)
    a, b = encoder.encode(table.frame), again.encode(table.frame)
    assert np.array_equal(a["x_num"], b["x_num"]) and np.array_equal(a["x_cat"], b["x_cat"])
