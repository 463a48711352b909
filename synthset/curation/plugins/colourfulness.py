"""Colourfulness (Hasler and Süsstrunk 2003): how vivid an image's colours are, 0 for grey."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from synthset.curation.plugins.base import ImageBatch, Scorer, register


def colourfulness(image: Any) -> float:
    """σ_rgyb + 0.3·μ_rgyb over the opponent channels rg = R − G and yb = (R + G)/2 − B.

    On 0–255 RGB: about 15 is "slightly colourful", 60 "highly", 110 "extremely" (the
    paper's scale)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    sigma = np.hypot(rg.std(), yb.std())
    mean = np.hypot(rg.mean(), yb.mean())
    return float(sigma + 0.3 * mean)


@register
class Colourfulness(Scorer):
    """`colourfulness`: the Hasler–Süsstrunk metric of each image."""

    kind = "colourfulness"
    columns = ("colourfulness",)

    def score(self, batch: ImageBatch) -> dict[str, Sequence[Any]]:
        return {"colourfulness": [colourfulness(image) for image in batch.images]}
