"""Measures of the default text-to-image model, taken through synthset's own `ImageGenerator`.

- **Adherence**: the share of images the digit judge reads as the digit the prompt named.
- **Colour correctness**, on prompts that name colours: an image is right when both of these
  hold. Its background colour, the per-channel median of the 2-pixel border, has the named
  background as its nearest palette colour (RGB distance). Its ink colour, the per-channel
  median of the stroke pixels (those at least half as far from the background colour as the
  farthest pixel), has the named ink as its nearest palette colour.
- **Speed**: images per second of `ImageGenerator.generate`, VAE decode and PIL images included,
  after one warm-up batch.

Prompts come from a seeded plan that covers all ten digits, the plain and the colour templates.
Every function returns plain values or dicts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthset.models.digits import COLOURS, DIGIT_WORDS, TEMPLATES_COLOUR, TEMPLATES_PLAIN
from synthset.models.judge import Judge, border_colour, load_judge, stroke_map

_PALETTE_NAMES = list(COLOURS)
_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)


@dataclass(frozen=True)
class PromptSpec:
    """A prompt and what it asks for (`ink`/`bg` are None for plain prompts)."""

    prompt: str
    digit: int
    ink: str | None = None
    bg: str | None = None


def prompt_plan(n: int, seed: int = 0, colour_share: float = 0.5) -> list[PromptSpec]:
    """`n` prompts cycling through the digits, plain or naming an ink and a background colour."""
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(n):
        digit = i % 10
        if rng.random() < colour_share:
            ink, bg = (_PALETTE_NAMES[j] for j in rng.choice(len(COLOURS), 2, replace=False))
            template = TEMPLATES_COLOUR[rng.integers(len(TEMPLATES_COLOUR))]
        else:
            ink = bg = None
            template = TEMPLATES_PLAIN[rng.integers(len(TEMPLATES_PLAIN))]
        prompt = template.format(word=DIGIT_WORDS[digit], n=digit, ink=ink, bg=bg)
        specs.append(PromptSpec(prompt, digit, ink, bg))
    return specs


def nearest_colour(rgb: np.ndarray) -> list[str]:
    """The palette name nearest (RGB distance) to each colour of `rgb` (N, 3)."""
    dist = np.linalg.norm(np.asarray(rgb, np.float32)[:, None] - _PALETTE[None], axis=-1)
    return [_PALETTE_NAMES[i] for i in dist.argmin(axis=1)]


def measured_colours(images: np.ndarray) -> tuple[list[str], list[str]]:
    """The (ink, background) palette names of uint8 RGB images (N, H, W, 3), as defined above."""
    strokes = stroke_map(images) >= 0.5
    inks = np.stack(
        [np.median(img[mask], axis=0) for img, mask in zip(images, strokes, strict=True)]
    )
    return nearest_colour(inks), nearest_colour(border_colour(images))


def adherence(images: np.ndarray, specs: list[PromptSpec], judge: Judge) -> float:
    """Share of images the judge reads as their prompt's digit."""
    digits = np.array([s.digit for s in specs])
    return float((judge.predict(images) == digits).mean())


def colour_correctness(images: np.ndarray, specs: list[PromptSpec]) -> float | None:
    """Share of colour-naming prompts whose ink and background are both right (None if none)."""
    chosen = [i for i, s in enumerate(specs) if s.ink is not None]
    if not chosen:
        return None
    inks, bgs = measured_colours(images[chosen])
    right = [
        ink == specs[i].ink and bg == specs[i].bg
        for i, ink, bg in zip(chosen, inks, bgs, strict=True)
    ]
    return float(np.mean(right))


def _generator(
    model: str | Path, steps: int, guidance: float, scheduler: str | None, batch_size: int
) -> Any:
    from synthset.generators.pipeline import ImageGenerator
    from synthset.manifest import GeneratorConfig

    return ImageGenerator(
        GeneratorConfig(
            model=str(model),
            steps=steps,
            guidance_scale=guidance,
            scheduler=scheduler,
            batch_size=batch_size,
            device="cpu",
            dtype="float32",
        )
    )


def _requests(specs: list[PromptSpec], seed: int, negative_prompt: str = "") -> list[Any]:
    from synthset.manifest import GenerationRequest

    return [
        GenerationRequest(
            sample_id=f"eval-{seed}-{i}",
            item_index=0,
            index=i,
            seed=seed * 100_000 + i,
            prompt=s.prompt,
            negative_prompt=negative_prompt,
        )
        for i, s in enumerate(specs)
    ]


def generate(
    model: str | Path,
    specs: list[PromptSpec],
    steps: int,
    guidance: float,
    scheduler: str | None = None,
    seed: int = 0,
    batch_size: int = 32,
    negative_prompt: str = "",
) -> np.ndarray:
    """Images (uint8 N×H×W×3) for `specs`, made by `ImageGenerator`, one seed per image."""
    generator = _generator(model, steps, guidance, scheduler, batch_size)
    results = generator.generate(_requests(specs, seed, negative_prompt))
    errors = [r.error for r in results if r.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} images failed, first: {errors[0]}")
    return np.stack([np.asarray(r.image.convert("RGB")) for r in results])


def images_per_second(
    model: str | Path,
    steps: int,
    guidance: float,
    scheduler: str | None = None,
    n: int = 128,
    batch_size: int = 32,
) -> float:
    """Throughput of `ImageGenerator.generate` on `n` images, after a warm-up batch."""
    generator = _generator(model, steps, guidance, scheduler, batch_size)
    requests = _requests(prompt_plan(n + batch_size, seed=1), seed=1)
    generator.generate(requests[:batch_size])
    started = time.perf_counter()
    generator.generate(requests[batch_size:])
    return n / (time.perf_counter() - started)


def evaluate_model(
    model: str | Path,
    steps: int,
    guidance: float,
    scheduler: str | None = None,
    n: int = 200,
    seed: int = 0,
    judge: Judge | None = None,
    negative_prompt: str = "",
    speed_images: int = 0,
) -> dict[str, Any]:
    """Adherence and colour correctness on `n` seeded prompts; speed if `speed_images` > 0."""
    judge = judge or load_judge()
    specs = prompt_plan(n, seed=seed)
    images = generate(
        model, specs, steps, guidance, scheduler, seed=seed, negative_prompt=negative_prompt
    )
    result: dict[str, Any] = {
        "steps": steps,
        "guidance": guidance,
        "scheduler": scheduler or "saved default",
        "images": n,
        "adherence": adherence(images, specs, judge),
        "colour_correctness": colour_correctness(images, specs),
    }
    if speed_images:
        result["images_per_second"] = images_per_second(
            model, steps, guidance, scheduler, n=speed_images
        )
    return result
