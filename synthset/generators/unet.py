"""The `unet2d` generator kind: pixel-space diffusion with a diffusers `UNet2DModel`, plain or
class-conditional, sampled with DDPM, DDIM or DPM-Solver (any scheduler name a manifest may
use).

The model is a folder as `DDPMPipeline.save_pretrained` writes it (`model_index.json`,
`unet/`, `scheduler/`); a class-conditional one (`num_class_embeds`) also has `classes.json`
listing what each class index means, and each request names its class in
`metadata.label` (a value of that list, or its index). Every image has its own seeded
`torch.Generator` for its starting noise and each sampler step, so an image does not depend
on the batch it was made in. A UNet with one class embedding more than `classes.json` names
has a null class (trained with label dropout): `generator.guidance_scale`, when given, is
then the classifier-free guidance scale (none otherwise). Images are one-channel (mode "L")
or RGB as the UNet's channels say. Models trained by `synthset.privacy.medical.train` are
such folders.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from synthset.errors import SynthsetError
from synthset.generators.base import Generator, register
from synthset.generators.builtin import require_model, resolve_model
from synthset.generators.pipeline import GenerationResult
from synthset.generators.schedulers import make_scheduler
from synthset.manifest import GenerationRequest, GeneratorConfig, model_label

CLASSES = "classes.json"
_LOADING = threading.Lock()


@functools.lru_cache(maxsize=4)
def load_unet(folder: str, device: str) -> tuple[Any, Any, list[Any]]:
    """The UNet (eval mode, on `device`), its training scheduler and its class values; once
    per process for each folder."""
    from diffusers import DDPMScheduler, UNet2DModel

    from synthset.devices import resolve_device

    path = Path(folder)
    with _LOADING:
        try:
            unet = UNet2DModel.from_pretrained(path / "unet", use_safetensors=True)
            scheduler = DDPMScheduler.from_pretrained(path / "scheduler")
        except (OSError, ValueError) as exc:
            first = str(exc).splitlines()[0]
            raise SynthsetError(
                f"cannot load {path.name} as a UNet2DModel folder: {first}"
            ) from exc
    classes = []
    if (path / CLASSES).is_file():
        classes = list(json.loads((path / CLASSES).read_text()).get("classes", []))
    return unet.to(resolve_device(device)).eval(), scheduler, classes


@register
class UNetGenerator(Generator):
    """Samples a `UNet2DModel` folder; `generator.steps` and `generator.scheduler` choose the
    sampler (default DDIM, 50 steps)."""

    kind = "unet2d"

    def __init__(self, config: GeneratorConfig):
        from synthset.devices import resolve_device

        self.config = config
        self.device = resolve_device(config.device)
        self.unet, self.train_scheduler, self.classes = load_unet(
            resolve_model(config.model), config.device
        )
        self.scheduler_name = config.scheduler or "ddim"
        self.size = int(self.unet.config.sample_size)
        embeds = self.unet.config.num_class_embeds
        self.conditional = embeds is not None
        if self.conditional and len(self.classes) > embeds:
            raise SynthsetError(f"{CLASSES} names more classes than the UNet has embeddings")
        self.null = (
            len(self.classes) if self.conditional and embeds == len(self.classes) + 1 else None
        )
        explicit = "guidance_scale" in config.model_fields_set
        self.guidance = float(config.guidance_scale) if explicit and self.null is not None else 1.0

    @classmethod
    def check(cls, config: GeneratorConfig) -> None:
        folder = require_model(config.model, config.revision)
        if folder is None or not (folder / "unet" / "config.json").is_file():
            raise SynthsetError(
                f"generator.model {config.model!r}: kind unet2d needs a local folder with "
                "unet/ and scheduler/ (DDPMPipeline.save_pretrained)"
            )

    def settings(self) -> dict[str, Any]:
        return {
            "generator": self.kind,
            "model": model_label(self.config.model),
            "scheduler": self.scheduler_name,
            "steps": self.config.steps,
            "guidance": self.guidance,
            "width": self.size,
            "height": self.size,
        }

    def class_index(self, request: GenerationRequest) -> int | None:
        """The class a request asks for (`metadata.label`), as the UNet's class index."""
        if not self.conditional:
            return None
        label = request.metadata.get("label")
        names = [str(c) for c in self.classes]
        if label is not None and str(label) in names:
            return names.index(str(label))
        if isinstance(label, int | np.integer) and 0 <= int(label) < len(names):
            return int(label)
        raise SynthsetError(
            f"this UNet is class-conditional: give each item metadata.label, one of "
            f"{', '.join(names) or 'its class indices'} (got {label!r})"
        )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        labels = [self.class_index(r) for r in requests]
        results: list[GenerationResult] = []
        batch = self.config.batch_size
        for start in range(0, len(requests), batch):
            chunk = list(requests[start : start + batch])
            arrays = self.sample([r.seed for r in chunk], labels[start : start + batch])
            results += [
                GenerationResult(r, image=to_image(a)) for r, a in zip(chunk, arrays, strict=True)
            ]
        return results

    def sample(self, seeds: Sequence[int], labels: Sequence[int | None]) -> np.ndarray:
        """Images in [0, 1], (n, channels, size, size), one seeded generator per image."""
        import torch

        scheduler = make_scheduler(
            self.scheduler_name, self.train_scheduler.config, options=self._options()
        )
        scheduler.set_timesteps(self.config.steps)
        generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        channels = self.unet.config.in_channels
        x = torch.cat(
            [torch.randn((1, channels, self.size, self.size), generator=g) for g in generators]
        ).to(self.device)
        x = x * scheduler.init_noise_sigma
        y = None
        if self.conditional:
            y = torch.tensor([int(v) for v in labels], device=self.device)
        with torch.inference_mode():
            for t in scheduler.timesteps:
                x = scheduler.step(self._predict(x, t, y, scheduler), t, x, generator=generators)
                x = x.prev_sample
        return ((x.clamp(-1, 1) + 1) / 2).float().cpu().numpy()

    def _predict(self, x: Any, t: Any, y: Any, scheduler: Any) -> Any:
        """The UNet's noise prediction; with guidance, classifier-free: the unconditional
        prediction (the null class) moved `guidance` times towards the conditional one."""
        import torch

        model_input = scheduler.scale_model_input(x, t)
        if y is None or self.guidance == 1.0:
            return self.unet(model_input, t, class_labels=y).sample
        both = self.unet(
            torch.cat([model_input, model_input]),
            t,
            class_labels=torch.cat([y, torch.full_like(y, self.null)]),
        ).sample
        conditional, unconditional = both.chunk(2)
        return unconditional + self.guidance * (conditional - unconditional)

    def _options(self) -> dict[str, Any]:
        options = dict(self.config.scheduler_options)
        if self.scheduler_name == "dpmpp":
            options.setdefault("algorithm_type", "dpmsolver++")
        return options


def to_image(array: np.ndarray) -> Image.Image:
    """A (channels, h, w) array in [0, 1] as an 8-bit PIL image (L or RGB)."""
    pixels = np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)
    if pixels.shape[0] == 1:
        return Image.fromarray(pixels[0])
    return Image.fromarray(np.ascontiguousarray(np.moveaxis(pixels, 0, -1)))
