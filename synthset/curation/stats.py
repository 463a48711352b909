"""What can be measured on one decoded image without a model: hashes and statistics.

- `pixel_hash`: sha256 of the decoded RGB pixels and size, so two files that decode to the
  same pixels (a PNG re-saved with other settings) hash alike, and one changed pixel does not.
- `phash`: imagehash's perceptual hash (64-bit DCT hash) as 16 hex digits, the form
  `imagehash.hex_to_hash` reads back.
- statistics of the 8-bit luminance (ITU-R 601-2, PIL's "L"): `brightness` (mean, 0–1),
  `contrast` (standard deviation, 0–0.5), `sharpness` (variance of the 3×3 Laplacian on the
  0–255 scale, OpenCV's blur measure), `entropy` (bits of the 256-bin histogram, 0–8), and
  `blank` when the contrast is below a threshold (a flat or nearly flat image).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from PIL import Image

STAT_COLUMNS = ("width", "height", "brightness", "contrast", "sharpness", "entropy", "blank")


def pixel_hash(image: Image.Image) -> str:
    """128-bit hex digest of an RGB image's decoded pixels and size."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    h = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    h.update(rgb.tobytes())
    return h.hexdigest()[:32]


def phash(image: Image.Image) -> str:
    """The 64-bit perceptual hash as 16 hex digits."""
    import imagehash

    return str(imagehash.phash(image))


def phash_to_int(hashes: Any) -> np.ndarray:
    """Hex pHashes → uint64 array (for Hamming distances)."""
    return np.array([int(h, 16) for h in hashes], dtype=np.uint64)


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the interior of a 2-D float array."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return float(lap.var())


def image_stats(image: Image.Image, blank_contrast: float = 0.01) -> dict[str, Any]:
    """Size and luminance statistics of an image; `blank` when contrast < `blank_contrast`."""
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    counts = np.bincount(grey.astype(np.uint8).ravel(), minlength=256)
    p = counts[counts > 0] / grey.size
    contrast = float(grey.std() / 255.0)
    return {
        "width": image.width,
        "height": image.height,
        "brightness": float(grey.mean() / 255.0),
        "contrast": contrast,
        "sharpness": laplacian_variance(grey),
        "entropy": float(-(p * np.log2(p)).sum() + 0.0),
        "blank": contrast < blank_contrast,
    }
