"""SDXL, SD3 and Flux pipelines (tiny, built offline) run end to end through a manifest.

The generator must not assume a UNet or a negative prompt: SD3 and Flux denoise with a
transformer and prompt T5 as well as CLIP, and each pipeline has its own native size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthset.errors import SynthsetError
from synthset.generators import tiny
from synthset.generators.pipeline import ImageGenerator
from synthset.manifest import GenerationRequest, GeneratorConfig
from synthset.pipeline import run_dataset
from synthset.runners.local import LocalRunner
from tests.conftest import write_manifest

FAMILIES = ("sdxl", "sd3", "flux")


def _build(factory: pytest.TempPathFactory, family: str) -> str:
    save: Callable[[Path], Path] = getattr(tiny, f"save_tiny_{family}_pipeline")
    return str(save(factory.mktemp(f"tiny-{family}")))


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _build(tmp_path_factory, "sdxl")


@pytest.fixture(scope="session")
def tiny_sd3(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _build(tmp_path_factory, "sd3")


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _build(tmp_path_factory, "flux")


@pytest.fixture(params=FAMILIES)
def family_model(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param, request.getfixturevalue(f"tiny_{request.param}")


def _run(tmp_path: Path, tracking_uri: str, name: str, model: str, size: str) -> list[Path]:
    text = f"""
dataset: {name}
generator: {{model: {model}, steps: 2, device: cpu{size}}}
curation: {{enabled: false}}
items:
  - {{prompt: a red seven, count: 2, seed: 1}}
"""
    result = run_dataset(write_manifest(tmp_path, text), LocalRunner(), tracking_uri=tracking_uri)
    assert result.published.images == 2
    return sorted((result.published.path / "images").iterdir())


def _sizes(images: list[Path]) -> list[tuple[int, int]]:
    sizes = []
    for path in images:
        with Image.open(path) as img:
            sizes.append(img.size)
    return sizes


def test_each_family_generates_the_manifest_size(family_model, tracking_uri, tmp_path):
    family, model = family_model

    images = _run(tmp_path, tracking_uri, f"family-{family}", model, ", height: 32, width: 24")

    assert _sizes(images) == [(24, 32)] * 2


def test_each_family_defaults_to_its_pipeline_native_size(family_model, tracking_uri, tmp_path):
    """The size the pipeline itself would use when called without height and width."""
    from diffusers import DiffusionPipeline

    family, model = family_model
    pipe = DiffusionPipeline.from_pretrained(model)
    native = pipe.default_sample_size * pipe.vae_scale_factor

    images = _run(tmp_path, tracking_uri, f"family-{family}-native", model, "")

    assert _sizes(images) == [(native, native)] * 2


@pytest.mark.parametrize("family", FAMILIES)
def test_builds_are_deterministic(family, tmp_path):
    first = getattr(tiny, f"save_tiny_{family}_pipeline")(tmp_path / "a")
    second = getattr(tiny, f"save_tiny_{family}_pipeline")(tmp_path / "b")

    weights = sorted(p.relative_to(first) for p in first.rglob("*.safetensors"))
    assert weights == sorted(p.relative_to(second) for p in second.rglob("*.safetensors"))
    assert len(weights) >= 4
    for name in weights:
        assert (first / name).read_bytes() == (second / name).read_bytes()


def test_t5_tokenizer_ends_prompts_and_knows_every_character():
    tokenizer = tiny.build_t5_tokenizer(max_length=8)

    ids = tokenizer("A red seven, ok?", padding="max_length", truncation=True).input_ids

    assert len(ids) == 8 and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.convert_ids_to_tokens(ids[:3]) == ["▁A", "▁red", "▁seven"]
    assert tokenizer("a", padding="max_length", max_length=4).input_ids[-1] == 0


def _request(negative: str = "") -> GenerationRequest:
    return GenerationRequest(
        sample_id="s", item_index=0, index=0, seed=1, prompt="a red seven", negative_prompt=negative
    )


def test_flux_takes_true_cfg_with_a_negative_prompt_and_sd_refuses_it(tiny_flux, tiny_model):
    flux = GeneratorConfig(model=tiny_flux, steps=2, device="cpu", height=32, width=32)
    plain = ImageGenerator(flux).generate([_request()])[0]
    true_cfg = ImageGenerator(flux.model_copy(update={"true_cfg_scale": 3.0}))
    guided = true_cfg.generate([_request(negative="blurry")])[0]

    assert plain.error is None and guided.error is None
    assert np.abs(np.asarray(plain.image, float) - np.asarray(guided.image, float)).mean() > 0.5
    sd = GeneratorConfig(model=tiny_model, steps=2, device="cpu", true_cfg_scale=3.0)
    with pytest.raises(SynthsetError, match="takes no true_cfg_scale"):
        ImageGenerator(sd).generate([_request()])
