"""Loading private tables: inferred and declared kinds, identifiers, missing values, and the
one-line errors for inputs that cannot work."""

import numpy as np
import pandas as pd
import pytest

from synthset.privacy.errors import TableError
from synthset.privacy.tabular.schema import TableSchema, load_table, prepare_table, split_holdout


def kinds(table):
    return {c.name: c.kind for c in table.schema.columns}


def test_csv_kinds_are_inferred_and_identifiers_dropped(csv_file):
    table = load_table(csv_file, identifiers=["patient"], target="risk")
    assert kinds(table) == {
        "age": "numeric",
        "income": "numeric",
        "city": "categorical",
        "smoker": "boolean",
        "visit": "datetime",
        "risk": "categorical",
    }
    assert "patient" not in table.frame
    assert table.schema.column("age").integer
    assert table.schema.column("income").decimals == 2
    assert table.frame["income"].isna().sum() > 0
    assert table.schema.target == "risk"


def test_parquet_and_declared_kinds(tmp_path, frame):
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    table = load_table(path, identifiers=["patient"], types={"age": "categorical"})
    spec = table.schema.column("age")
    assert spec.kind == "categorical" and spec.declared
    assert not table.schema.column("city").declared


def test_schema_round_trips_through_json(csv_file):
    import json

    schema = load_table(csv_file, identifiers=["patient"]).schema
    assert TableSchema.from_dict(json.loads(schema.to_json())) == schema


def test_few_whole_values_and_pandas_categories_are_categorical():
    frame = pd.DataFrame(
        {
            "grade": [1, 2, 3, 1, 2, 3] * 10,
            "x": np.linspace(0, 1, 60),
            "site": pd.Categorical(["a", "b"] * 30, categories=["a", "b", "c"]),
        }
    )
    table = prepare_table(frame)
    assert kinds(table)["grade"] == "categorical"
    assert table.schema.column("site").categories == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("frame", "options", "expected"),
    [
        (pd.DataFrame({"a": []}), {}, "the table is empty"),
        (pd.DataFrame({"a": [1, 2], "b": [5, 5]}), {}, "column 'b': holds a single value (5)"),
        (pd.DataFrame({"a": [1, 2]}), {"types": {"a": "integer"}}, "unknown type 'integer'"),
        (pd.DataFrame({"a": [1, 2]}), {"types": {"zz": "numeric"}}, "column 'zz'"),
        (pd.DataFrame({"a": ["1", "x"]}), {"types": {"a": "numeric"}}, "row 2: column 'a'"),
        (pd.DataFrame({"a": ["2024-01-01", "soon"]}), {"types": {"a": "datetime"}}, "row 2"),
        (pd.DataFrame({"a": [1, 2]}), {"identifiers": ["nope"]}, "identifier column"),
        (pd.DataFrame({"a": np.linspace(0, 1, 20)}), {"bounds": {"a": (5, 1)}}, "lower"),
    ],
)
def test_bad_input_is_one_line_naming_file_and_column(frame, options, expected):
    with pytest.raises(TableError) as error:
        prepare_table(frame, "in.csv", **options)
    message = str(error.value)
    assert message.startswith("in.csv: ") and "\n" not in message
    assert expected in message
    if "unknown type" in expected:
        assert "numeric, categorical, boolean, datetime" in message


def test_free_text_column_must_be_declared():
    frame = pd.DataFrame({"name": [f"person {i}" for i in range(200)], "x": range(200)})
    with pytest.raises(TableError, match="looks like an identifier"):
        prepare_table(frame, "people.csv")


def test_unreadable_and_unknown_files(tmp_path):
    with pytest.raises(TableError, match="no such file"):
        load_table(tmp_path / "nope.csv")
    bad = tmp_path / "t.xlsx"
    bad.write_text("x")
    with pytest.raises(TableError, match="use .csv or .parquet"):
        load_table(bad)


def test_holdout_split_is_disjoint_and_too_few_rows_is_an_error(frame):
    table = prepare_table(frame, "t.csv", identifiers=["patient"])
    train, holdout = split_holdout(table, 0.25, seed=1)
    assert len(train) + len(holdout) == len(frame) and len(holdout) == 60
    small = prepare_table(frame.head(40), "t.csv", identifiers=["patient"])
    with pytest.raises(TableError, match="too few for the holdout") as error:
        split_holdout(small, 0.3)
    assert "t.csv" in str(error.value)
