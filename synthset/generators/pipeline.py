"""A thin wrapper over diffusers pipelines: load once per process, generate batches of requests.

Any model `DiffusionPipeline.from_pretrained` loads works, by Hub id or local folder; img2img and
inpainting go through diffusers' AutoPipeline classes with the item's condition images. Each
image gets its own seeded `torch.Generator`, so an image does not depend on which batch it was
made in. On CUDA the batch is halved and retried on out-of-memory.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from synthset.errors import SynthsetError
from synthset.generators.builtin import resolve_model
from synthset.generators.schedulers import make_scheduler
from synthset.manifest import GenerationRequest, GeneratorConfig

log = logging.getLogger(__name__)


@dataclass
class GenerationResult:
    """One request's outcome: an image, or the error that prevented it."""

    request: GenerationRequest
    image: Image.Image | None = None
    error: str | None = None


def resolve_device(device: str) -> str:
    """`auto` is CUDA when a GPU is visible, else CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SynthsetError(f"generator.device is {device!r} but no CUDA device is visible; "
                            "use 'auto' or 'cpu'")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    """`auto` is bfloat16 (or float16 where bf16 is unsupported) on CUDA, float32 elsewhere."""
    import torch

    if dtype == "auto":
        if not device.startswith("cuda"):
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, dtype)


def _quiet_libraries() -> None:
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


@functools.lru_cache(maxsize=4)
def load_pipeline(model: str, kind: str, scheduler: str | None, dtype: str, device: str) -> Any:
    """Load a diffusers pipeline once per process for each distinct (model, kind, ...) key."""
    import diffusers

    _quiet_libraries()
    loader = {
        "text2img": diffusers.DiffusionPipeline,
        "img2img": diffusers.AutoPipelineForImage2Image,
        "inpaint": diffusers.AutoPipelineForInpainting,
    }[kind]
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    try:
        pipe = loader.from_pretrained(resolve_model(model), dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        raise SynthsetError(f"cannot load model {model!r} as a {kind} pipeline: "
                            f"{str(exc).splitlines()[0]}") from exc
    if scheduler is not None:
        pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    log.info("loaded %s (%s) on %s as %s", model, type(pipe).__name__, device, torch_dtype)
    return pipe.to(device)


class ImageGenerator:
    """Generates the images of a list of requests with one configured pipeline."""

    def __init__(self, config: GeneratorConfig):
        self.config = config
        self.pipe = load_pipeline(config.model, config.pipeline, config.scheduler, config.dtype,
                                  config.device)
        self.batch_size = config.batch_size
        self.height, self.width = self._size()

    def _size(self) -> tuple[int, int]:
        pipe = self.pipe
        default = pipe.unet.config.sample_size * getattr(pipe, "vae_scale_factor", 8)
        return self.config.height or default, self.config.width or default

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Generate in batches of `batch_size`; failures become results with an `error`."""
        results: list[GenerationResult] = []
        start = 0
        while start < len(requests):
            batch = requests[start : start + self.batch_size]
            results.extend(self._generate_batch(batch))
            start += len(batch)
        return results

    def _generate_batch(self, batch: Sequence[GenerationRequest]) -> list[GenerationResult]:
        import torch

        try:
            return [GenerationResult(r, image=img) for r, img in zip(batch, self._call(batch),
                                                                        strict=True)]
        except torch.OutOfMemoryError:
            if len(batch) == 1:
                return [GenerationResult(batch[0], error="out of memory at batch size 1")]
            torch.cuda.empty_cache()
            self.batch_size = max(1, len(batch) // 2)
            log.warning("CUDA out of memory; batch size halved to %d", self.batch_size)
            half = len(batch) // 2
            return self._generate_batch(batch[:half]) + self._generate_batch(batch[half:])
        except Exception as exc:
            if len(batch) == 1:
                return [GenerationResult(batch[0], error=f"{type(exc).__name__}: {exc}")]
            return [res for r in batch for res in self._generate_batch([r])]

    def _condition(self, path: str | None, mode: str) -> Image.Image | None:
        if path is None:
            return None
        with Image.open(path) as img:
            return img.convert(mode).resize((self.width, self.height), Image.Resampling.LANCZOS)

    def _call(self, batch: Sequence[GenerationRequest]) -> list[Image.Image]:
        import torch

        cfg = self.config
        kwargs: dict[str, Any] = dict(
            prompt=[r.prompt for r in batch],
            negative_prompt=[r.negative_prompt for r in batch],
            generator=[torch.Generator("cpu").manual_seed(r.seed) for r in batch],
            num_inference_steps=cfg.steps,
            guidance_scale=cfg.guidance_scale,
            height=self.height,
            width=self.width,
            output_type="pil",
        )
        if cfg.pipeline != "text2img":
            kwargs["image"] = [self._condition(r.image, "RGB") for r in batch]
            kwargs["strength"] = cfg.strength
        if cfg.pipeline == "inpaint":
            kwargs["mask_image"] = [self._condition(r.mask, "L") for r in batch]
        with torch.inference_mode():
            return list(self.pipe(**kwargs).images)
