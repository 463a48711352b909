"""Items' metadata as typed columns of a version, refused names, and torch batches of them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from synthset.errors import ManifestError
from synthset.labels import BUILTIN_COLUMNS
from synthset.manifest import load_manifest
from synthset.storage.formats import ImageDataset, format_of, version_digest
from tests.conftest import generate_and_publish, write_manifest

LABELS = ["digit", "weight", "ok", "split", "shape.w", "ranks", "notes", "mixed", "ink"]


@pytest.fixture(scope="module")
def labelled(tiny_model, tmp_path_factory):
    """One version made for this module's tests (in a folder of its own)."""
    folder = tmp_path_factory.mktemp("labelled")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("SYNTHSET_DATASETS", str(folder / "datasets"))
        return labelled_version(tiny_model)[2]


def labelled_version(model: str):
    """Inline items, a JSONL items file and a template, with labels of every kind."""
    Path("items.jsonl").write_text(
        json.dumps({"prompt": "a green two", "seed": 5, "metadata": {"digit": 2, "weight": 2}})
        + "\n"
    )
    return generate_and_publish(
        f"""
dataset: labels
generator: {{model: {model}, steps: 2, device: cpu}}
shard_size: 8
items:
  - prompt: a red seven
    seed: 1
    metadata: {{digit: 7, weight: 1, ok: true, split: train, shape: {{w: 3}}, ranks: [1, 2],
                notes: [{{a: 1}}], mixed: 1}}
  - {{prompt: a blue one, seed: 2, metadata: {{digit: 1, weight: 0.5, ok: false, mixed: x}}}}
items_from: items.jsonl
templates:
  - {{template: "a {{ink}} three", vocabularies: {{ink: [red, blue]}}, seed: 3,
      metadata: {{digit: 3, split: test}}}}
"""
    )


