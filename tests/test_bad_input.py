"""Bad input never crashes: each malformed manifest or items file gives exit 2 and one line
that names the file and the place, within a second; inputs stay in the manifest's folder."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from synthset.cli import main
from synthset.manifest import load_manifest
from synthset.plan import plan_size
from tests.conftest import write_manifest

ITEMS = "dataset: d\nitems:\n  - prompt: café au lait\n    count: 2\n"


def refused(path: Path, capsys: pytest.CaptureFixture[str], names: Path | None = None) -> str:
    """The one line `synthset validate path` prints, after checking exit 2 and speed."""
    start = time.perf_counter()
    code = main(["validate", str(path)])
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2, out
    assert err.count("\n") == 1 and err.startswith("synthset: error: "), err
    assert "Traceback" not in err
    assert str(names or path) in err
    assert seconds < 1.0
    return err.strip()


def accepted(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["validate", str(path)]) == 0
    return capsys.readouterr().out


# --- encodings ------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_a_byte_order_mark_names_the_encoding(tmp_path, encoding, capsys):
    path = tmp_path / "manifest.yaml"
    path.write_bytes(ITEMS.encode(encoding))
    assert "2 images" in accepted(path, capsys)
    assert load_manifest(path).items[0].prompt == "café au lait"


@pytest.mark.parametrize(
    ("encoding", "where"),
    [
        ("latin-1", "byte 33 (line 3): byte 0xE9 is not UTF-8"),
        ("cp1252", "byte 33 (line 3): byte 0xE9 is not UTF-8"),
        ("utf-16-le", "byte 1 (line 1): a NUL byte"),
        ("utf-32-be", "byte 0 (line 1): a NUL byte"),
    ],
)
def test_other_encodings_are_refused_at_their_first_bad_byte(tmp_path, encoding, where, capsys):
    path = tmp_path / "manifest.yaml"
    path.write_bytes(ITEMS.encode(encoding))
    line = refused(path, capsys)
    assert where in line and "UTF-16/UTF-32 with a byte-order mark" in line


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_items_files_in_latin_1_are_refused(tmp_path, suffix, capsys):
    body = "prompt\ncafé\n" if suffix == ".csv" else '{"prompt": "café"}\n'
    (tmp_path / f"items{suffix}").write_bytes(body.encode("latin-1"))
    path = write_manifest(tmp_path, f"dataset: d\nitems_from: items{suffix}\n")
    assert "byte 0xE9 is not UTF-8" in refused(path, capsys, tmp_path / f"items{suffix}")


def test_a_utf_16_csv_with_its_mark_is_read(tmp_path, capsys):
    (tmp_path / "items.csv").write_bytes("prompt,count\ncafé,3\n".encode("utf-16"))
    path = write_manifest(tmp_path, "dataset: d\nitems_from: items.csv\n")
    assert "3 images" in accepted(path, capsys)


# --- sizes and shapes that cost minutes or crash the parser ---------------------------------

BAD = {
    "huge YAML integer": (
        "manifest.yaml",
        "dataset: d\nitems: [{prompt: x, count: " + "9" * 5000 + "}]\n",
        "line 2: invalid YAML: an integer of 5000 digits; at most 64 are allowed",
    ),
    "huge JSON integer": (
        "manifest.json",
        '{"dataset": "d", "items": [{"prompt": "x", "count": ' + "9" * 5000 + "}]}",
        "line 1: invalid JSON: an integer of 5000 digits",
    ),
    "deep YAML": (
        "manifest.yaml",
        "dataset: d\nitems: " + "[" * 1000 + "]" * 1000 + "\n",
        "line 2: invalid YAML: nested more than 64 levels deep",
    ),
    "deep JSON": (
        "manifest.json",
        '{"dataset": "d", "items": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "invalid JSON: nested more than 64 levels deep",
    ),
    "repeated JSON key": (
        "manifest.json",
        '{"dataset": "d",\n "items": [{"prompt": "x", "count": 1, "count": 9}]}',
        "line 2: invalid JSON: duplicate key 'count'",
    ),
    "recursive alias": (
        "manifest.yaml",
        "dataset: d\nitems: [{prompt: x, metadata: &m {self: *m}}]\n",
        "an alias refers to a value that contains it",
    ),
    "a newline in a key": (
        "manifest.yaml",
        'dataset: d\n"bad\\nkey": 1\nitems: [{prompt: x}]\n',
        "field 'bad\\nkey': unknown field",
    ),
    "unhashable key": (
        "manifest.yaml",
        "dataset: d\n? [a, b]\n: 1\nitems: [{prompt: x}]\n",
        "a key must be a plain value",
    ),
    "impossible date": (
        "manifest.yaml",
        "dataset: d\nitems: [{prompt: x, metadata: {when: 2024-13-45}}]\n",
        "line 2: invalid YAML: month must be in 1..12",
    ),
    "too many images in all": (
        "manifest.yaml",
        "dataset: d\nmax_images: 10\nitems: [{prompt: x, count: 6}, {prompt: y, count: 6}]\n",
        "items[1]: field 'count': the items ask for more than max_images (10) images",
    ),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_malformed_manifests_are_one_line(tmp_path, case, capsys):
    name, text, expected = BAD[case]
    path = write_manifest(tmp_path, text, name=name)
    assert expected in refused(path, capsys)


def alias_bomb(levels: int) -> str:
    lines = ['      a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    names = "abcdefghijk"
    for previous, name in zip(names, names[1 : levels + 1], strict=False):
        lines.append(f"      {name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "dataset: d\nitems:\n  - prompt: x\n    metadata:\n" + "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path, capsys):
    path = write_manifest(tmp_path, alias_bomb(8))
    line = refused(path, capsys)
    assert "line 6: invalid YAML: aliases expand to more than 10,000 further values" in line


def test_a_few_aliases_are_fine(tmp_path, capsys):
    path = write_manifest(tmp_path, alias_bomb(2))
    assert "1 images" in accepted(path, capsys)
    shared = (
        "dataset: d\nitems:\n  - {prompt: x, metadata: &m {k: 1}}\n  - {prompt: y, metadata: *m}\n"
    )
    assert load_manifest(write_manifest(tmp_path, shared)).items[1].metadata == {"k": 1}


def test_a_million_images_are_counted_not_expanded(tmp_path, capsys):
    path = write_manifest(tmp_path, "dataset: d\nitems: [{prompt: x, count: 1000000}]\n")
    start = time.perf_counter()
    manifest = load_manifest(path)
    assert plan_size(manifest) == (1_000_000, 15_625)
    assert time.perf_counter() - start < 1.0
    assert "1000000 images in 15625 shards" in accepted(path, capsys)


def test_repeated_images_are_found_from_seed_ranges(tmp_path, capsys):
    text = "dataset: d\nitems: [{prompt: x, seed: 0, count: 900000}, {prompt: x, seed: 899999}]\n"
    line = refused(write_manifest(tmp_path, text), capsys)
    assert "items[1]: repeats an image of items[0] (same prompt, seed 899999" in line


# --- items files ----------------------------------------------------------------------------


def parquet(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path)


ITEM_FILES = {
    "repeated column": ("items.csv", "prompt,count,prompt\na,1,b\n", "line 1: column 'prompt'"),
    "unnamed column": ("items.csv", "prompt,,count\na,,1\n", "line 1: column 2 has no name"),
    "prompt and prompt.x": (
        "items.csv",
        "prompt,prompt.x\na,b\n",
        "field 'prompt.x': column 'prompt.x' conflicts with column 'prompt'",
    ),
    "metadata and metadata.x": (
        "items.jsonl",
        '{"prompt": "a", "metadata": {"x": 1}, "metadata.x": 2}\n',
        "line 1: field 'metadata.x': column 'metadata.x' conflicts with column 'metadata'",
    ),
    "empty CSV": ("items.csv", "", "the file is empty; the first line must name the columns"),
    "header only": ("items.csv", "prompt,count\n", "the file has no rows"),
    "ragged row": ("items.csv", "prompt,count\na,1\nb,2,3\n", "row 2 (line 3): 3 cells"),
    "NUL byte": ("items.csv", "prompt\na\0b\n", "byte 8 (line 2): a NUL byte"),
    "huge cell": ("items.csv", "prompt\n" + "x" * 200_000 + "\n", "not valid CSV: field larger"),
    "deep JSON cell": (
        "items.csv",
        'prompt,metadata\na,"' + "[" * 500 + "]" * 500 + '"\n',
        "row 1 (line 2): field 'metadata': invalid JSON: nested more than 64 levels",
    ),
    "repeated JSONL key": (
        "items.jsonl",
        '{"prompt": "a", "prompt": "b"}\n',
        "line 1: invalid JSON: duplicate key 'prompt'",
    ),
    "JSONL list": ("items.jsonl", "[1, 2]\n", "line 1: each line must be a JSON object"),
    "empty Parquet": ("items.parquet", b"", "not a readable Parquet file"),
    "corrupt Parquet": ("items.parquet", b"PAR1" + bytes(range(200)) + b"PAR1", "not a readable"),
    "Parquet of no rows": (
        "items.parquet",
        pa.table({"prompt": pa.array([], pa.string())}),
        "the file has no rows",
    ),
    "Parquet repeated column": (
        "items.parquet",
        pa.table([pa.array(["a"]), pa.array(["b"])], names=["prompt", "prompt"]),
        "column 'prompt' appears more than once",
    ),
}


@pytest.mark.parametrize("case", ITEM_FILES, ids=list(ITEM_FILES))
def test_malformed_items_files_are_one_line(tmp_path, case, capsys):
    name, content, expected = ITEM_FILES[case]
    items = tmp_path / name
    if isinstance(content, pa.Table):
        parquet(items, content)
    elif isinstance(content, bytes):
        items.write_bytes(content)
    else:
        items.write_text(content)
    path = write_manifest(tmp_path, f"dataset: d\nitems_from: {name}\n")
    assert expected in refused(path, capsys, items)


def test_items_files_stop_at_max_images(tmp_path, capsys):
    pd.DataFrame({"prompt": [f"p{i}" for i in range(50)], "count": 3}).to_parquet(
        tmp_path / "items.parquet"
    )
    path = write_manifest(tmp_path, "dataset: d\nmax_images: 100\nitems_from: items.parquet\n")
    assert "row 34: field 'count': the items ask for more than max_images (100)" in refused(
        path, capsys, tmp_path / "items.parquet"
    )


# --- inputs stay in the manifest's folder ---------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the manifest's, holding an items file and a condition image."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "items.csv").write_text("prompt\na secret\n")
    Image.new("RGB", (8, 8)).save(folder / "c.png")
    (tmp_path / "project").mkdir()
    return folder


IMG2IMG = "dataset: d\ngenerator: {pipeline: img2img}\n"


@pytest.mark.parametrize(
    "text",
    [
        "dataset: d\nitems_from: ../elsewhere/items.csv\n",
        "dataset: d\nitems_from: {outside}/items.csv\n",
        "dataset: d\nitems_from: link.csv\n",
        IMG2IMG + "items: [{prompt: x, conditions: {image: ../elsewhere/c.png}}]\n",
        IMG2IMG + "items: [{prompt: x, conditions: {image: {outside}/c.png}}]\n",
        IMG2IMG + "items: [{prompt: x, conditions: {image: link.png}}]\n",
    ],
    ids=["items ..", "items absolute", "items symlink", "image ..", "image absolute", "symlink"],
)
def test_inputs_outside_the_manifests_folder_are_refused(outside, text, capsys):
    project = outside.parent / "project"
    os.symlink(outside / "items.csv", project / "link.csv")
    os.symlink(outside / "c.png", project / "link.png")
    path = write_manifest(project, text.replace("{outside}", str(outside)))
    line = refused(path, capsys)
    assert f"is outside the manifest's folder {project}" in line
    assert "allow its folder with inputs_root" in line


def test_conditions_named_in_an_items_file_are_confined_too(outside, capsys):
    project = outside.parent / "project"
    (project / "items.csv").write_text("prompt,conditions.image\nx,../elsewhere/c.png\n")
    path = write_manifest(project, IMG2IMG + "items_from: items.csv\n")
    line = refused(path, capsys, project / "items.csv")
    assert "row 1 (line 2).conditions: field 'image': '../elsewhere/c.png' is outside" in line


def test_inputs_root_widens_the_folders_inputs_may_come_from(outside, capsys):
    project = outside.parent / "project"
    Image.new("RGB", (8, 8)).save(project / "own.png")
    path = write_manifest(
        project,
        IMG2IMG + "inputs_root: ../elsewhere\nitems_from: ../elsewhere/items.csv\n"
        "items: [{prompt: x, conditions: {image: own.png}}, "
        f"{{prompt: y, conditions: {{image: {outside}/c.png}}}}]\n",
    )
    (outside / "items.csv").write_text("prompt,conditions.image\nz,c.png\n")
    assert "3 items" in accepted(path, capsys)
    assert [i.conditions.image for i in load_manifest(path).items] == [
        str(project / "own.png"),
        str(outside / "c.png"),
        str(outside / "c.png"),
    ]
    missing = write_manifest(project, "dataset: d\ninputs_root: ../nowhere\nitems: [{prompt: x}]\n")
    assert "field 'inputs_root': no such folder: ../nowhere" in refused(missing, capsys)


def test_inputs_root_does_not_change_the_plan(outside):
    from synthset.manifest import plan_digest

    project = outside.parent / "project"
    plain = load_manifest(write_manifest(project, "dataset: d\nitems: [{prompt: x}]\n"))
    text = "dataset: d\ninputs_root: ../elsewhere\nmax_images: 5\nitems: [{prompt: x}]\n"
    widened = load_manifest(write_manifest(project, text))
    assert plan_digest(plain) == plan_digest(widened)


# --- nothing published names a machine path ---------------------------------------------------


def test_published_rows_hold_no_machine_paths(tmp_path, tiny_model):
    from tests.conftest import generate_and_publish

    (tmp_path / "inputs").mkdir()
    Image.new("RGB", (32, 32), (200, 40, 40)).save(tmp_path / "inputs" / "good.png")
    (tmp_path / "inputs" / "broken.png").write_bytes(b"not an image")
    (tmp_path / "items.csv").write_text(
        "prompt,count,conditions.image,metadata.k\na red one,2,inputs/good.png,1\n"
        "a broken one,1,inputs/broken.png,2\n"
    )
    _, _, published = generate_and_publish(
        f"dataset: paths\ngenerator: {{model: {tiny_model}, steps: 2, device: cpu, "
        "pipeline: img2img, strength: 0.5}\nitems_from: items.csv\n"
    )

    kept = pd.read_parquet(published.path / "metadata.parquet")
    rejected = pd.read_parquet(published.path / "rejected.parquet")
    assert (len(kept), len(rejected)) == (2, 1)
    for frame in (kept, rejected):
        cells = json.dumps(frame.astype(str).to_dict(orient="records"))
        assert str(tmp_path) not in cells and str(Path(tiny_model).parent) not in cells
    assert set(kept["condition_image"]) == {
        f"conditions/{_sha256(tmp_path / 'inputs' / 'good.png')}.png"
    }
    assert kept["model"].iloc[0] == Path(tiny_model).name
    assert "broken.png" in rejected["detail"].iloc[0]
    for name in ("manifest.yaml", "README.md"):
        text = (published.path / name).read_text()
        assert str(tmp_path) not in text and str(Path(tiny_model).parent) not in text, name
    stored = yaml.safe_load((published.path / "manifest.yaml").read_text())
    assert stored["generator"]["model"] == Path(tiny_model).name
    assert {i["conditions"]["image"] for i in stored["items"]} >= set(kept["condition_image"])


def test_the_mlflow_record_names_no_machine_path(tmp_path, tiny_model, tracking_uri):
    from mlflow import MlflowClient

    from synthset.pipeline import run_dataset
    from synthset.runners.local import LocalRunner

    Image.new("RGB", (32, 32), (200, 40, 40)).save(tmp_path / "good.png")
    path = write_manifest(
        tmp_path,
        f"dataset: paths-mlflow\ngenerator: {{model: {tiny_model}, steps: 2, device: cpu, "
        "pipeline: img2img, strength: 0.5}\nitems:\n"
        "  - {prompt: a red one, count: 2, conditions: {image: good.png}}\n",
    )
    result = run_dataset(path, LocalRunner(), tracking_uri=tracking_uri)

    run = MlflowClient(tracking_uri).get_run(result.mlflow_run_id)
    recorded = json.dumps([run.data.params, [i.dataset.source for i in run.inputs.dataset_inputs]])
    recorded += json.dumps([i.dataset.profile for i in run.inputs.dataset_inputs])
    assert str(tmp_path) not in recorded and str(Path(tiny_model).parent) not in recorded
    assert run.data.params["generator.model"] == Path(tiny_model).name


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_refuses_what_validate_refuses_before_starting(tmp_path, capsys):
    path = write_manifest(tmp_path, alias_bomb(8))
    start = time.perf_counter()
    assert (
        main(["run", str(path), "--runner", "local", "--tracking-uri", "http://127.0.0.1:9"]) == 2
    )
    assert time.perf_counter() - start < 1.0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "aliases expand to more than 10,000" in err
    assert not (tmp_path / "datasets").exists()
