"""A sample grid of a version's images: what a person looks at first (MLflow, the Prefect UI)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

CELL = 96


def sample_grid(folder: Path, file_names: Sequence[str], limit: int = 16) -> Image.Image | None:
    """Up to `limit` images, evenly spread over the version, as one square-ish grid (None when
    the version holds no images). Small images are enlarged without smoothing."""
    if not file_names:
        return None
    step = max(1, len(file_names) // limit)
    chosen = list(file_names)[::step][:limit]
    columns = math.ceil(math.sqrt(len(chosen)))
    rows = math.ceil(len(chosen) / columns)
    grid = Image.new("RGB", (columns * CELL, rows * CELL), "white")
    for n, name in enumerate(chosen):
        with Image.open(folder / name) as image:
            tile = image.convert("RGB").resize((CELL, CELL), Image.Resampling.NEAREST)
        grid.paste(tile, ((n % columns) * CELL, (n // columns) * CELL))
    return grid
