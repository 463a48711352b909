"""The digit judge: a small classifier of real digits that measures prompt adherence.

Benchmarks and tests ask it which digit a generated image shows and compare with the digit the
prompt named, a measure independent of CLIP. It is trained on real (coloured) digits of the
training split only, never on generated images, and is never used to filter a dataset.

It is colour-blind by construction: an image becomes a stroke map (each pixel's RGB distance
from the background colour, estimated as the median of the border pixels, scaled to [0, 1]),
and a small CNN classifies that map. Colours are checked separately (`synthset.models.evaluate`).
Weights are saved as safetensors next to a JSON config; nothing is pickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from synthset.models.digits import COLOURS, IMAGE_SIZE, load_split, paint, upscale

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_JUDGE = WEIGHTS_DIR / "judge"
BORDER = 2


def border_colour(images: np.ndarray, border: int = BORDER) -> np.ndarray:
    """The background colour of each image (N, 3): the median of its outer `border` pixels."""
    x = images.astype(np.float32)
    ring = np.concatenate(
        [
            x[:, :border].reshape(len(x), -1, 3),
            x[:, -border:].reshape(len(x), -1, 3),
            x[:, border:-border, :border].reshape(len(x), -1, 3),
            x[:, border:-border, -border:].reshape(len(x), -1, 3),
        ],
        axis=1,
    )
    return np.median(ring, axis=1)


def stroke_map(images: np.ndarray) -> np.ndarray:
    """uint8 RGB images (N, H, W, 3) → float maps (N, H, W) in [0, 1]: distance from background."""
    dist = np.linalg.norm(images.astype(np.float32) - border_colour(images)[:, None, None], axis=-1)
    return dist / np.maximum(dist.max(axis=(1, 2), keepdims=True), 1.0)


def _network() -> Any:
    from torch import nn

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]

    return nn.Sequential(
        *block(1, 32),
        *block(32, 64),
        *block(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(128, 10),
    )


class Judge:
    """A trained digit classifier: `.predict(images)` gives each image's digit."""

    def __init__(self, model: Any):
        self.model = model.eval()

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Class scores (N, 10) for uint8 RGB images (N, H, W, 3) of any size (resized to 32)."""
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(stroke_map(np.asarray(images)))[:, None]
        if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True)
        with torch.inference_mode():
            return torch.cat([self.model(b) for b in x.split(512)]).numpy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The digit (0-9) each uint8 RGB image (N, H, W, 3) shows, by the judge."""
        return self.logits(images).argmax(axis=1)


def _shift(alpha: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    out = np.zeros_like(alpha)
    size = alpha.shape[-1]
    for i, (dy, dx) in enumerate(rng.integers(-max_shift, max_shift + 1, size=(len(alpha), 2))):
        src = alpha[i, max(0, -dy) : size - max(0, dy), max(0, -dx) : size - max(0, dx)]
        out[i, max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out


def _augmented(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shifted digits painted in random palette colours, with pixel noise, as stroke maps."""
    alpha = _shift(alpha, rng, max_shift=2) * rng.uniform(0.7, 1.0, size=(len(alpha), 1, 1))
    names = list(COLOURS)
    pairs = [rng.choice(len(names), size=2, replace=False) for _ in range(len(alpha))]
    images = np.stack(
        [paint(a, names[i], names[j]) for a, (i, j) in zip(alpha, pairs, strict=True)]
    )
    noise = rng.normal(0, rng.uniform(0, 12), size=images.shape)
    return stroke_map(np.clip(images + noise, 0, 255).astype(np.uint8))


def train_judge(seed: int = 0, epochs: int = 12, batch_size: int = 64) -> Any:
    """Train the judge on the training split of real digits (augmented), fixed by `seed`."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    split = load_split("train")
    alpha = upscale(split.images)
    labels = torch.from_numpy(split.labels).long()
    model = _network()
    steps = epochs * (len(alpha) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    model.train()
    for _ in range(epochs):
        x = torch.from_numpy(_augmented(alpha, rng))[:, None]
        order = torch.from_numpy(rng.permutation(len(alpha)))
        for batch in order[: steps // epochs * batch_size].split(batch_size):
            loss = torch.nn.functional.cross_entropy(model(x[batch]), labels[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def save_judge(model: Any, folder: str | Path) -> Path:
    """Write the judge's weights (model.safetensors) and config (config.json) into `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    config = {
        "architecture": "stroke-map CNN 32-64-128",
        "image_size": IMAGE_SIZE,
        "border": BORDER,
        "labels": list(range(10)),
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def load_judge(folder: str | Path | None = None) -> Judge:
    """Load a saved judge; by default the one shipped inside the package."""
    from safetensors.torch import load_file

    folder = Path(folder) if folder is not None else DEFAULT_JUDGE
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"no judge in {folder}: expected model.safetensors; build it "
            "with `synthset models build-default`"
        )
    model = _network()
    model.load_state_dict(load_file(folder / "model.safetensors"))
    return Judge(model)


def judge_accuracy(judge: Judge, split: str = "test", copies: int = 3, seed: int = 1) -> float:
    """Accuracy on real digits of `split`, each painted `copies` times in random palette colours."""
    from synthset.models.digits import coloured_dataset

    images, _, labels = coloured_dataset(load_split(split), copies=copies, seed=seed)
    return float((judge.predict(images) == labels).mean())
