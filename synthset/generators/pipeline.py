"""A thin wrapper over diffusers pipelines: load once per process, generate batches of requests.

Any model `DiffusionPipeline.from_pretrained` loads works, by Hub id or local folder; img2img and
inpainting go through diffusers' AutoPipeline classes with the item's condition images. Each
image gets its own seeded `torch.Generator`, so an image does not depend on which batch it was
made in. On CUDA the batch is halved and retried on out-of-memory.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from synthset.devices import resolve_device, resolve_dtype
from synthset.errors import SynthsetError
from synthset.generators.base import Generator, register
from synthset.generators.builtin import require_model, resolve_model
from synthset.generators.diversity import check_pipeline, diverse_sampling
from synthset.generators.schedulers import check_options, scheduler_class, swap_scheduler
from synthset.generators.speed import apply_speed
from synthset.manifest import (
    GenerationRequest,
    GeneratorConfig,
    SpeedConfig,
    model_label,
    public_path_text,
)

log = logging.getLogger(__name__)
_FITTING_BATCH: dict[str, int] = {}
"""The batch size out-of-memory halving settled on, per model and device, for this process:
later shards start there instead of running out of memory again."""
_LOADING = threading.Lock()
"""Loads one model at a time: transformers' empty-weight initialisation is process-global."""


@dataclass
class GenerationResult:
    """One request's outcome: an image, or the error that prevented it."""

    request: GenerationRequest
    image: Image.Image | None = None
    error: str | None = None
    input_error: bool = False


@dataclass
class _Prepared:
    position: int
    request: GenerationRequest
    image: Image.Image | None
    mask: Image.Image | None
    control: Image.Image | None = None


def _quiet_libraries() -> None:
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


_LOADERS = {
    "text2img": "DiffusionPipeline",
    "img2img": "AutoPipelineForImage2Image",
    "inpaint": "AutoPipelineForInpainting",
}


def load_pipeline(
    model: str,
    kind: str,
    scheduler: str | None,
    dtype: str,
    device: str,
    scheduler_options: str = "{}",
) -> Any:
    """Load a diffusers pipeline once per process for each distinct (model, kind, ...) key;
    `scheduler_options` is JSON (hashable for the cache), with the LoRAs under `loras`."""
    return _cached(model, kind, scheduler, dtype, device, scheduler_options)


@functools.lru_cache(maxsize=4)
def _cached(
    model: str, kind: str, scheduler: str | None, dtype: str, device: str, options: str
) -> Any:
    with _LOADING:
        return _load(model, kind, scheduler, dtype, device, json.loads(options))


def _load(
    model: str, kind: str, scheduler: str | None, dtype: str, device: str, options: dict
) -> Any:
    import diffusers

    _quiet_libraries()
    loader = getattr(diffusers, _LOADERS[kind])
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    revision = options.pop("revision", None)
    safetensors = None if options.pop("allow_pickle", False) else True
    extra: dict[str, Any] = {"use_safetensors": safetensors}
    if controlnet := options.pop("controlnet", None):
        extra["controlnet"] = _controlnet(controlnet, torch_dtype, safetensors)
        loader = diffusers.AutoPipelineForText2Image
    try:
        pipe = loader.from_pretrained(
            resolve_model(model), dtype=torch_dtype, revision=revision, **extra
        )
    except (OSError, ValueError) as exc:
        raise SynthsetError(
            f"cannot load model {model!r} as a {kind} pipeline: {_first_line(exc)}"
        ) from exc
    loras = options.pop("loras", [])
    speed = SpeedConfig.model_validate(options.pop("speed", {}))
    if scheduler is not None or options:
        pipe.scheduler = swap_scheduler(pipe.scheduler, scheduler, options)
    if loras:
        _load_loras(pipe, loras)
    pipe.set_progress_bar_config(disable=True)
    log.info("loaded %s (%s) on %s as %s", model, type(pipe).__name__, device, torch_dtype)
    return apply_speed(pipe, speed, device)


def _first_line(exc: Exception) -> str:
    """The first line of a loader's error, with the way out when pickle weights were refused."""
    line = str(exc).splitlines()[0]
    if "safetensors" in str(exc).lower():
        line += (
            " (only safetensors weights are loaded by default: pickle `.bin` files can run "
            "code when loaded; set `generator.allow_pickle: true` if you trust this model)"
        )
    return line


