"""Bad private tables and release configs never crash: `synthset tabular ...` exits 2 with one
line naming the file (and row and column where there is one), within a second."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthset.cli import main
from tests.privacy.conftest import mixed_frame


def refused(args: list[str], capsys: pytest.CaptureFixture[str], names: Path) -> str:
    start = time.perf_counter()
    code = main(["tabular", *map(str, args)])
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2, out
    assert err.count("\n") == 1 and err.startswith("synthset: error: "), err
    assert str(names) in err and "Traceback" not in err
    assert seconds < 1.0
    return err.strip()


def csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


@pytest.fixture(scope="module", autouse=True)
def _imported() -> None:
    """The release config's modules import torch once per process; the second is what counts."""
    import synthset.privacy.tabular.config  # noqa: F401
    import synthset.privacy.tabular.release  # noqa: F401


@pytest.fixture
def good() -> pd.DataFrame:
    return mixed_frame().drop(columns=["patient"])


def test_a_repeated_header_name_is_refused_not_renamed(tmp_path, good, capsys):
    text = csv_text(good).replace("income,", "age,", 1)
    (tmp_path / "t.csv").write_text(text)
    line = refused(["inspect", tmp_path / "t.csv"], capsys, tmp_path / "t.csv")
    assert "line 1: column 'age' appears more than once" in line
    text = csv_text(good).replace("income,", ",", 1)
    (tmp_path / "t.csv").write_text(text)
    assert "line 1: column 2 has no name" in refused(
        ["inspect", tmp_path / "t.csv"], capsys, tmp_path / "t.csv"
    )


@pytest.mark.parametrize("value", [np.inf, -np.inf])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_infinite_numbers_are_refused_with_row_and_column(tmp_path, good, value, suffix, capsys):
    good.loc[7, "income"] = value
    path = tmp_path / f"t{suffix}"
    if suffix == ".csv":
        path.write_text(csv_text(good))
    else:
        good.to_parquet(path)
    line = refused(["inspect", path], capsys, path)
    assert f"row 8: column 'income': value {value!r} is not a finite number" in line


def test_inf_text_declared_numeric_is_refused(tmp_path, capsys):
    frame = pd.DataFrame({"x": ["1.5", "2", "inf"] * 20, "y": ["a", "b", "c"] * 20})
    (tmp_path / "t.csv").write_text(csv_text(frame))
    line = refused(
        ["inspect", tmp_path / "t.csv", "--type", "x=numeric"], capsys, tmp_path / "t.csv"
    )
    assert "row 3: column 'x': value inf is not a finite number" in line


TABLES = {
    "empty CSV": ("t.csv", b"", "the file is empty; the first line must name the columns"),
    "blank first line": ("t.csv", b"\na,b\n1,2\n", "line 1: the first line must name the columns"),
    "header only": ("t.csv", b"a,b\n", "the table is empty"),
    "latin-1": ("t.csv", "a,b\ncafé,1\nthé,2\n".encode("latin-1"), "byte 0xE9 is not UTF-8"),
    "UTF-16 without a mark": ("t.csv", "a,b\nx,1\n".encode("utf-16-le"), "a NUL byte"),
    "ragged rows": ("t.csv", b"a,b\n1,2\n3,4,5\n", "cannot be read: Error tokenizing data"),
    "empty Parquet": ("t.parquet", b"", "cannot be read"),
    "corrupt Parquet": ("t.parquet", b"PAR1" + bytes(range(256)) + b"PAR1", "cannot be read"),
    "nested Parquet": (
        "t.parquet",
        pa.table({"a": [{"x": 1}, {"x": 2}], "b": [1.0, 2.0]}),
        "column 'a': holds nested values",
    ),
    "Parquet of no rows": ("t.parquet", pa.table({"a": pa.array([], pa.int64())}), "empty"),
    "a huge number": (
        "t.csv",
        ("a,b\n" + "\n".join(f"{'9' * 5000 if i == 3 else i},{i % 3}" for i in range(60))).encode(),
        "row 4: column 'a': value '9999",
    ),
}


@pytest.mark.parametrize("case", TABLES, ids=list(TABLES))
def test_malformed_tables_are_one_line(tmp_path, case, capsys):
    name, content, expected = TABLES[case]
    path = tmp_path / name
    if isinstance(content, pa.Table):
        pq.write_table(content, path)
    else:
        path.write_bytes(content)
    args = ["inspect", path, *(["--type", "a=numeric"] if case == "a huge number" else [])]
    line = refused(args, capsys, path)
    assert expected in line
    assert len(line) < 400


def test_a_table_with_a_byte_order_mark_is_read(tmp_path, good, capsys):
    (tmp_path / "t.csv").write_bytes(csv_text(good).encode("utf-16"))
    assert main(["tabular", "inspect", str(tmp_path / "t.csv")]) == 0
    assert "240 rows, 6 modelled columns" in capsys.readouterr().out


# --- release configs ------------------------------------------------------------------------


@pytest.fixture
def table(tmp_path, good) -> Path:
    path = tmp_path / "t.csv"
    path.write_text(csv_text(good))
    return path


CONFIGS = {
    "repeated key": (
        "dataset: x\ndata: t.csv\nholdout: 0.3\nholdout: 0.5\n",
        "line 4: invalid YAML: duplicate key 'holdout'",
    ),
    "unknown key": (
        "dataset: x\ndata: t.csv\nsynthesizer: {stepz: 3}\n",
        "field 'synthesizer.stepz': unknown field; allowed: ",
    ),
    "alias bomb": (
        "dataset: x\ndata: t.csv\ndescription: x\n"
        "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n",
        "aliases expand to more than 10,000",
    ),
    "deep": (
        "dataset: x\ndata: t.csv\ntypes: " + "{a: " * 200 + "}" * 200 + "\n",
        "nested more than 64",
    ),
    "huge integer": (
        "dataset: x\ndata: t.csv\nseed: " + "7" * 4400 + "\n",
        "an integer of 4400 digits",
    ),
    "not a mapping": ("- dataset\n- data\n", "expected a mapping"),
    "cp1252": (
        "dataset: “x”\ndata: t.csv\n".encode("cp1252"),
        "byte 9 (line 1): byte 0x93 is not UTF-8",
    ),
}


@pytest.mark.parametrize("case", CONFIGS, ids=list(CONFIGS))
def test_malformed_release_configs_are_one_line(tmp_path, table, case, capsys):
    text, expected = CONFIGS[case]
    config = tmp_path / "release.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert expected in refused(["validate", config], capsys, config)


def test_validate_reads_the_table_and_splits_it(tmp_path, table, capsys):
    (tmp_path / "release.yaml").write_text("dataset: x\ndata: t.csv\nholdout: 0.25\n")
    assert main(["tabular", "validate", str(tmp_path / "release.yaml")]) == 0
    out = capsys.readouterr().out
    assert "240 rows (180 training, 60 holdout), 6 modelled columns" in out


def test_run_refuses_a_bad_table_before_asking_any_server(tmp_path, good, capsys):
    good.loc[3, "income"] = np.inf
    (tmp_path / "t.csv").write_text(csv_text(good))
    (tmp_path / "release.yaml").write_text("dataset: x\ndata: t.csv\n")
    args = [
        "run",
        tmp_path / "release.yaml",
        "--tracking-uri",
        "http://127.0.0.1:9",
        "--no-prefect",
    ]
    line = refused(args, capsys, tmp_path / "t.csv")
    assert "row 4: column 'income': value inf is not a finite number" in line
