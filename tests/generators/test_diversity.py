"""Diversity-preserving sampling (guidance interval, CADS) on tiny real pipelines (CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthset.errors import ManifestError, SynthsetError
from synthset.generators import tiny
from synthset.generators.diversity import cads_gamma, diverse_sampling
from synthset.generators.pipeline import ImageGenerator
from synthset.manifest import (
    CadsConfig,
    DiversityConfig,
    GenerationRequest,
    GeneratorConfig,
    expand,
    parse_manifest,
    plan_digest,
)

CADS = {"cads": {"tau1": 0.2, "tau2": 0.6, "noise_scale": 0.5}}


def config(model, diversity=None, **settings) -> GeneratorConfig:
    base = {"model": model, "steps": 4, "guidance_scale": 20.0, "device": "cpu", "dtype": "float32"}
    return GeneratorConfig(**{**base, "diversity": diversity, **settings})


def requests(seeds, prompt="a red seven") -> list[GenerationRequest]:
    return [
        GenerationRequest(sample_id=f"id-{s}", item_index=0, index=i, seed=s, prompt=prompt)
        for i, s in enumerate(seeds)
    ]


def pixels(model, diversity=None, seeds=(1, 2, 3), **settings) -> np.ndarray:
    results = ImageGenerator(config(model, diversity, **settings)).generate(requests(seeds))
    assert all(r.error is None for r in results), results[0].error
    return np.stack([np.asarray(r.image.convert("RGB"), dtype=np.int16) for r in results])


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to batched-kernel rounding (at most one level per channel)."""
    return np.abs(a - b).max() <= 1 and (a == b).mean() >= 0.99


def test_outside_the_interval_the_prediction_is_the_conditional_one(tiny_model):
    """No step inside the interval is guidance 1; every step inside is full guidance."""
    full = pixels(tiny_model)
    unguided = pixels(tiny_model, guidance_scale=1.0)
    assert np.abs(full - unguided).mean() > 2

    assert close(pixels(tiny_model, {"guidance_interval": [0.0, 1e-6]}), unguided)
    assert close(pixels(tiny_model, {"guidance_interval": [0.0, 1e6]}), full)
    partial = pixels(tiny_model, {"guidance_interval": [0.5, 3.0]})
    assert not close(partial, full) and not close(partial, unguided)


def test_the_interval_is_in_noise_levels_and_skips_the_unconditional_half(tiny_model):
    generator = ImageGenerator(config(tiny_model, {"guidance_interval": [0.5, 3.0]}))
    pipe, seen = generator.pipe, []
    hook = pipe.unet.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    try:
        with diverse_sampling(pipe, generator.config.diversity, [1, 2]) as call:
            pipe(prompt=["a", "b"], num_inference_steps=4, guidance_scale=20.0, output_type="np")
    finally:
        hook.remove()
    sigmas = [sigma for sigma, _ in call.calls]
    assert sigmas == sorted(sigmas, reverse=True) and len(sigmas) >= 4
    assert [guided for _, guided in call.calls] == [0.5 < s <= 3.0 for s in sigmas]
    assert seen == [4 if 0.5 < s <= 3.0 else 2 for s in sigmas]


def test_cads_changes_images_and_keeps_them_seeded_and_batch_independent(tiny_model):
    plain = pixels(tiny_model, seeds=range(10, 16))
    noised = pixels(tiny_model, CADS, seeds=range(10, 16))
    assert np.abs(plain - noised).mean() > 1

    again = pixels(tiny_model, CADS, seeds=range(10, 16), batch_size=2)
    alone = pixels(tiny_model, CADS, seeds=[13], batch_size=1)
    assert close(noised, again)
    assert close(noised[3], alone[0])
    assert np.abs(noised[3] - noised[4]).mean() > 10


def test_both_options_together_are_batch_independent(tiny_model):
    both = {"guidance_interval": [0.5, 3.0], **CADS}
    batched = pixels(tiny_model, both, seeds=range(20, 24), batch_size=4)
    alone = pixels(tiny_model, both, seeds=[22], batch_size=1)
    assert close(batched[2], alone[0])


def test_the_pipeline_is_unchanged_outside_diversity_options(tiny_model):
    before = pixels(tiny_model)
    pixels(tiny_model, {"guidance_interval": [0.5, 3.0], **CADS})
    assert np.array_equal(pixels(tiny_model), before)


def test_cads_schedule_anneals_from_noise_to_the_condition():
    cads = CadsConfig(tau1=0.2, tau2=0.6)
    gammas = [cads_gamma(t, cads) for t in (1.0, 0.6, 0.4, 0.2, 0.0)]
    assert gammas == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])


@pytest.fixture(scope="module", params=["sdxl", "sd3"])
def family(request, tmp_path_factory) -> str:
    save = getattr(tiny, f"save_tiny_{request.param}_pipeline")
    return str(save(tmp_path_factory.mktemp(f"diversity-{request.param}")))


