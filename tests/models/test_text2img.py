"""The packaged `synthset/tiny-digits` pipeline, and the code that trains it."""

import json

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline
from safetensors import safe_open

from synthset.generators.builtin import PACKAGED_MODELS, resolve_model
from synthset.generators.pipeline import ImageGenerator
from synthset.manifest import GenerationRequest, GeneratorConfig
from synthset.models import text2img
from synthset.models.clip import load_clip, matched_vs_mismatched_auc
from synthset.models.evaluate import adherence, colour_correctness, generate, prompt_plan
from synthset.models.judge import load_judge
from synthset.models.quality import other_digit_prompt

PACKAGED = PACKAGED_MODELS["synthset/tiny-digits"]


def request(seed: int, prompt: str) -> GenerationRequest:
    return GenerationRequest(
        sample_id=f"id-{seed}", item_index=0, index=seed, seed=seed, prompt=prompt
    )


def test_packaged_model_loads_offline_with_its_default_scheduler():
    pipe = DiffusionPipeline.from_pretrained(PACKAGED, dtype=torch.float32)

    assert isinstance(pipe, StableDiffusionPipeline)
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert pipe.unet.dtype == pipe.text_encoder.dtype == pipe.vae.dtype == torch.float32
    assert len(pipe.tokenizer) == 49408
    with safe_open(PACKAGED / "unet" / "diffusion_pytorch_model.safetensors", "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16


def test_builtin_name_resolves_to_the_packaged_folder():
    assert resolve_model("synthset/tiny-digits") == str(PACKAGED)
    assert json.loads((PACKAGED / "model_index.json").read_text())["_class_name"] == (
        "StableDiffusionPipeline"
    )


@pytest.mark.parametrize("scheduler", [None, "ddim", "euler"])
def test_image_generator_makes_32px_digits_by_name(scheduler):
    config = GeneratorConfig(
        model="synthset/tiny-digits",
        scheduler=scheduler,
        device="cpu",
        steps=text2img.DEFAULT_STEPS,
        guidance_scale=text2img.DEFAULT_GUIDANCE,
    )
    generator = ImageGenerator(config)
    results = generator.generate(
        [request(1, "a red seven on a white background"), request(2, "the digit 3")]
    )

    assert [r.error for r in results] == [None, None]
    assert [r.image.size for r in results] == [(32, 32), (32, 32)]
    expected = (
        "DPMSolverMultistepScheduler"
        if scheduler is None
        else {"ddim": "DDIMScheduler", "euler": "EulerDiscreteScheduler"}[scheduler]
    )
    assert type(generator.pipe.scheduler).__name__ == expected


def test_text_encoder_is_the_clip_text_tower():
    clip_model, _, clip_tokenizer = load_clip()
    pipe = DiffusionPipeline.from_pretrained(PACKAGED, dtype=torch.float32)
    prompts = ["a red seven on a white background", "the digit 3", ""]
    ids = clip_tokenizer(prompts)
    assert torch.equal(
        pipe.tokenizer(prompts, padding="max_length", return_tensors="pt").input_ids, ids
    )

    with torch.no_grad():
        x = clip_model.token_embedding(ids) + clip_model.positional_embedding
        expected = clip_model.ln_final(clip_model.transformer(x, attn_mask=clip_model.attn_mask))
        converted = text2img.text_encoder_from_clip(clip_model)(ids)[0]
        packaged = pipe.text_encoder(ids)[0]
    torch.testing.assert_close(converted, expected)
    torch.testing.assert_close(packaged, expected)


def test_training_code_path_runs_end_to_end(tmp_path):
    config = text2img.TinyDigitsConfig(
        vae_steps=2, vae_batch=4, unet_steps=2, unet_batch=4, copies=1, max_images=16
    )
    metrics = text2img.build_text2img(tmp_path / "model", seed=0, config=config)

    assert np.isfinite(metrics["vae_mse"]) and np.isfinite(metrics["unet_loss"])
    pipe = DiffusionPipeline.from_pretrained(tmp_path / "model", dtype=torch.float32)
    image = pipe(
        "a blue two on a yellow background",
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (32, 32)


@pytest.mark.slow
def test_generated_digits_follow_their_prompts_and_clip_tells_them_apart():
    specs = prompt_plan(60, seed=123)
    images = generate(
        "synthset/tiny-digits", specs, text2img.DEFAULT_STEPS, text2img.DEFAULT_GUIDANCE, seed=123
    )

    assert adherence(images, specs, load_judge()) >= 0.90
    assert colour_correctness(images, specs) >= 0.90
    prompts = [s.prompt for s in specs]
    wrong = [other_digit_prompt(s, i) for i, s in enumerate(specs)]
    assert all(w != p for w, p in zip(wrong, prompts, strict=True))
    assert matched_vs_mismatched_auc(*load_clip(), list(images), prompts, wrong) >= 0.95
