"""Manifest loading, validation at the edge and deterministic expansion into requests."""

import json

import pandas as pd
import pytest
import yaml
from PIL import Image

from synthset.errors import ManifestError
from synthset.manifest import Manifest, expand, load_manifest
from tests.conftest import write_manifest

SIMPLE = """\
dataset: digits
description: red and blue digits
generator:
  steps: 4
  scheduler: euler
  batch_size: 2
shard_size: 3
items:
  - prompt: a red seven
    count: 2
    seed: 42
    tags: "digit; red ;"
    metadata: {source: inline}
  - prompt: a blue one
    negative_prompt: blurry
"""


def load_error(path) -> str:
    """The message of the ManifestError that loading `path` raises (always one line)."""
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def make_manifest(generator=None, items=None) -> Manifest:
    items = items or [{"prompt": "a red seven", "count": 3}, {"prompt": "a cat", "seed": 7}]
    return Manifest.model_validate(
        {"dataset": "det", "generator": generator or {"steps": 4}, "items": items}
    )


def ids(manifest: Manifest, **kwargs) -> list[str]:
    return [r.sample_id for r in expand(manifest, **kwargs)]


# --- loading --------------------------------------------------------------------------------


def test_yaml_manifest_loads(tmp_path):
    manifest = load_manifest(write_manifest(tmp_path, SIMPLE))

    assert manifest.dataset == "digits"
    assert manifest.generator.steps == 4
    assert manifest.generator.scheduler == "euler"
    assert manifest.shard_size == 3
    red, blue = manifest.items
    assert (red.prompt, red.count, red.seed) == ("a red seven", 2, 42)
    assert red.tags == ["digit", "red"]
    assert red.metadata == {"source": "inline"}
    assert (blue.count, blue.seed, blue.negative_prompt) == (1, None, "blurry")


def test_json_manifest_loads_like_the_same_yaml(tmp_path):
    from_yaml = load_manifest(write_manifest(tmp_path, SIMPLE))
    as_json = json.dumps(yaml.safe_load(SIMPLE))
    from_json = load_manifest(write_manifest(tmp_path, as_json, name="manifest.json"))

    assert from_json == from_yaml
    assert ids(from_json) == ids(from_yaml)


def test_items_from_csv_jsonl_and_parquet_are_appended_in_order(tmp_path):
    (tmp_path / "items.csv").write_text(
        "prompt,count,seed,tags,metadata.source,metadata.split\n"
        "csv one,2,7,a;b; c ,web,train\n"
        "csv two,,,,,\n"
    )
    (tmp_path / "items.jsonl").write_text(
        '{"prompt": "jsonl one", "tags": ["t"], "metadata": {"k": 1}}\n'
        "\n"
        '{"prompt": "jsonl two", "count": 2}\n'
    )
    pd.DataFrame(
        {
            "prompt": ["parquet one", "parquet two"],
            "count": [2, 1],
            "seed": [5, None],
            "tags": [["x", "y"], []],
            "metadata.source": ["lab", None],
        }
    ).to_parquet(tmp_path / "items.parquet")
    path = write_manifest(
        tmp_path,
        "dataset: mixed\n"
        "items: [{prompt: inline}]\n"
        "items_from: [items.csv, items.jsonl, items.parquet]\n",
    )

    manifest = load_manifest(path)

    assert [i.prompt for i in manifest.items] == [
        "inline",
        "csv one",
        "csv two",
        "jsonl one",
        "jsonl two",
        "parquet one",
        "parquet two",
    ]
    by_prompt = {i.prompt: i for i in manifest.items}
    csv_one = by_prompt["csv one"]
    assert (csv_one.count, csv_one.seed, csv_one.tags) == (2, 7, ["a", "b", "c"])
    assert csv_one.metadata == {"source": "web", "split": "train"}
    assert by_prompt["csv two"].model_dump(exclude={"prompt"}) == by_prompt["inline"].model_dump(
        exclude={"prompt"}
    )
    assert by_prompt["jsonl one"].metadata == {"k": 1}
    assert by_prompt["jsonl two"].count == 2
    assert by_prompt["parquet one"].tags == ["x", "y"]
    assert (by_prompt["parquet one"].seed, by_prompt["parquet two"].seed) == (5, None)
    assert by_prompt["parquet one"].metadata == {"source": "lab"}
    assert manifest.items_from == []
    assert len(expand(manifest)) == 1 + 3 + 3 + 3


