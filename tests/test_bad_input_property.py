"""The bad-input contract, checked on generated inputs: for any manifest, items file, table or
release config, valid or mutated (wrong types, unknown keys, other encodings, deep nesting,
huge integers, aliases, repeated or conflicting columns, corrupt bytes), the CLI exits 0, or
exits 2 with exactly one line on stderr naming the file, never a traceback, within a second.

Each case is one valid input with at most one mutation, so that most mutations are met on
inputs that are otherwise fine and about a third of the cases are accepted.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthset.cli import main

CASES = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SECONDS = 1.0
ENCODINGS = ["utf-8-sig", "utf-16", "utf-32", "utf-16-le", "utf-32-be", "latin-1", "cp1252"]


def check_contract(args: list[str], folder: Path) -> int:
    """Run the CLI in process; exit 0, or exit 2 and one line naming a file of `folder`."""
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    seconds = time.perf_counter() - start
    message = err.getvalue()
    assert code in (0, 2), (code, message)
    assert "Traceback" not in message
    if code == 2:
        assert message.count("\n") == 1 and message.startswith("synthset: error: "), message
        assert message.splitlines() == [message.rstrip("\n")], message
        assert str(folder) in message, message
    else:
        assert out.getvalue().startswith(("ok: ", str(folder))), out.getvalue()
    assert seconds < SECONDS, (seconds, message)
    return code


def in_folder(write: Callable[[Path], list[str]]) -> int:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name).resolve()
        return check_contract(write(folder), folder)


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Import once what a first call imports, so each case is timed on its own work."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "manifest.yaml"
        path.write_text("dataset: warm\nitems: [{prompt: x}]\n")
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["validate", str(path)]) == 0
    import synthset.privacy.tabular.release  # noqa: F401


# --- values and mutations shared by every kind of file ----------------------------------------

TEXT = st.text(max_size=16)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
VALUE = st.recursive(
    SCALAR, lambda v: st.lists(v, max_size=3) | st.dictionaries(TEXT, v, max_size=3), max_leaves=6
)
"""Any value where a type is expected (wrong types), and free metadata."""
NAME = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,12}", fullmatch=True)
MARKERS = {
    "huge": "__HUGE__",
    "deep": "__DEEP__",
    "bomb": "__BOMB__",
}
STRUCTURE_MUTATIONS = ["value", "key", "huge", "deep", "bomb", "duplicate", "encoding", "bytes"]
"""Mutations of a YAML or JSON file (a manifest, a release config)."""


def _mappings(value: Any) -> list[dict[str, Any]]:
    found = [value] if isinstance(value, dict) else []
    children = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    )
    for child in children:
        found += _mappings(child)
    return found


def mutate_structure(draw: st.DrawFn, data: dict[str, Any], mutation: str) -> None:
    """A wrong value or an unknown key in one mapping, or a marker `render` replaces."""
    if mutation not in ("value", "key", *MARKERS):
        return
    target = draw(st.sampled_from(_mappings(data)))
    known = list(target) if mutation != "key" else []
    key = draw(st.sampled_from(known)) if known else draw(TEXT)
    target[key] = MARKERS[mutation] if mutation in MARKERS else draw(VALUE)


def render(draw: st.DrawFn, data: Any, kind: str, mutation: str) -> str:
    """YAML or JSON text of `data`, markers replaced by what no serializer writes: integers of
    thousands of digits, nesting thousands deep, aliases expanding up to 9**9 values."""
    text = yaml.safe_dump(data, allow_unicode=True) if kind == "yaml" else json.dumps(data)
    depth = draw(st.integers(60, 3000)) if mutation == "deep" else 1
    levels, width = draw(st.integers(1, 9)), draw(st.integers(2, 9))
    bomb = ", ".join(
        f"&a{n} [" + ", ".join([f"*a{n - 1}" if n else "lol"] * width) + "]" for n in range(levels)
    )
    replacements = {
        "__HUGE__": "9" * draw(st.integers(60, 6000)) if mutation == "huge" else "1",
        "__DEEP__": "[" * depth + "]" * depth,
        "__BOMB__": f"[{bomb}]" if kind == "yaml" else "[]",
        "__ANCHOR__": "&shared {k: 1}" if kind == "yaml" else '{"k": 1}',
        "__ALIAS__": "*shared" if kind == "yaml" else '{"k": 1}',
    }
    for marker, value in replacements.items():
        text = text.replace(f'"{marker}"', value).replace(f"'{marker}'", value)
        text = text.replace(marker, value)
    if mutation == "duplicate":
        first = next(iter(data))
        extra = json.dumps({first: data[first]})
        text = (
            text + "\n" + extra[1:-1] + "\n"
            if kind == "yaml"
            else "{" + extra[1:-1] + ", " + text[1:]
        )
    return text


def to_bytes(draw: st.DrawFn, text: str, mutation: str) -> bytes:
    """UTF-8, another encoding, or UTF-8 with a few bytes overwritten."""
    if mutation == "encoding":
        return text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    data = text.encode()
    if mutation == "bytes":
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at + 1 :]
    return data


def pick(draw: st.DrawFn, mutations: list[str]) -> str:
    """No mutation in about a third of the cases, else one of `mutations`."""
    return draw(st.sampled_from(["none"] * (len(mutations) // 2) + mutations))


# --- manifests ------------------------------------------------------------------------------


@st.composite
def items(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for i in range(draw(st.integers(1, 3))):
        row: dict[str, Any] = {"prompt": f"{draw(TEXT)} {i}"}
        if draw(st.booleans()):
            row["count"] = draw(st.sampled_from([1, 2, 5, 1_000_000 // (i + 1)]))
        if draw(st.booleans()):
            row["seed"] = draw(st.integers(0, 2**31 - 1))
        if draw(st.booleans()):
            row["tags"] = draw(st.lists(TEXT, max_size=3))
        if draw(st.booleans()):
            row["metadata"] = draw(st.dictionaries(TEXT, VALUE, max_size=3))
        rows.append(row)
    return rows


SLOTS = ["colour", "digit", "background", "seed", "a"]
WORD = st.text(st.characters(blacklist_characters="{}"), min_size=1, max_size=8)


@st.composite
def vocabulary(draw: st.DrawFn) -> Any:
    """A list of values, a mapping {text: label or columns}, or more values than max_images
    allows two slots of; sometimes empty, repeated or null."""
    kind = draw(st.sampled_from(["words", "numbers", "labels", "columns", "large", "any"]))
    if kind == "words":
        return draw(st.lists(WORD, min_size=1, max_size=4, unique=True))
    if kind == "numbers":
        return draw(st.lists(st.integers(0, 9), min_size=1, max_size=4, unique=True))
    if kind == "large":
        return list(range(1001))
    if kind == "any":
        return draw(st.lists(SCALAR, max_size=3))
    label = st.one_of(WORD, st.integers(0, 99), st.booleans(), st.floats(allow_nan=False))
    labels = label if kind == "labels" else st.dictionaries(WORD, VALUE, max_size=2)
    return draw(st.dictionaries(WORD, labels, min_size=1, max_size=4))


@st.composite
def templates(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Templates whose slots and vocabularies mostly agree, with every way of counting."""
    found = []
    for _ in range(draw(st.integers(1, 2))):
        slots = draw(st.lists(st.sampled_from(SLOTS), min_size=1, max_size=3, unique=True))
        odd = ["{", "}", "{0} ", "{x!r} ", "{colour:>3} ", "{{literal}} "]
        text = draw(st.sampled_from(["", "a ", "the "] * 4 + odd))
        text += " ".join(f"{{{slot}}}" for slot in slots) + draw(st.sampled_from(["", " x"]))
        names = [*slots, *draw(st.lists(st.sampled_from(SLOTS), max_size=1))]
        if draw(st.integers(0, 5)) == 5:
            names.remove(slots[0])
        template: dict[str, Any] = {
            "template": text,
            "vocabularies": {name: draw(vocabulary()) for name in dict.fromkeys(names)},
        }
        template["expand"] = draw(st.sampled_from(["product", "sample", "zip"]))
        if template["expand"] == "sample" or draw(st.integers(0, 5)) == 5:
            template["combinations"] = draw(st.sampled_from([1, 2, 5, 2 * 10**6]))
        for field, values in {
            "count": st.sampled_from([1, 2, 10**6]),
            "count_total": st.sampled_from([1, 6, 12, 10**6]),
            "seed": st.integers(0, 2**31 - 1),
            "metadata": st.dictionaries(WORD, VALUE, max_size=2),
            "tags": st.lists(TEXT, max_size=2),
        }.items():
            if draw(st.integers(0, 2)) == 2:
                template[field] = draw(values)
        found.append(template)
    return found


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    manifest: dict[str, Any] = {"dataset": draw(NAME), "items": draw(items())}
    if draw(st.booleans()):
        manifest["templates"] = draw(templates())
        if draw(st.booleans()):
            del manifest["items"]
    if draw(st.booleans()):
        manifest["generator"] = {
            "steps": draw(st.integers(1, 50)),
            "scheduler": draw(st.sampled_from(["ddim", "euler", "dpmpp"])),
            "batch_size": draw(st.integers(1, 8)),
        }
    if draw(st.booleans()):
        manifest["curation"] = {"enabled": draw(st.booleans()), "attempt_budget": 1}
    if len(manifest.get("items", [])) > 1 and draw(st.booleans()):
        manifest["items"][0]["metadata"] = "__ANCHOR__"
        manifest["items"][1]["metadata"] = "__ALIAS__"
    return manifest


