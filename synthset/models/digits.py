"""Training data for the embedded default models: scikit-learn's digits, coloured and captioned.

The 1,797 handwritten 8×8 digits ship with scikit-learn (no download). Each is upscaled to
32×32 RGB, painted with an ink colour on a background colour, and described by a caption from
templates that name the digit and sometimes the colours ("a red seven on a white background",
"the digit 7"). A fixed, stratified split holds out real digits for evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 20),
}
IMAGE_SIZE = 32
TEMPLATES_PLAIN = (
    "a handwritten {word}",
    "the digit {n}",
    "the number {word}",
    "a drawing of the digit {word}",
)
TEMPLATES_COLOUR = (
    "a {ink} {word} on a {bg} background",
    "a {ink} handwritten {word} on {bg}",
    "the digit {n} in {ink} on {bg}",
)


@dataclass(frozen=True)
class DigitSplit:
    """Grey 8×8 digits (values 0..1) and their labels."""

    images: np.ndarray
    labels: np.ndarray


def load_split(split: str, holdout: float = 0.2, seed: int = 0) -> DigitSplit:
    """The `train` or `test` part of scikit-learn's digits, stratified by label, fixed by seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    idx = np.arange(len(digits.target))
    train, test = train_test_split(
        idx, test_size=holdout, random_state=seed, stratify=digits.target
    )
    chosen = {"train": train, "test": test}[split]
    return DigitSplit(digits.images[chosen].astype(np.float32) / 16.0, digits.target[chosen])


def upscale(grey: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """8×8 grey digits (N, 8, 8) in [0, 1] → (N, size, size) by bilinear interpolation."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32))[:, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()


def paint(alpha: np.ndarray, ink: str, bg: str) -> np.ndarray:
    """An alpha mask (H, W) in [0, 1] → uint8 RGB (H, W, 3) with `ink` over `bg`."""
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    out = (1 - a) * np.array(COLOURS[bg], np.float32) + a * np.array(COLOURS[ink], np.float32)
    return out.round().astype(np.uint8)


def random_colours(rng: np.random.Generator) -> tuple[str, str]:
    """An ink and a different background colour."""
    names = list(COLOURS)
    ink, bg = rng.choice(len(names), size=2, replace=False)
    return names[ink], names[bg]


def caption(
    label: int, ink: str, bg: str, rng: np.random.Generator, colour_share: float = 0.6
) -> str:
    """A caption naming the digit, and its colours in `colour_share` of cases."""
    templates = TEMPLATES_COLOUR if rng.random() < colour_share else TEMPLATES_PLAIN
    template = templates[rng.integers(len(templates))]
    return template.format(word=DIGIT_WORDS[label], n=label, ink=ink, bg=bg)


def coloured_dataset(
    split: DigitSplit, copies: int, seed: int = 0, colour_share: float = 0.6
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """`copies` coloured, captioned variants of each digit: (uint8 N×32×32×3, captions, labels)."""
    rng = np.random.default_rng(seed)
    alpha = upscale(split.images)
    images, captions, labels = [], [], []
    for _ in range(copies):
        for a, label in zip(alpha, split.labels, strict=True):
            ink, bg = random_colours(rng)
            images.append(paint(a, ink, bg))
            captions.append(caption(int(label), ink, bg, rng, colour_share))
            labels.append(int(label))
    return np.stack(images), captions, np.array(labels)