def test_items_from_a_single_string(tmp_path):
    (tmp_path / "items.jsonl").write_text('{"prompt": "only"}\n')
    manifest = load_manifest(write_manifest(tmp_path, "dataset: one\nitems_from: items.jsonl\n"))
    assert [i.prompt for i in manifest.items] == ["only"]


def test_condition_paths_become_absolute_relative_to_the_manifest(tmp_path):
    (tmp_path / "conds").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "conds" / "a.png")
    Image.new("L", (8, 8)).save(tmp_path / "conds" / "m.png")
    sub = tmp_path / "manifests"
    sub.mkdir()
    path = write_manifest(
        sub,
        "dataset: inp\ngenerator: {pipeline: inpaint}\ninputs_root: ..\n"
        "items: [{prompt: x, conditions: {image: ../conds/a.png, mask: ../conds/m.png}}]\n",
    )

    (request,) = expand(load_manifest(path))

    assert request.image == str(tmp_path / "conds" / "a.png")
    assert request.mask == str(tmp_path / "conds" / "m.png")


# --- errors ---------------------------------------------------------------------------------

BAD_MANIFESTS = {
    "unknown scheduler": (
        "dataset: d\ngenerator: {scheduler: karras}\nitems: [{prompt: x}]\n",
        [
            "generator",
            "field 'scheduler'",
            "'karras'",
            "allowed: ddpm, ddim, pndm, euler, euler_a, dpmpp",
        ],
    ),
    "unknown generator field": (
        "dataset: d\ngenerator: {colour: red}\nitems: [{prompt: x}]\n",
        [
            "generator",
            "field 'colour'",
            "unknown field",
            "allowed: kind, model, pipeline, scheduler",
        ],
    ),
    "unknown item field": (
        "dataset: d\nitems: [{prompt: x}, {prompt: y, prompts: z}]\n",
        ["items[1]", "field 'prompts'", "unknown field", "allowed: prompt, negative_prompt"],
    ),
    "unknown top-level field": (
        "dataset: d\nitem: [{prompt: x}]\n",
        ["field 'item'", "unknown field", "allowed: dataset, description, generator"],
    ),
    "count 0": (
        "dataset: d\nitems: [{prompt: x, count: 0}]\n",
        ["items[0]", "field 'count'", "greater than or equal to 1", "(got 0)"],
    ),
    "bad dataset name": (
        "dataset: My Dataset\nitems: [{prompt: x}]\n",
        ["field 'dataset'", "pattern", "'My Dataset'"],
    ),
    "missing dataset": (
        "items: [{prompt: x}]\n",
        ["field 'dataset'", "Field required"],
    ),
    "invalid YAML": (
        "dataset: d\nitems:\n  - prompt: x\n  count: [\n",
        ["line 4", "invalid YAML"],
    ),
    "duplicate YAML key": (
        "dataset: d\nitems:\n  - prompt: x\n    count: 2\n    count: 3\n",
        ["line 5", "invalid YAML: duplicate key 'count'"],
    ),
    "not a mapping": (
        "- prompt: x\n",
        ["must be a mapping", "'dataset'"],
    ),
    "missing condition file": (
        "dataset: d\ngenerator: {pipeline: img2img}\n"
        "items: [{prompt: x, conditions: {image: nowhere.png}}]\n",
        ["items[0].conditions", "field 'image'", "no such file: nowhere.png"],
    ),
    "img2img without an image": (
        "dataset: d\ngenerator: {pipeline: img2img}\nitems: [{prompt: x}]\n",
        ["items[0].conditions", "field 'image'", "pipeline 'img2img' needs a condition 'image'"],
    ),
    "text2img with a condition": (
        "dataset: d\nitems: [{prompt: x, conditions: {image: cond.png}}]\n",
        ["items[0].conditions", "field 'image'", "takes no condition 'image'", "img2img"],
    ),
    "inpaint without a mask": (
        "dataset: d\ngenerator: {pipeline: inpaint}\n"
        "items: [{prompt: x, conditions: {image: cond.png}}]\n",
        ["items[0].conditions", "field 'mask'", "needs a condition 'mask'"],
    ),
    "duplicate items": (
        "dataset: d\nitems: [{prompt: x, seed: 1}, {prompt: y}, {prompt: x, seed: 1}]\n",
        ["items[2]", "repeats an image of items[0]", "seeds that do not overlap, or merge them"],
    ),
    "empty items": (
        "dataset: d\nitems: []\n",
        ["field 'items'", "no items", "give 'items' or 'items_from'"],
    ),
    "unknown items_from suffix": (
        "dataset: d\nitems_from: items.xlsx\n",
        ["field 'items_from'", "'items.xlsx'", "allowed: .csv, .jsonl, .parquet"],
    ),
    "missing items_from file": (
        "dataset: d\nitems_from: [missing.csv]\n",
        ["field 'items_from'", "no such file: missing.csv"],
    ),
    "unknown curation field": (
        "dataset: d\ncuration: {min_score: 20}\nitems: [{prompt: x}]\n",
        [
            "curation",
            "field 'min_score'",
            "unknown field",
            "allowed: enabled, clip, min_clip_score",
        ],
    ),
    "unknown dedup field": (
        "dataset: d\ncuration: {dedup: {fuzzy: true}}\nitems: [{prompt: x}]\n",
        ["curation.dedup", "field 'fuzzy'", "allowed: exact, perceptual, perceptual_distance"],
    ),
    "clip score above 100": (
        "dataset: d\ncuration: {min_clip_score: 120}\nitems: [{prompt: x}]\n",
        ["curation", "field 'min_clip_score'", "less than or equal to 100", "(got 120)"],
    ),
    "top fraction of 0": (
        "dataset: d\ncuration: {keep_top_fraction: 0}\nitems: [{prompt: x}]\n",
        ["curation", "field 'keep_top_fraction'", "greater than 0"],
    ),
    "unknown CLIP model": (
        "dataset: d\ncuration: {clip: {model: ViT-Q-99}}\nitems: [{prompt: x}]\n",
        ["curation.clip", "field 'model'", "'ViT-Q-99' is not an open_clip model", "hf-hub:"],
    ),
    "CLIP model without weights": (
        "dataset: d\ncuration: {clip: {model: ViT-B-32}}\nitems: [{prompt: x}]\n",
        ["curation", "field 'clip'", "'ViT-B-32' needs weights", "open_clip.list_pretrained()"],
    ),
    "missing CLIP checkpoint": (
        "dataset: d\ncuration: {clip: {pretrained: ./w/clip.safetensors}}\nitems: [{prompt: x}]\n",
        ["curation.clip", "field 'pretrained'", "no such checkpoint file: ./w/clip.safetensors"],
    ),
    "tag template without a slot": (
        "dataset: d\ncuration: {tags: {vocabulary: [cat], template: a photo}}\n"
        "items: [{prompt: x}]\n",
        ["curation.tags", "field 'template'", "must contain '{}' once"],
    ),
    "repeated tag word": (
        "dataset: d\ncuration: {tags: {vocabulary: [cat, dog, cat]}}\nitems: [{prompt: x}]\n",
        ["curation.tags", "field 'vocabulary'", "repeats 'cat'"],
    ),
    "top-ups reach another item's seeds": (
        "dataset: d\nitems: [{prompt: x, seed: 0, count: 4}, {prompt: y, seed: 5}, "
        "{prompt: x, seed: 10, count: 2}]\n",
        [
            "items[2]",
            "top-ups would repeat images of items[0]",
            "3 × count seeds",
            "attempt_budget",
        ],
    ),
    "missing model folder": (
        "dataset: d\ngenerator: {model: ./models/none}\nitems: [{prompt: x}]\n",
        ["generator", "field 'model'", "no such model folder: ./models/none"],
    ),
}