def _controlnet(path: str, dtype: Any, safetensors: bool | None) -> Any:
    """A ControlNet of the class its config names (SD/SDXL `ControlNetModel`, Flux's, ...)."""
    import diffusers

    try:
        config = diffusers.ControlNetModel.load_config(path)
        cls = getattr(diffusers, config.get("_class_name", "ControlNetModel"))
        return cls.from_pretrained(path, dtype=dtype, use_safetensors=safetensors)
    except (OSError, ValueError, AttributeError) as exc:
        raise SynthsetError(f"cannot load ControlNet {path!r}: {_first_line(exc)}") from exc


def _load_loras(pipe: Any, loras: list[dict[str, Any]]) -> None:
    """Each LoRA (a safetensors file) as a named adapter, all active at their scales."""
    names = [f"lora{i}" for i in range(len(loras))]
    for name, spec in zip(names, loras, strict=True):
        path = Path(spec["path"])
        try:
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
        except (OSError, ValueError, KeyError) as exc:
            raise SynthsetError(f"cannot load LoRA {path}: {str(exc).splitlines()[0]}") from exc
    pipe.set_adapters(names, adapter_weights=[spec["scale"] for spec in loras])


@register
class ImageGenerator(Generator):
    """Generates the images of a list of requests with one configured diffusers pipeline."""

    kind = "diffusers"

    def __init__(self, config: GeneratorConfig):
        self.config = config
        settings: dict[str, Any] = dict(config.scheduler_options)
        if config.loras:
            settings["loras"] = [spec.model_dump() for spec in config.loras]
        if config.revision:
            settings["revision"] = config.revision
        if config.allow_pickle:
            settings["allow_pickle"] = True
        if config.controlnet:
            settings["controlnet"] = config.controlnet
        if config.speed != SpeedConfig():
            settings["speed"] = config.speed.model_dump()
        options = json.dumps(settings, sort_keys=True)
        self.pipe = load_pipeline(
            config.model, config.pipeline, config.scheduler, config.dtype, config.device, options
        )
        self.batch_size = min(config.batch_size, _FITTING_BATCH.get(self._oom_key(), 1 << 30))
        self.height, self.width = self._size()
        self.accepted = set(inspect.signature(self.pipe.__call__).parameters)
        if config.diversity is not None:
            check_pipeline(self.pipe)

    @classmethod
    def check(cls, config: GeneratorConfig) -> None:
        """The model can be found (a folder, or the Hugging Face cache when offline) and the
        scheduler takes the options."""
        folder = require_model(config.model, config.revision)
        if not config.scheduler_options:
            return
        if config.scheduler is not None:
            check_options(scheduler_class(config.scheduler), config.scheduler_options)
        elif folder is not None and (folder / "scheduler" / "scheduler_config.json").is_file():
            import diffusers

            saved = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
            check_options(getattr(diffusers, saved["_class_name"]), config.scheduler_options)

    def settings(self) -> dict[str, Any]:
        c = self.config
        return {
            "model": model_label(c.model),
            "pipeline": c.pipeline,
            "scheduler": c.scheduler or type(self.pipe.scheduler).__name__,
            "steps": c.steps,
            "guidance": c.guidance_scale,
            "width": self.width,
            "height": self.height,
        } | ({"diversity": c.diversity.model_dump_json()} if c.diversity else {})

    def _size(self) -> tuple[int, int]:
        default = native_size(self.pipe)
        return self.config.height or default, self.config.width or default

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Generate in batches of `batch_size`; failures become results with an `error`.

        A request whose condition images cannot be read fails alone, before generation, with
        `input_error` set; the others are generated. When CUDA runs out of memory the batch
        size is halved (for the rest of this process) and the batch retried.
        """
        self._refuse_unsupported(requests)
        results: list[GenerationResult | None] = [None] * len(requests)
        ready: list[_Prepared] = []
        for position, request in enumerate(requests):
            try:
                image = self._condition(request.image, "RGB")
                mask = self._condition(request.mask, "L")
                control = self._condition(request.control, "RGB")
                ready.append(_Prepared(position, request, image, mask, control))
            except (OSError, ValueError) as exc:
                detail = public_path_text(str(exc), (request.image, request.mask, request.control))
                results[position] = GenerationResult(
                    request, error=f"unreadable condition image: {detail}", input_error=True
                )
        for prepared, result in self._batches(ready):
            results[prepared.position] = result
        return [r for r in results if r is not None]

    def _refuse_unsupported(self, requests: Sequence[GenerationRequest]) -> None:
        """Settings this pipeline cannot take are the user's to fix, before any image."""
        name = type(self.pipe).__name__
        if "negative_prompt" not in self.accepted and any(r.negative_prompt for r in requests):
            raise SynthsetError(
                f"{name} ({self.config.model}) takes no negative_prompt; "
                "remove negative_prompt from the items"
            )
        if self.config.true_cfg_scale is not None and "true_cfg_scale" not in self.accepted:
            raise SynthsetError(
                f"{name} takes no true_cfg_scale (Flux-style true classifier-free guidance); "
                "use guidance_scale"
            )

    def _batches(self, ready: list[_Prepared]) -> list[tuple[_Prepared, GenerationResult]]:
        """Every prepared request with its result, batch by batch, halving after OOM."""
        import torch

        done: list[tuple[_Prepared, GenerationResult]] = []
        start = 0
        while start < len(ready):
            batch = ready[start : start + self.batch_size]
            try:
                batch_results = self._generate_batch(batch)
            except torch.OutOfMemoryError:
                if self._shrink_after_oom(len(batch)):
                    continue
                batch = batch[:1]
                batch_results = [
                    GenerationResult(batch[0].request, error="CUDA out of memory at batch size 1")
                ]
            done += zip(batch, batch_results, strict=True)
            start += len(batch)
        return done

    def _oom_key(self) -> str:
        """Batches that ran out of memory once will again: same model, size and device."""
        c = self.config
        return repr((c.model, c.pipeline, c.dtype, c.device, c.height, c.width))

    def _shrink_after_oom(self, size: int) -> bool:
        """Halve the batch size after CUDA ran out of memory; False when already at 1."""
        import torch

        if size == 1:
            return False
        torch.cuda.empty_cache()
        self.batch_size = size // 2
        _FITTING_BATCH[self._oom_key()] = self.batch_size
        log.warning("CUDA out of memory at batch size %d; batch size now %d", size, self.batch_size)
        return True

    def _generate_batch(self, batch: Sequence[_Prepared]) -> list[GenerationResult]:
        """One pipeline call; on an error other than out-of-memory, each request alone."""
        import torch

        try:
            images = self._call(batch)
            return [
                GenerationResult(p.request, image=img) for p, img in zip(batch, images, strict=True)
            ]
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:
            if len(batch) == 1:
                return [GenerationResult(batch[0].request, error=f"{type(exc).__name__}: {exc}")]
            return [res for p in batch for res in self._generate_batch([p])]

    def _condition(self, path: str | None, mode: str) -> Image.Image | None:
        if path is None:
            return None
        with Image.open(path) as img:
            return img.convert(mode).resize((self.width, self.height), Image.Resampling.LANCZOS)

    def _call(self, batch: Sequence[_Prepared]) -> list[Image.Image]:
        import torch

        cfg = self.config
        kwargs: dict[str, Any] = dict(
            prompt=[p.request.prompt for p in batch],
            generator=[torch.Generator("cpu").manual_seed(p.request.seed) for p in batch],
            num_inference_steps=cfg.steps,
            guidance_scale=cfg.guidance_scale,
            height=self.height,
            width=self.width,
            output_type="pil",
        )
        if "negative_prompt" in self.accepted:
            kwargs["negative_prompt"] = [p.request.negative_prompt for p in batch]
        if cfg.true_cfg_scale is not None:
            kwargs["true_cfg_scale"] = cfg.true_cfg_scale
        if cfg.pipeline != "text2img":
            kwargs["image"] = [p.image for p in batch]
            kwargs["strength"] = cfg.strength
        if cfg.pipeline == "inpaint":
            kwargs["mask_image"] = [p.mask for p in batch]
        if cfg.controlnet:
            key = "control_image" if "control_image" in self.accepted else "image"
            kwargs[key] = [p.control for p in batch]
            kwargs["controlnet_conditioning_scale"] = cfg.controlnet_scale
        seeds = [p.request.seed for p in batch]
        with torch.inference_mode(), diverse_sampling(self.pipe, cfg.diversity, seeds):
            return list(self.pipe(**kwargs).images)


def native_size(pipe: Any) -> int:
    """The image side a pipeline makes when not told: its default sample size (in latents)
    times the VAE's scale factor, read from what the pipeline itself uses (UNet or
    transformer pipelines alike)."""
    scale = getattr(pipe, "vae_scale_factor", 8)
    latents = getattr(pipe, "default_sample_size", None)
    if latents is None:
        denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        latents = getattr(getattr(denoiser, "config", None), "sample_size", None)
    if latents is None:
        raise SynthsetError(
            f"{type(pipe).__name__} has no default image size; set generator.height and width"
        )
    return int(latents) * int(scale)


def pipeline_loads() -> int:
    """How many pipelines this process has loaded (a worker reusing its model stays at 1)."""
    return _cached.cache_info().misses