def test_sdxl_and_sd3_take_both_options_batch_independently(family):
    both = {"guidance_interval": [0.5, 3.0], **CADS}
    plain = pixels(family, seeds=range(30, 33), steps=3)
    batched = pixels(family, both, seeds=range(30, 33), steps=3)
    alone = pixels(family, both, seeds=[31], batch_size=1, steps=3)
    assert close(batched[1], alone[0])
    assert not close(batched, plain)


def test_flux_is_refused_in_one_line(tmp_path):
    model = str(tiny.save_tiny_flux_pipeline(tmp_path / "flux"))
    with pytest.raises(SynthsetError, match="batch classifier-free guidance") as caught:
        ImageGenerator(config(model, CADS, steps=2))
    assert "\n" not in str(caught.value)


def manifest(generator: str):
    text = f"dataset: t\ngenerator: {{{generator}}}\nitems: [{{prompt: a, count: 2, seed: 1}}]\n"
    import yaml

    return parse_manifest(yaml.safe_load(text), base=Path("."), file="m.yaml")


@pytest.mark.parametrize(
    ("generator", "message"),
    [
        ("diversity: {guidance_interval: [5, 1]}", "0 ≤ lo < hi"),
        ("diversity: {guidance_interval: [-1, 1]}", "0 ≤ lo < hi"),
        ("diversity: {guidance_interval: [1]}", "guidance_interval"),
        ("diversity: {cads: {tau1: 0.9, tau2: 0.5}}", "tau1 (0.9) must be below tau2 (0.5)"),
        ("diversity: {cads: {noise_scale: 0}}", "greater than 0"),
        ("diversity: {cads: {psi: 2}}", "less than or equal to 1"),
        ("diversity: {cads: {noise: 1}}", "allowed: tau1, tau2, noise_scale, psi, rescale"),
        ("diversity: {bogus: 1}", "allowed: guidance_interval, cads"),
        ("guidance_scale: 1, diversity: {guidance_interval: [0.3, 5]}", "raise guidance_scale"),
    ],
)
def test_bad_options_are_one_line_errors(generator, message):
    with pytest.raises(ManifestError) as caught:
        manifest(generator)
    text = str(caught.value)
    assert message in text and "\n" not in text
    assert "m.yaml" in text and "diversity" in text


def test_options_enter_sample_ids_and_the_plan_only_when_set():
    plain = manifest("steps: 3")
    empty = manifest("steps: 3, diversity: {}")
    interval = manifest("steps: 3, diversity: {guidance_interval: [0.3, 5]}")
    cads = manifest("steps: 3, diversity: {cads: {}}")

    assert "diversity" not in plain.generator.identity()
    assert "diversity" not in plain.generator.model_dump()
    assert empty.generator.diversity is None
    assert plan_digest(empty) == plan_digest(plain)
    assert interval.generator.identity()["diversity"] == {"guidance_interval": (0.3, 5.0)}
    assert cads.generator.diversity == DiversityConfig(cads=CadsConfig())
    ids = {m: [r.sample_id for r in expand(x)] for m, x in [("p", plain), ("i", interval)]}
    ids["c"] = [r.sample_id for r in expand(cads)]
    assert len({tuple(v) for v in ids.values()}) == 3
    assert len({plan_digest(plain), plan_digest(interval), plan_digest(cads)}) == 3


def test_settings_name_the_options_when_set(tiny_model):
    assert "diversity" not in ImageGenerator(config(tiny_model)).settings()
    settings = ImageGenerator(config(tiny_model, {"guidance_interval": [0.5, 3.0]})).settings()
    assert settings["diversity"] == '{"guidance_interval":[0.5,3.0]}'


@pytest.fixture(scope="module")
def conditioned(tmp_path_factory):
    """A condition image and a mask."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("diversity-conditions")
    Image.new("RGB", (32, 32), (220, 30, 30)).save(folder / "red.png")
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    mask.save(folder / "mask.png")
    return folder


@pytest.mark.parametrize("kind", ["img2img", "inpaint", "controlnet"])
def test_img2img_inpainting_and_controlnet_take_both_options(
    tiny_model, tiny_controlnet, conditioned, kind
):
    both = {"guidance_interval": [0.5, 3.0], **CADS}
    red, mask = str(conditioned / "red.png"), str(conditioned / "mask.png")
    settings: dict = {"steps": 4, "strength": 0.9}
    fields: dict = {"image": red}
    if kind == "inpaint":
        settings["pipeline"] = "inpaint"
        fields["mask"] = mask
    elif kind == "img2img":
        settings["pipeline"] = "img2img"
    else:
        settings = {"steps": 4, "controlnet": str(tiny_controlnet)}
        fields = {"control": red}

    def made(diversity, seeds, batch_size):
        generator = ImageGenerator(config(tiny_model, diversity, batch_size=batch_size, **settings))
        batch = [r.model_copy(update=fields) for r in requests(seeds)]
        results = generator.generate(batch)
        assert all(r.error is None for r in results), results[0].error
        return np.stack([np.asarray(r.image.convert("RGB"), dtype=np.int16) for r in results])

    batched = made(both, [40, 41, 42], 3)
    assert close(batched[1], made(both, [41], 1)[0])
    assert not close(batched, made(None, [40, 41, 42], 3))