@pytest.mark.parametrize("case", BAD_MANIFESTS, ids=list(BAD_MANIFESTS))
def test_bad_manifest_raises_one_line_error_naming_file_place_and_fix(tmp_path, case):
    Image.new("RGB", (8, 8)).save(tmp_path / "cond.png")
    text, expected = BAD_MANIFESTS[case]
    path = write_manifest(tmp_path, text)

    message = load_error(path)

    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message


def test_invalid_json_names_the_line(tmp_path):
    path = write_manifest(tmp_path, '{"dataset": "d",\n "items": [}', name="manifest.json")
    message = load_error(path)
    assert message.startswith(f"{path}: line 2: invalid JSON")


def test_missing_manifest_file(tmp_path):
    message = load_error(tmp_path / "nope.yaml")
    assert message == f"{tmp_path / 'nope.yaml'}: no such file"


def test_yaml_is_loaded_safely(tmp_path):
    path = write_manifest(
        tmp_path, "dataset: !!python/object/apply:os.mkdir ['pwned']\nitems: [{prompt: x}]\n"
    )
    message = load_error(path)
    assert "line 1: invalid YAML" in message
    assert "python/object" in message
    assert not (tmp_path / "pwned").exists()


def test_csv_row_with_bad_count_names_row_and_line(tmp_path):
    (tmp_path / "items.csv").write_text("prompt,count\nok,2\nbad,two\n")
    path = write_manifest(tmp_path, "dataset: d\nitems_from: items.csv\n")

    message = load_error(path)

    assert message.startswith(f"{tmp_path / 'items.csv'}: row 2 (line 3): field 'count': ")
    assert "valid integer" in message
    assert "(got 'two')" in message