def test_metadata_becomes_typed_columns_in_both_tables(labelled, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(labelled.path, folder)

    meta = pd.read_parquet(folder / "metadata.parquet")
    assert "metadata" not in meta and list(meta.columns[-len(LABELS) :]) == LABELS
    rows = meta.set_index("prompt")
    assert meta["digit"].dtype == np.int64
    assert rows["digit"].to_dict() == {
        "a red seven": 7,
        "a blue one": 1,
        "a green two": 2,
        "a red three": 3,
        "a blue three": 3,
    }
    assert meta["weight"].dtype == np.float64
    assert rows.loc["a green two", "weight"] == 2.0 and np.isnan(rows.loc["a red three", "weight"])
    assert str(meta["ok"].dtype) == "boolean"
    assert rows.loc["a blue one", "ok"] is np.False_ or rows.loc["a blue one", "ok"] == False  # noqa: E712
    assert rows.loc["a green two", "ok"] is pd.NA
    assert rows.loc["a red three", "split"] == "test" and pd.isna(rows.loc["a blue one", "split"])
    assert str(meta["shape.w"].dtype) == "Int64" and rows.loc["a red seven", "shape.w"] == 3
    assert list(rows.loc["a red seven", "ranks"]) == [1, 2]
    assert rows.loc["a red seven", "notes"] == '[{"a": 1}]'
    assert rows.loc["a red seven", "mixed"] == "1" and rows.loc["a blue one", "mixed"] == "x"
    assert rows.loc["a blue three", "ink"] == "blue" and pd.isna(rows.loc["a red seven", "ink"])

    rejected = pd.read_parquet(folder / "rejected.parquet")
    assert len(rejected) == 0 and set(LABELS) <= set(rejected.columns)
    assert rejected["digit"].dtype == np.int64

    card = (folder / "README.md").read_text()
    assert "`digit` (int), `weight` (float), `ok` (bool), `split` (string)" in card
    assert "`ranks` (list)" in card

    assert version_digest(folder) == labelled.digest
    meta.loc[0, "digit"] = 9
    meta.to_parquet(folder / "metadata.parquet", index=False)
    assert version_digest(folder) != labelled.digest


def test_a_torch_batch_has_label_tensors_and_no_conditions(labelled):
    dataset = format_of(labelled.path).to_torch(labelled.path, None)

    sample = dataset[0]
    assert (sample["digit"], sample["ok"], sample["ranks"]) == (7, True, [1, 2])
    assert sample["condition_image"] is None and sample["ink"] is None

    (batch,) = DataLoader(dataset, batch_size=5, collate_fn=ImageDataset.collate)
    assert batch["image"].shape == (5, 3, 32, 32)
    assert batch["digit"].dtype == torch.int64 and batch["digit"].tolist() == [7, 1, 2, 3, 3]
    assert batch["weight"].dtype == torch.float32 and torch.isnan(batch["weight"][3])
    assert batch["ok"] == [True, False, None, None, None]
    assert batch["ink"] == [None, None, None, "red", "blue"]
    assert batch["seed"].dtype == torch.int64
    assert batch["condition_image"] is None
    assert batch["has_condition_image"].tolist() == [False] * 5


def test_a_torch_batch_stacks_conditions_with_zeros_where_a_row_has_none(tiny_model):
    for name, colour in (("a.png", (200, 0, 0)), ("b.png", (0, 0, 200))):
        Image.new("RGB", (32, 32), colour).save(name)
    _, _, published = generate_and_publish(
        f"dataset: cond\ngenerator: {{model: {tiny_model}, steps: 2, device: cpu, "
        "pipeline: img2img, strength: 0.5}\nitems:\n"
        "  - {prompt: a red one, seed: 1, count: 2, conditions: {image: a.png}}\n"
        "  - {prompt: a blue one, seed: 2, conditions: {image: b.png}}\n"
    )
    frame = format_of(published.path).to_pandas(published.path)
    frame.loc[1, "condition_image"] = None
    dataset = ImageDataset(frame, folder=published.path)

    (batch,) = DataLoader(dataset, batch_size=3, collate_fn=ImageDataset.collate)
    assert batch["has_condition_image"].tolist() == [True, False, True]
    conditions = batch["condition_image"]
    assert conditions.shape == (3, 3, 32, 32)
    assert conditions[1].abs().sum() == 0
    assert conditions[0, 0].mean() > 0.7 and conditions[2, 2].mean() > 0.7
    assert batch["has_condition_mask"].tolist() == [False] * 3


def test_a_curated_version_holds_only_built_in_and_label_columns(
    tiny_model, tracking_uri, tmp_path
):
    from synthset.pipeline import run_dataset
    from synthset.runners.local import LocalRunner

    path = write_manifest(
        tmp_path,
        f"""
dataset: curated-labels
generator: {{model: {tiny_model}, steps: 2, device: cpu}}
curation: {{scorers: [{{kind: colourfulness}}], attempt_budget: 1}}
templates:
  - template: "a {{ink}} {{digit}}"
    vocabularies: {{ink: [red, blue], digit: {{one: 1, two: 2}}}}
    expand: zip
    count: 2
    seed: 4
""",
    )
    result = run_dataset(path, LocalRunner(), tracking_uri=tracking_uri)

    for name in ("metadata.parquet", "rejected.parquet"):
        frame = pd.read_parquet(result.published.path / name)
        assert set(frame.columns) - BUILTIN_COLUMNS == {"colourfulness", "ink", "digit"}, name
        assert frame["digit"].dtype == np.int64
    kept = pd.read_parquet(result.published.path / "metadata.parquet")
    assert set(zip(kept["ink"], kept["digit"], strict=True)) <= {("red", 1), ("blue", 2)}


REFUSED = {
    "built-in key": (
        "items: [{prompt: x, metadata: {seed: 3}}]",
        "items[0]: field 'metadata.seed': metadata key 'seed' is the name of a built-in column",
    ),
    "nested built-in key": (
        "items: [{prompt: x}, {prompt: y, metadata: {clip_score: {}, file_name: a}}]",
        "items[1]: field 'metadata.file_name'",
    ),
    "a scorer's column": (
        "curation: {scorers: [{kind: colourfulness}]}\n"
        "items: [{prompt: x, metadata: {colourfulness: 1}}]",
        "field 'metadata.colourfulness'",
    ),
    "dotted and nested": (
        "items: [{prompt: x, metadata: {a.b: 1, a: {b: 2}}}]",
        "field 'metadata.a.b': metadata keys give the column 'a.b' twice",
    ),
    "blank key": (
        "items: [{prompt: x, metadata: {a: {' ': 1}}}]",
        "items[0]: field 'metadata': a metadata key is blank",
    ),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_metadata_key_that_cannot_be_a_column_is_refused_at_load(tmp_path, case):
    text, expected = REFUSED[case]
    path = write_manifest(tmp_path, f"dataset: d\n{text}\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)


def test_an_items_file_column_named_like_a_built_in_one_is_refused_with_its_row(tmp_path):
    (tmp_path / "items.csv").write_text("prompt,metadata.digit,metadata.prompt\na,1,b\n")
    path = write_manifest(tmp_path, "dataset: d\nitems_from: items.csv\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'items.csv'}: row 1 (line 2): ")
    assert "field 'metadata.prompt'" in message
