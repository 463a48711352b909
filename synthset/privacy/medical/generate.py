"""Synthetic images from a trained checkpoint, through synthset's `unet2d` generator kind.

Labels are drawn from the checkpoint's class shares (under DP, the DP estimate) by largest
remainder, so `count` images hold each class in proportion; each image is a
`GenerationRequest` with a seed of its own and a sample id that hashes the model's weights,
the sampler, the seed and the label, as every synthset image does. The images are kept as
the 8-bit PNGs that will be published, so the memorization gate checks exactly what leaves.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from synthset.manifest import GenerationRequest, GeneratorConfig
from synthset.privacy.medical.config import GenerateConfig
from synthset.privacy.medical.train import TrainedModel

WEIGHTS = Path("unet") / "diffusion_pytorch_model.safetensors"


def allocate(count: int, shares: list[float]) -> np.ndarray:
    """`count` class indices in proportion to `shares` (largest remainder), interleaved."""
    if not shares:
        return np.full(count, -1, np.int64)
    shares_ = np.asarray(shares, dtype=np.float64)
    exact = count * shares_ / shares_.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: count - counts.sum()]:
        counts[i] += 1
    labels = np.concatenate([np.full(c, i) for i, c in enumerate(counts)])
    position = np.concatenate([(np.arange(c) + 0.5) / c for c in counts if c])
    return labels[np.argsort(position, kind="stable")].astype(np.int64)


def model_digest(folder: Path) -> str:
    """sha256 of the UNet's weights: which model made an image."""
    h = hashlib.sha256()
    with (folder / WEIGHTS).open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Synthetic:
    """Generated images (float (n, size, size) in [0, 1], as published), their labels (class
    indices; None when unconditional), PNGs and metadata rows."""

    images: np.ndarray
    labels: np.ndarray | None
    pngs: list[Image.Image]
    rows: pd.DataFrame
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)


def requests_for(model: TrainedModel, config: GenerateConfig) -> list[GenerationRequest]:
    """One request per image: seed, label, and a sample id naming the model, the sampler, the
    seed and the label."""
    digest = model_digest(model.folder)
    labels = allocate(config.count, model.shares) if model.classes else None
    out = []
    for i in range(config.count):
        seed = int.from_bytes(hashlib.sha256(f"{config.seed}:{i}".encode()).digest()[:4]) >> 1
        label = model.classes[int(labels[i])] if labels is not None else None
        key = f"{digest}:{config.scheduler}:{config.steps}:{config.guidance}:{seed}:{label}"
        out.append(
            GenerationRequest(
                sample_id=hashlib.sha256(key.encode()).hexdigest()[:16],
                item_index=int(labels[i]) if labels is not None else 0,
                index=i,
                seed=seed,
                prompt="" if label is None else f"class {label}",
                metadata={} if label is None else {"label": label},
            )
        )
    return out


def generator_config(model: TrainedModel, config: GenerateConfig, device: str) -> GeneratorConfig:
    """The `unet2d` generator settings for a checkpoint."""
    return GeneratorConfig(
        kind="unet2d",
        model=str(model.folder),
        scheduler=config.scheduler,
        steps=config.steps,
        guidance_scale=config.guidance,
        batch_size=config.batch_size,
        device=device,
    )


def generate(model: TrainedModel, config: GenerateConfig, device: str = "auto") -> Synthetic:
    """Make `config.count` images with the checkpoint's `unet2d` generator."""
    from synthset.generators.base import generator_for

    t0 = time.perf_counter()
    requests = requests_for(model, config)
    generator = generator_for(generator_config(model, config, device))
    results = generator.generate(requests)
    failed = [r for r in results if r.image is None]
    if failed:
        raise RuntimeError(f"generation failed: {failed[0].error}")
    pngs = [r.image for r in results]
    images = np.stack([np.asarray(p.convert("L"), dtype=np.float32) / 255.0 for p in pngs])
    settings = generator.settings()
    rows = pd.DataFrame(
        {
            "sample_id": [r.sample_id for r in requests],
            "file_name": [f"images/{r.sample_id}.png" for r in requests],
            "label": [r.metadata.get("label") for r in requests],
            "seed": [r.seed for r in requests],
            "index": [r.index for r in requests],
        }
    )
    if not model.classes:
        rows = rows.drop(columns="label")
    for key, value in settings.items():
        rows[key] = value
    labels = np.array([r.item_index for r in requests]) if model.classes else None
    return Synthetic(images, labels, pngs, rows, time.perf_counter() - t0, settings)