def test_csv_cells_may_hold_json_tags_and_metadata(tmp_path):
    (tmp_path / "items.csv").write_text(
        'prompt,tags,metadata\nx,"[""a"", ""b c""]","{""n"": 1, ""ok"": true}"\n'
    )
    path = write_manifest(tmp_path, "dataset: d\nitems_from: items.csv\n")
    (item,) = load_manifest(path).items
    assert (item.tags, item.metadata) == (["a", "b c"], {"n": 1, "ok": True})

    (tmp_path / "items.csv").write_text('prompt,tags\nx,"[""a"", oops]"\n')
    message = load_error(path)
    assert message.startswith(f"{tmp_path / 'items.csv'}: row 1 (line 2): field 'tags': ")
    assert "invalid JSON" in message


def test_csv_row_with_unknown_column_lists_allowed_fields(tmp_path):
    (tmp_path / "items.csv").write_text("prompt,colour\nx,red\n")
    path = write_manifest(tmp_path, "dataset: d\nitems_from: items.csv\n")
    message = load_error(path)
    assert "row 1 (line 2): field 'colour': unknown field; allowed: prompt" in message


def test_jsonl_errors_name_the_line(tmp_path):
    (tmp_path / "items.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b", "count": -1}\n')
    path = write_manifest(tmp_path, "dataset: d\nitems_from: items.jsonl\n")
    assert f"{tmp_path / 'items.jsonl'}: line 2: field 'count'" in load_error(path)

    (tmp_path / "items.jsonl").write_text('{"prompt": "a"}\n\n{"prompt": \n')
    assert f"{tmp_path / 'items.jsonl'}: line 3: invalid JSON" in load_error(path)


def test_parquet_row_errors_name_the_row(tmp_path):
    pd.DataFrame({"prompt": ["a", ""]}).to_parquet(tmp_path / "items.parquet")
    path = write_manifest(tmp_path, "dataset: d\nitems_from: items.parquet\n")
    assert f"{tmp_path / 'items.parquet'}: row 2: field 'prompt'" in load_error(path)