@CASES
@given(st.data())
def test_any_manifest_is_accepted_or_refused_in_one_line(data: st.DataObject) -> None:
    draw = data.draw
    manifest = draw(manifests())
    mutation = pick(draw, STRUCTURE_MUTATIONS)
    mutate_structure(draw, manifest, mutation)
    kind = draw(st.sampled_from(["yaml", "json"]))
    content = to_bytes(draw, render(draw, manifest, kind, mutation), mutation)

    def write(folder: Path) -> list[str]:
        path = folder / f"manifest.{kind}"
        path.write_bytes(content)
        return ["validate", str(path)]

    in_folder(write)


# --- items files ----------------------------------------------------------------------------

GOOD_CELLS = {
    "prompt": TEXT.map(lambda t: t + " p"),
    "count": st.sampled_from(["", "1", "2", "40"]),
    "seed": st.integers(0, 2**31 - 1).map(str),
    "tags": st.sampled_from(["", "a;b", '["x", "y"]']),
    "metadata": st.sampled_from(["", '{"a": 1}', '{"b": [1, 2]}']),
    "metadata.k": TEXT,
    "negative_prompt": TEXT,
}
BAD_CELLS = st.sampled_from(["x", "-3", "0", "9" * 70, "[" * 300 + "]" * 300, "{oops", "[1"])
ITEMS_MUTATIONS = [
    "repeat", "dotted", "blank", "unknown", "cell", "ragged", "no rows", "cut", "encoding", "bytes",
]  # fmt: skip


