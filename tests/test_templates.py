"""Combinatorial prompts: templates with vocabularies expand into ordinary, stable items."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from synthset.cli import main
from synthset.errors import ManifestError
from synthset.manifest import expand, load_manifest
from synthset.plan import plan_size
from tests.conftest import write_manifest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(folder: Path, *templates: dict, **fields) -> object:
    text = yaml.safe_dump({"dataset": "t", **fields, "templates": list(templates)}, sort_keys=False)
    return load_manifest(write_manifest(folder, text))


def error(folder: Path, *templates: dict, **fields) -> str:
    with pytest.raises(ManifestError) as info:
        load(folder, *templates, **fields)
    message = str(info.value)
    assert "\n" not in message
    return message


GRID = {
    "template": "a {colour} {digit} on a {background} background",
    "vocabularies": {
        "colour": ["red", "green", "blue"],
        "digit": {"three": 3, "seven": 7},
        "background": ["white", "black"],
    },
    "count": 2,
    "seed": 1,
    "tags": ["digit"],
    "negative_prompt": "blurry",
    "metadata": {"source": "grid"},
}


def test_a_product_expands_into_one_item_per_combination(tmp_path):
    manifest = load(tmp_path, GRID)

    assert len(manifest.items) == 12 and manifest.templates == []
    first, second, third = manifest.items[:3]
    assert first.prompt == "a red three on a white background"
    assert second.prompt == "a red three on a black background"
    assert third.prompt == "a red seven on a white background"
    assert manifest.items[-1].prompt == "a blue seven on a black background"
    assert first.metadata == {
        "colour": "red",
        "digit": 3,
        "background": "white",
        "source": "grid",
    }
    assert (first.count, first.tags, first.negative_prompt) == (2, ["digit"], "blurry")
    assert len({item.seed for item in manifest.items}) == 12
    assert plan_size(manifest)[0] == 24


def test_the_same_template_gives_the_same_ids_and_a_new_value_keeps_the_others(tmp_path):
    ids = {r.sample_id: r.prompt for r in expand(load(tmp_path, GRID))}
    again = {r.sample_id: r.prompt for r in expand(load(tmp_path, GRID))}
    assert ids == again and len(ids) == 24

    wider = {
        **GRID,
        "vocabularies": {**GRID["vocabularies"], "colour": ["red", "yellow", "green", "blue"]},
    }
    grown = {r.sample_id: r.prompt for r in expand(load(tmp_path, wider))}
    assert set(ids) < set(grown) and len(grown) == 32

    reseeded = {r.sample_id for r in expand(load(tmp_path, {**GRID, "seed": 2}))}
    assert not reseeded & set(ids)


def test_a_template_is_the_items_it_stands_for(tmp_path):
    """Written out by hand (prompt, seed, metadata), the items make the very same requests."""
    manifest = load(tmp_path, GRID)
    items = [
        {
            "prompt": item.prompt,
            "negative_prompt": item.negative_prompt,
            "count": item.count,
            "seed": item.seed,
            "tags": item.tags,
            "metadata": item.metadata,
        }
        for item in manifest.items
    ]
    by_hand = load_manifest(
        write_manifest(tmp_path, yaml.safe_dump({"dataset": "t", "items": items}), "hand.yaml")
    )
    assert [r.sample_id for r in expand(by_hand)] == [r.sample_id for r in expand(manifest)]


def test_without_a_seed_each_combination_gets_one_from_its_content(tmp_path):
    unseeded = {k: v for k, v in GRID.items() if k != "seed"}
    items = load(tmp_path, unseeded).items
    assert all(item.seed is None for item in items)
    ids = [r.sample_id for r in expand(load(tmp_path, unseeded))]
    assert ids == [r.sample_id for r in expand(load(tmp_path, unseeded))]
    assert len(set(ids)) == 24


def test_zip_pairs_the_vocabularies_in_order(tmp_path):
    manifest = load(
        tmp_path,
        {
            "template": "a {colour} {digit}",
            "vocabularies": {"colour": ["red", "blue", "red"], "digit": [3, 7, 7]},
            "expand": "zip",
        },
    )
    assert [i.prompt for i in manifest.items] == ["a red 3", "a blue 7", "a red 7"]
    assert [i.metadata["digit"] for i in manifest.items] == [3, 7, 7]


def test_a_sample_is_seeded_drawn_from_the_product_and_never_expands_it(tmp_path):
    values = [f"w{i}" for i in range(1000)]
    template = {
        "template": "{a} {b} {c} {d}",
        "vocabularies": {"a": values, "b": values, "c": values, "d": values},
        "expand": "sample",
        "combinations": 6,
        "seed": 5,
    }
    start = time.perf_counter()
    manifest = load(tmp_path, template)
    assert time.perf_counter() - start < 1.0
    prompts = [i.prompt for i in manifest.items]
    assert len(set(prompts)) == 6
    assert prompts == [i.prompt for i in load(tmp_path, template).items]
    assert prompts != [i.prompt for i in load(tmp_path, {**template, "seed": 6}).items]

    small = {
        "template": "{a}-{b}",
        "vocabularies": {"a": [1, 2, 3], "b": [1, 2, 3]},
        "expand": "sample",
        "combinations": 9,
    }
    assert len({i.prompt for i in load(tmp_path, small).items}) == 9


def test_count_total_is_spread_over_the_combinations(tmp_path):
    template = {**GRID, "count_total": 48}
    del template["count"]
    manifest = load(tmp_path, template)
    assert {item.count for item in manifest.items} == {4}
    assert plan_size(manifest)[0] == 48


def test_mapping_vocabularies_give_labels_and_columns(tmp_path):
    manifest = load(
        tmp_path,
        {
            "template": "a {digit} in {ink}",
            "vocabularies": {
                "digit": {"three": 3, "seven": 7},
                "ink": {"red": {"rgb": [220, 30, 30], "warm": True}, "blue": {"warm": False}},
            },
        },
    )
    assert manifest.items[0].prompt == "a three in red"
    assert manifest.items[0].metadata == {
        "digit": 3,
        "ink": "red",
        "ink.rgb": [220, 30, 30],
        "ink.warm": True,
    }
    assert manifest.items[1].metadata == {"digit": 3, "ink": "blue", "ink.warm": False}


def test_templates_sit_next_to_items_and_take_conditions(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "start.png")
    manifest = load(
        tmp_path,
        {
            "template": "a {colour} one",
            "vocabularies": {"colour": ["red", "blue"]},
            "conditions": {"image": "start.png"},
        },
        items=[{"prompt": "an item", "conditions": {"image": "start.png"}}],
        generator={"pipeline": "img2img"},
    )
    assert [i.prompt for i in manifest.items] == ["an item", "a red one", "a blue one"]
    assert manifest.items[2].conditions.image == str(tmp_path / "start.png")


BAD = {
    "slot without vocabulary": (
        {"template": "a {colour} {shape}", "vocabularies": {"colour": ["red"]}},
        ["templates[0] ('a {colour} {shape}')", "field 'vocabularies.shape'", "{shape}"],
    ),
    "vocabulary not used": (
        {"template": "a {colour}", "vocabularies": {"colour": ["red"], "digit": ["one"]}},
        ["field 'vocabularies.digit'", "'digit' is not a slot"],
    ),
    "zip of different lengths": (
        {
            "template": "{colour} {digit}",
            "vocabularies": {"colour": ["red", "blue"], "digit": ["one"]},
            "expand": "zip",
        },
        ["expand: zip", "colour 2, digit 1"],
    ),
    "empty vocabulary": (
        {"template": "a {colour}", "vocabularies": {"colour": []}},
        ["field 'vocabularies.colour'", "empty"],
    ),
    "sample larger than product": (
        {
            "template": "a {colour}",
            "vocabularies": {"colour": ["red", "blue"]},
            "expand": "sample",
            "combinations": 3,
        },
        ["field 'combinations'", "larger than the product", "(2)"],
    ),
    "sample without size": (
        {"template": "a {colour}", "vocabularies": {"colour": ["red"]}, "expand": "sample"},
        ["field 'combinations'", "needs combinations"],
    ),
    "count_total that does not divide": (
        {"template": "a {c}", "vocabularies": {"c": ["r", "g", "b"]}, "count_total": 10},
        ["field 'count_total'", "does not divide evenly over 3", "9 or 12"],
    ),
    "count and count_total": (
        {"template": "a {c}", "vocabularies": {"c": ["r"]}, "count": 1, "count_total": 2},
        ["not both"],
    ),
    "unbalanced brace": (
        {"template": "a {colour", "vocabularies": {"colour": ["red"]}},
        ["field 'template'", "{{"],
    ),
    "format spec": (
        {"template": "a {colour:>4}", "vocabularies": {"colour": ["red"]}},
        ["slot {colour:>4} must be a plain name"],
    ),
    "no slot": (
        {"template": "a red one", "vocabularies": {}},
        ["has no {slot}"],
    ),
    "repeated value": (
        {"template": "a {colour}", "vocabularies": {"colour": ["red", "red"]}},
        ["'red' appears twice", "{colour}"],
    ),
    "null value": (
        {"template": "a {colour}", "vocabularies": {"colour": ["red", None]}},
        ["field 'vocabularies'", "entry 1", "NoneType"],
    ),
    "slot named like a built-in column": (
        {"template": "a {seed}", "vocabularies": {"seed": ["one"]}},
        ["slot {seed}", "built-in column 'seed'"],
    ),
    "metadata taking a slot's column": (
        {"template": "a {colour}", "vocabularies": {"colour": ["red"]}, "metadata": {"colour": 1}},
        ["field 'metadata.colour'", "slot {colour}"],
    ),
    "unknown field": (
        {"template": "a {colour}", "vocabularies": {"colour": ["red"]}, "colours": 1},
        ["templates[0] ('a {colour}')", "field 'colours'", "allowed: template, vocabularies"],
    ),
    "unknown condition": (
        {"template": "a {c}", "vocabularies": {"c": ["r"]}, "conditions": {"imag": "x.png"}},
        ["templates[0]", "field 'imag'", "allowed: image, mask, control"],
    ),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_template_is_named_with_its_index_text_and_field(tmp_path, case):
    template, parts = BAD[case]
    message = error(tmp_path, {"template": "fine {x}", "vocabularies": {"x": [1]}}, template)
    assert "templates[1]" in message
    for part in parts:
        assert part.replace("templates[0]", "templates[1]") in message


def test_max_images_refuses_a_product_before_expanding_it(tmp_path):
    values = list(range(1000))
    template = {"template": "{a} {b} {c}", "vocabularies": {"a": values, "b": values, "c": values}}
    start = time.perf_counter()
    message = error(tmp_path, template)
    assert time.perf_counter() - start < 1.0
    assert "templates[0] ('{a} {b} {c}')" in message and "max_images (1,000,000)" in message
    message = error(
        tmp_path, {"template": "{a}", "vocabularies": {"a": [1, 2]}, "count": 6}, max_images=10
    )
    assert "max_images (10)" in message and "field 'count'" in message


def test_the_example_manifest_validates():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["validate", str(EXAMPLES / "templates.yaml")]) == 0
    assert "40 items, 160 images" in out.getvalue()
    manifest = load_manifest(EXAMPLES / "templates.yaml")
    assert manifest.generator.model == "synthset/tiny-digits"
    assert {"ink", "digit", "background"} <= set(manifest.items[0].metadata)