def test_condition_file_missing_in_items_file_names_the_row(tmp_path):
    (tmp_path / "items.csv").write_text("prompt,conditions.image\nx,missing.png\n")
    path = write_manifest(
        tmp_path, "dataset: d\ngenerator: {pipeline: img2img}\nitems_from: items.csv\n"
    )
    message = load_error(path)
    assert "row 1 (line 2).conditions: field 'image': no such file: missing.png" in message


# --- expansion and determinism --------------------------------------------------------------


def test_same_manifest_gives_same_ids_and_seeds(tmp_path):
    path = write_manifest(tmp_path, SIMPLE)
    first, second = expand(load_manifest(path)), expand(load_manifest(path))

    assert [(r.sample_id, r.seed) for r in first] == [(r.sample_id, r.seed) for r in second]
    assert len({r.sample_id for r in first}) == len(first) == 3
    assert [(r.item_index, r.index) for r in first] == [(0, 0), (0, 1), (1, 0)]
    assert [r.seed for r in first[:2]] == [42, 43]
    assert first[0].tags == ("digit", "red")
    assert first[0].metadata == {"source": "inline"}


def test_items_without_a_seed_get_a_stable_derived_seed():
    a, b = expand(make_manifest()), expand(make_manifest())
    derived = [r.seed for r in a if r.item_index == 0]

    assert derived == [r.seed for r in b if r.item_index == 0]
    assert derived == [derived[0], derived[0] + 1, derived[0] + 2]
    assert 0 <= derived[0] < 2**31
    other = make_manifest(items=[{"prompt": "a green seven", "count": 3}])
    assert expand(other)[0].seed != derived[0]