@st.composite
def item_table(draw: st.DrawFn, mutation: str) -> tuple[list[str], list[list[str]]]:
    optional = draw(st.lists(st.sampled_from(list(GOOD_CELLS)[1:]), max_size=3, unique=True))
    names = ["prompt", *optional]
    n = 0 if mutation == "no rows" else draw(st.integers(1, 4))
    rows = [[draw(GOOD_CELLS[name]) for name in names] for _ in range(n)]
    if mutation == "repeat":
        names.append(draw(st.sampled_from(names)))
    elif mutation == "dotted":
        names.append(draw(st.sampled_from(names)).partition(".")[0] + ".x")
    elif mutation in ("blank", "unknown"):
        names.append("" if mutation == "blank" else draw(TEXT))
    if len(names) > len(optional) + 1:
        rows = [[*row, draw(TEXT)] for row in rows]
    if mutation == "cell" and rows:
        draw(st.sampled_from(rows))[draw(st.integers(0, len(names) - 1))] = draw(BAD_CELLS)
    return names, rows


def csv_bytes(draw: st.DrawFn, names: list[str], rows: list[list[str]], mutation: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(names)
    for row in rows:
        writer.writerow([*row, "extra"] if mutation == "ragged" else row)
    text = buffer.getvalue()
    return to_bytes(
        draw, text[: draw(st.integers(0, len(text)))] if mutation == "cut" else text, mutation
    )


def jsonl_bytes(draw: st.DrawFn, names: list[str], rows: list[list[str]], mutation: str) -> bytes:
    lines = [json.dumps(dict(zip(names, row, strict=True))) for row in rows]
    if mutation == "ragged" and lines:
        lines[-1] = draw(
            st.sampled_from(["[1]", "3", lines[-1][:-1], '{"prompt": ' + "9" * 5000 + "}"])
        )
    text = "\n".join(lines)
    return to_bytes(
        draw, text[: draw(st.integers(0, len(text)))] if mutation == "cut" else text, mutation
    )


def parquet_bytes(draw: st.DrawFn, names: list[str], rows: list[list[str]], mutation: str) -> bytes:
    arrays = [pa.array([row[i] for row in rows], pa.string()) for i in range(len(names))]
    if "count" in names and draw(st.booleans()):
        counts = [
            draw(st.integers(1, 50) if mutation != "cell" else st.integers(-5, 2**40)) for _ in rows
        ]
        arrays[names.index("count")] = pa.array(counts, pa.int64())
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, names=names), sink)
    data = sink.getvalue()
    if mutation == "cut":
        data = data[: draw(st.integers(0, len(data) - 1))]
    if mutation == "bytes":
        at = draw(st.integers(0, len(data) - 4))
        data = data[:at] + draw(st.binary(min_size=4, max_size=4)) + data[at + 4 :]
    return data


