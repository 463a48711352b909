"""ImageGenerator and load_pipeline on a tiny real Stable Diffusion pipeline (CPU)."""

import numpy as np
import pytest
import torch
from PIL import Image

from synthset.devices import resolve_device
from synthset.errors import SynthsetError
from synthset.generators import pipeline as pipeline_module
from synthset.generators.pipeline import ImageGenerator, load_pipeline
from synthset.generators.schedulers import SCHEDULERS
from synthset.manifest import GenerationRequest, GeneratorConfig


def config(model, **settings) -> GeneratorConfig:
    return GeneratorConfig(**{"model": model, "steps": 2, "device": "cpu", **settings})


def request(seed, prompt="a red seven", image=None, mask=None) -> GenerationRequest:
    return GenerationRequest(
        sample_id=f"id-{seed}-{prompt}",
        item_index=0,
        index=0,
        seed=seed,
        prompt=prompt,
        image=None if image is None else str(image),
        mask=None if mask is None else str(mask),
    )


def pixels(result) -> np.ndarray:
    assert result.error is None, result.error
    return np.asarray(result.image.convert("RGB"), dtype=np.int16)


@pytest.fixture
def conditions(tmp_path):
    """Condition images in `tmp_path`: red and blue (not at the model's size), a mask, junk.

    With `strength=0.5` and 2 steps the pipelines denoise once from a lightly noised latent of
    the condition, so the condition's colour clearly shows in the output.
    """
    Image.new("RGB", (40, 24), (220, 30, 30)).save(tmp_path / "red.png")
    Image.new("RGB", (16, 16), (30, 30, 220)).save(tmp_path / "blue.png")
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    mask.save(tmp_path / "mask.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    return tmp_path


def test_default_size_is_the_models_native_size(tiny_model):
    generator = ImageGenerator(config(tiny_model))
    (result,) = generator.generate([request(1)])

    assert (generator.width, generator.height) == (32, 32)
    assert result.image.size == (32, 32)
    assert result.image.mode == "RGB"


def test_explicit_size_is_used(tiny_model):
    (result,) = ImageGenerator(config(tiny_model, width=48, height=32)).generate([request(1)])
    assert result.image.size == (48, 32)


def test_an_image_does_not_depend_on_the_batch_it_was_made_in(tiny_model):
    """A request made alone equals the same request made inside a batch of 8.

    Each image has its own seeded generator, so the noise is identical; what differs is only
    the arithmetic: batched CPU kernels (matmul, convolution) block and reduce differently for
    batch 1 and batch 8, and the float outputs differ by ~1e-6. After conversion to uint8 a
    pixel that lies on a rounding boundary can move by one level, so pixels may differ by at
    most 1 and nearly all must be exactly equal. Different seeds, by contrast, give images
    that differ by tens of levels on average.
    """
    requests = [request(seed, f"prompt {seed}") for seed in range(100, 108)]
    batched = ImageGenerator(config(tiny_model, batch_size=8)).generate(requests)
    alone = ImageGenerator(config(tiny_model, batch_size=1)).generate([requests[3]])

    a, b = pixels(batched[3]), pixels(alone[0])
    assert np.abs(a - b).max() <= 1
    assert (a == b).mean() >= 0.99
    assert [r.request.sample_id for r in batched] == [r.sample_id for r in requests]

    other_seed = pixels(batched[4])
    assert np.abs(a - other_seed).mean() > 10
    assert (a == other_seed).mean() < 0.2


def test_same_seed_same_image_different_seed_different_image(tiny_model):
    generator = ImageGenerator(config(tiny_model, batch_size=4))
    first, again, other = generator.generate([request(7), request(7), request(8)])

    assert np.array_equal(pixels(first), pixels(again))
    assert np.abs(pixels(first) - pixels(other)).mean() > 10


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_each_scheduler_loads_and_generates(tiny_model, name):
    generator = ImageGenerator(config(tiny_model, scheduler=name))
    scheduler = generator.pipe.scheduler

    assert type(scheduler).__name__ == SCHEDULERS[name]
    assert scheduler.config.beta_schedule == "scaled_linear"
    assert scheduler.config.beta_end == pytest.approx(0.012)
    (result,) = generator.generate([request(3)])
    assert result.error is None
    assert result.image.size == (32, 32)


def test_load_pipeline_is_cached_per_configuration(tiny_model):
    pipe = load_pipeline(tiny_model, "text2img", "ddim", "float32", "cpu")

    assert load_pipeline(tiny_model, "text2img", "ddim", "float32", "cpu") is pipe
    assert ImageGenerator(config(tiny_model, scheduler="ddim", dtype="float32")).pipe is pipe
    other = load_pipeline(tiny_model, "text2img", "euler", "float32", "cpu")
    assert other is not pipe
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"


def test_img2img_uses_the_condition_image(tiny_model, conditions):
    generator = ImageGenerator(config(tiny_model, pipeline="img2img", strength=0.5))
    red, blue = generator.generate(
        [request(5, image=conditions / "red.png"), request(5, image=conditions / "blue.png")]
    )

    assert type(generator.pipe).__name__ == "StableDiffusionImg2ImgPipeline"
    assert red.image.size == blue.image.size == (32, 32)
    assert np.abs(pixels(red) - pixels(blue)).mean() > 5


def test_inpaint_uses_image_and_mask(tiny_model, conditions):
    generator = ImageGenerator(config(tiny_model, pipeline="inpaint", strength=0.5))
    results = generator.generate(
        [
            request(5, image=conditions / "red.png", mask=conditions / "mask.png"),
            request(5, image=conditions / "blue.png", mask=conditions / "mask.png"),
        ]
    )

    assert type(generator.pipe).__name__ == "StableDiffusionInpaintPipeline"
    assert [r.error for r in results] == [None, None]
    assert [r.image.size for r in results] == [(32, 32), (32, 32)]
    assert np.abs(pixels(results[0]) - pixels(results[1])).mean() > 5


def test_a_corrupt_condition_fails_only_its_own_request(tiny_model, conditions):
    generator = ImageGenerator(config(tiny_model, pipeline="img2img", batch_size=4))
    requests = [
        request(1, image=conditions / "red.png"),
        request(2, image=conditions / "corrupt.png"),
        request(3, image=conditions / "blue.png"),
    ]

    results = generator.generate(requests)

    assert [r.request for r in results] == requests
    good = [results[0], results[2]]
    assert all(r.error is None and r.image.size == (32, 32) for r in good)
    bad = results[1]
    assert bad.image is None and bad.input_error
    assert bad.error.startswith("unreadable condition image")
    assert "corrupt.png" in bad.error


class _OutOfMemoryAbove(ImageGenerator):
    """A real generator whose device 'has memory' for at most `limit` images per call."""

    limit = 2
    calls: list[int]

    def _call(self, batch):
        self.calls = [*getattr(self, "calls", []), len(batch)]
        if len(batch) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super()._call(batch)


def test_out_of_memory_halves_the_batch_and_keeps_every_image(tiny_model, monkeypatch):
    monkeypatch.setattr(pipeline_module, "_FITTING_BATCH", {})
    reference = ImageGenerator(config(tiny_model, batch_size=1))
    generator = _OutOfMemoryAbove(config(tiny_model, batch_size=8))
    requests = [request(seed) for seed in range(8)]

    results = generator.generate(requests)

    assert generator.calls == [8, 4, 2, 2, 2, 2]
    assert generator.batch_size == 2
    next_shard = _OutOfMemoryAbove(config(tiny_model, batch_size=8))
    next_shard.generate(requests[:4])
    assert next_shard.calls == [2, 2], "the halving persists for the process"
    expected = reference.generate(requests)
    for got, want in zip(results, expected, strict=True):
        assert np.abs(pixels(got) - pixels(want)).max() <= 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(tiny_model):
    with pytest.raises(SynthsetError, match="no CUDA device is visible; use 'auto' or 'cpu'"):
        resolve_device("cuda")
    with pytest.raises(SynthsetError, match="'cuda:1'"):
        ImageGenerator(config(tiny_model, device="cuda:1"))
    assert resolve_device("auto") == "cpu"


def test_a_folder_that_is_not_a_pipeline_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SynthsetError, match="cannot load model .*empty.* as a text2img pipeline"):
        load_pipeline(str(tmp_path / "empty"), "text2img", None, "float32", "cpu")


def test_pickle_weights_load_only_when_the_manifest_allows_them(tmp_path):
    from synthset.generators.tiny import build_tiny_sd_pipeline

    folder = tmp_path / "pickled"
    build_tiny_sd_pipeline(seed=3).save_pretrained(folder, safe_serialization=False)
    unet = folder / "unet"
    assert not list(unet.glob("*.safetensors")) and list(unet.glob("*.bin"))
    with pytest.raises(SynthsetError, match="allow_pickle: true"):
        ImageGenerator(config(str(folder)))
    generator = ImageGenerator(config(str(folder), allow_pickle=True))
    (result,) = generator.generate([request(1)])
    assert pixels(result).std() > 0
