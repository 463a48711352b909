"""The offline CLIP tokenizer and the built-in tiny model."""

import json

from transformers import CLIPTokenizer

from synthset.generators.builtin import resolve_model
from synthset.generators.tiny import CLIP_VOCAB_SIZE, write_clip_tokenizer


def test_tokenizer_matches_openai_clip(tmp_path):
    tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(tmp_path / "tok"))

    assert len(tokenizer) == CLIP_VOCAB_SIZE
    assert tokenizer("a red seven").input_ids == [49406, 320, 736, 5757, 49407]
    assert tokenizer("A  Red seven").input_ids == [49406, 320, 736, 5757, 49407]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (49406, 49407)


def test_builtin_model_is_built_once_into_the_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SYNTHSET_CACHE", str(cache))

    folder = resolve_model("synthset/tiny-random")

    assert folder == str(cache / "models" / "synthset--tiny-random")
    index = cache / "models" / "synthset--tiny-random" / "model_index.json"
    assert json.loads(index.read_text())["_class_name"] == "StableDiffusionPipeline"
    built = index.stat()
    assert [p.name for p in (cache / "models").iterdir()] == ["synthset--tiny-random"]

    assert resolve_model("synthset/tiny-random") == folder
    again = index.stat()
    assert (again.st_ino, again.st_mtime_ns) == (built.st_ino, built.st_mtime_ns)


def test_other_names_pass_through():
    assert resolve_model("stabilityai/sd-turbo") == "stabilityai/sd-turbo"
    assert resolve_model("/models/mine") == "/models/mine"