@CASES
@given(st.data())
def test_any_items_file_is_accepted_or_refused_in_one_line(data: st.DataObject) -> None:
    draw = data.draw
    suffix = draw(st.sampled_from([".csv", ".jsonl", ".parquet"]))
    mutation = pick(draw, ITEMS_MUTATIONS)
    names, rows = draw(item_table(mutation))
    write_items = {".csv": csv_bytes, ".jsonl": jsonl_bytes, ".parquet": parquet_bytes}[suffix]
    content = write_items(draw, names, rows, mutation)
    manifest = f"dataset: d\nitems_from: items{suffix}\ncuration: {{attempt_budget: 1}}\n"

    def write(folder: Path) -> list[str]:
        (folder / f"items{suffix}").write_bytes(content)
        (folder / "manifest.yaml").write_text(manifest)
        return ["validate", str(folder / "manifest.yaml")]

    in_folder(write)


# --- tables and release configs -------------------------------------------------------------

TABLE_MUTATIONS = [
    "inf", "nan", "repeat", "blank", "newline", "nested", "no rows", "cut", "encoding", "bytes",
]  # fmt: skip


@st.composite
def tables(draw: st.DrawFn, mutation: str) -> pa.Table:
    n = 0 if mutation == "no rows" else draw(st.sampled_from([80, 100, 150]))
    age = [float(i % 17) + 0.25 * (i % 4) for i in range(n)]
    if mutation in ("inf", "nan") and n:
        special = {"inf": draw(st.sampled_from([float("inf"), float("-inf")])), "nan": float("nan")}
        age[draw(st.integers(0, n - 1))] = special[mutation]
    columns: dict[str, Any] = {
        "age": age,
        "city": [["north", "south", "east"][i % 3] for i in range(n)],
        "flag": [i % 2 == 0 for i in range(n)],
    }
    if mutation == "nested":
        columns["nested"] = [{"x": i} for i in range(n)]
    return pa.table(columns)


def table_bytes(draw: st.DrawFn, table: pa.Table, suffix: str, mutation: str) -> bytes:
    if suffix == ".parquet":
        sink = io.BytesIO()
        pq.write_table(table, sink)
        data = sink.getvalue()
        return data[: draw(st.integers(0, len(data) - 1))] if mutation == "cut" else data
    text = table.to_pandas().to_csv(index=False)
    header = {"repeat": "age", "blank": "", "newline": '"a\nb"'}.get(mutation)
    if header is not None:
        text = text.replace("city", header, 1)
    if mutation == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    return to_bytes(draw, text, mutation)


@CASES
@given(st.data())
def test_any_table_or_release_config_is_accepted_or_refused_in_one_line(
    data: st.DataObject,
) -> None:
    draw = data.draw
    command = draw(st.sampled_from(["inspect", "validate"]))
    suffix = draw(st.sampled_from([".csv", ".parquet"]))
    table_mutation = pick(draw, TABLE_MUTATIONS)
    config_mutation = pick(draw, STRUCTURE_MUTATIONS) if command == "validate" else "none"
    content = table_bytes(draw, draw(tables(table_mutation)), suffix, table_mutation)
    config: dict[str, Any] = {"dataset": draw(NAME), "data": f"t{suffix}", "holdout": 0.25}
    mutate_structure(draw, config, config_mutation)
    config_text = render(draw, config, "yaml", config_mutation)
    config_bytes = to_bytes(draw, config_text, config_mutation)

    def write(folder: Path) -> list[str]:
        (folder / f"t{suffix}").write_bytes(content)
        (folder / "release.yaml").write_bytes(config_bytes)
        target = folder / (f"t{suffix}" if command == "inspect" else "release.yaml")
        return ["tabular", command, str(target)]

    in_folder(write)