@pytest.mark.parametrize(
    "change",
    [
        {"steps": 5},
        {"model": "someone/other-model"},
        {"guidance_scale": 3.0},
        {"scheduler": "ddim"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_settings_that_shape_images_change_the_ids(change):
    assert set(ids(make_manifest({"steps": 4, **change}))).isdisjoint(
        ids(make_manifest({"steps": 4}))
    )


@pytest.mark.parametrize("change", [{"batch_size": 1}, {"device": "cpu"}])
def test_batch_size_and_device_do_not_change_the_ids(change):
    assert ids(make_manifest({"steps": 4, **change})) == ids(make_manifest({"steps": 4}))


def test_changing_a_prompt_changes_only_that_items_ids():
    before = expand(make_manifest())
    after = expand(
        make_manifest(items=[{"prompt": "a red 7", "count": 3}, {"prompt": "a cat", "seed": 7}])
    )

    assert {r.sample_id for r in before[:3]}.isdisjoint(r.sample_id for r in after[:3])
    assert before[3].sample_id == after[3].sample_id


def test_condition_image_content_is_part_of_the_id(tmp_path):
    image = tmp_path / "cond.png"
    path = write_manifest(
        tmp_path,
        "dataset: d\ngenerator: {pipeline: img2img}\n"
        "items: [{prompt: x, conditions: {image: cond.png}}]\n",
    )
    Image.new("RGB", (8, 8), (255, 0, 0)).save(image)
    red = ids(load_manifest(path))
    Image.new("RGB", (8, 8), (0, 0, 255)).save(image)
    blue = ids(load_manifest(path))
    assert red != blue


def test_extra_images_get_new_indices_and_fresh_seeds():
    manifest = make_manifest()
    base = expand(manifest)
    more = expand(manifest, extra={0: 2})

    assert [r.sample_id for r in more if r.item_index == 1] == [base[3].sample_id]
    first = [r for r in more if r.item_index == 0]
    assert [r.index for r in first] == [0, 1, 2, 3, 4]
    assert [r.sample_id for r in first[:3]] == [r.sample_id for r in base[:3]]
    new = first[3:]
    assert not {r.seed for r in new} & {r.seed for r in base}
    assert not {r.sample_id for r in new} & {r.sample_id for r in base}
    assert len({r.sample_id for r in more}) == len(more) == 6


def test_items_whose_seeds_overlap_would_repeat_an_image(tmp_path):
    path = write_manifest(
        tmp_path,
        "dataset: d\nitems:\n  - {prompt: x, seed: 1, count: 2}\n"
        "  - {prompt: x, seed: 2, tags: [other]}\n",
    )
    message = load_error(path)
    assert "items[1]: repeats an image of items[0] (same prompt, seed 2" in message


def test_a_moved_model_folder_keeps_the_ids(tmp_path, tiny_model):
    import shutil

    first, second = tmp_path / "a" / "model", tmp_path / "b" / "model"
    shutil.copytree(tiny_model, first)
    shutil.copytree(tiny_model, second)
    assert ids(make_manifest({"model": str(first)})) == ids(make_manifest({"model": str(second)}))
    (second / "unet" / "config.json").write_text(
        (second / "unet" / "config.json")
        .read_text()
        .replace('"layers_per_block": 1', '"layers_per_block": 2')
    )
    assert ids(make_manifest({"model": str(first)})) != ids(make_manifest({"model": str(second)}))


def test_curation_defaults_and_a_checkpoint_path_relative_to_the_manifest(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "clip.safetensors").write_bytes(b"weights")
    path = write_manifest(
        tmp_path,
        "dataset: c\ncuration: {clip: {pretrained: weights/clip.safetensors}}\n"
        "items: [{prompt: x, count: 2}]\n",
    )

    curation = load_manifest(path).curation

    assert curation.clip.pretrained == str(tmp_path / "weights" / "clip.safetensors")
    assert curation.clip.identity() == {
        "model": "synthset-tiny-clip",
        "pretrained": "clip.safetensors:7",
    }
    assert curation.enabled and curation.dedup.exact and curation.dedup.perceptual
    assert not curation.dedup.semantic and curation.min_clip_score is None
    assert curation.max_attempts(10) == 30 and curation.max_attempts(1) == 3


def test_seed_ranges_may_touch_and_a_budget_of_one_allows_close_seeds(tmp_path):
    close = "items: [{prompt: x, seed: 0, count: 4}, {prompt: x, seed: 12, count: 2}]\n"
    assert len(load_manifest(write_manifest(tmp_path, "dataset: d\n" + close)).items) == 2
    closer = "items: [{prompt: x, seed: 0, count: 4}, {prompt: x, seed: 4, count: 2}]\n"
    path = write_manifest(tmp_path, "dataset: d\ncuration: {attempt_budget: 1}\n" + closer)
    assert len(load_manifest(path).items) == 2
    path = write_manifest(tmp_path, "dataset: d\ncuration: {enabled: false}\n" + closer)
    assert load_manifest(path).curation.max_attempts(4) == 4
    wrapping = "items: [{prompt: x, seed: 2147483646, count: 2}, {prompt: x, seed: 1}]\n"
    assert "top-ups would repeat" in load_error(write_manifest(tmp_path, "dataset: d\n" + wrapping))


def test_curation_settings_do_not_change_the_plan_digest():
    from synthset.manifest import plan_digest

    a = make_manifest()
    b = a.model_copy(update={"curation": a.curation.model_copy(update={"min_clip_score": 30.0})})
    assert plan_digest(a) == plan_digest(b)
    assert ids(a) == ids(b)


def test_img2img_needs_at_least_one_denoising_step(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "c.png")
    path = write_manifest(
        tmp_path,
        "dataset: d\ngenerator: {pipeline: img2img, steps: 3, "
        "strength: 0.2}\nitems: [{prompt: x, conditions: "
        "{image: c.png}}]\n",
    )
    assert "int(3 × 0.2) = 0; raise steps or strength" in load_error(path)


def test_a_csv_items_file_naming_a_column_twice_is_refused(tmp_path):
    (tmp_path / "items.csv").write_text("prompt,count,prompt\na red one,1,a blue two\n")
    path = write_manifest(tmp_path, "dataset: d\nitems_from: items.csv\n")

    with pytest.raises(ManifestError, match=r"items.csv: line 1: column 'prompt' appears more"):
        load_manifest(path)
