"""Pixel hashes, pHashes and image statistics on images whose answers are known."""

from __future__ import annotations

import io

import imagehash
import numpy as np
from PIL import Image

from synthset.curation.stats import (
    image_stats,
    laplacian_variance,
    phash,
    phash_to_int,
    pixel_hash,
)


def noise(seed: int, size: int = 32) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_pixel_hash_is_of_decoded_pixels_not_of_file_bytes():
    image = noise(0)
    png, png_small = io.BytesIO(), io.BytesIO()
    image.save(png, format="PNG", compress_level=0)
    image.save(png_small, format="PNG", compress_level=9)
    assert png.getvalue() != png_small.getvalue()
    decoded = [Image.open(b).convert("RGB") for b in (png, png_small)]
    assert pixel_hash(decoded[0]) == pixel_hash(decoded[1]) == pixel_hash(image)
    assert len(pixel_hash(image)) == 32

    changed = np.asarray(image).copy()
    changed[5, 5, 0] ^= 1
    assert pixel_hash(Image.fromarray(changed)) != pixel_hash(image)
    assert pixel_hash(image.convert("RGBA")) == pixel_hash(image)
    assert pixel_hash(image.resize((16, 64))) != pixel_hash(image)


def test_phash_is_imagehash_and_close_for_a_slightly_changed_image():
    image = noise(1, 64)
    assert phash(image) == str(imagehash.phash(image))
    assert imagehash.hex_to_hash(phash(image)) == imagehash.phash(image)
    brighter = Image.fromarray(np.clip(np.asarray(image, dtype=int) + 6, 0, 255).astype(np.uint8))
    other = noise(2, 64)
    base, near, far = phash_to_int([phash(image), phash(brighter), phash(other)])
    assert bin(int(base ^ near)).count("1") <= 4
    assert bin(int(base ^ far)).count("1") > 10
    assert phash_to_int(["ffffffffffffffff"]).dtype == np.uint64


def test_statistics_of_a_flat_image():
    stats = image_stats(Image.new("RGB", (40, 30), (128, 128, 128)))
    assert (stats["width"], stats["height"]) == (40, 30)
    assert abs(stats["brightness"] - 128 / 255) < 1e-9
    assert stats["contrast"] == 0.0
    assert stats["sharpness"] == 0.0
    assert stats["entropy"] == 0.0
    assert stats["blank"] is True


def test_statistics_of_a_checkerboard():
    board = (np.indices((32, 32)).sum(axis=0) % 2 * 255).astype(np.uint8)
    stats = image_stats(Image.fromarray(board).convert("RGB"))
    assert abs(stats["brightness"] - 0.5) < 1e-9
    assert abs(stats["contrast"] - 0.5) < 1e-9
    assert abs(stats["entropy"] - 1.0) < 1e-9
    assert stats["sharpness"] == (4 * 255) ** 2
    assert stats["blank"] is False


def test_blank_threshold_and_sharpness_of_a_blur():
    nearly_flat = np.full((32, 32), 100, dtype=np.uint8)
    nearly_flat[::4, ::4] = 101
    image = Image.fromarray(nearly_flat).convert("RGB")
    assert image_stats(image)["blank"] is True
    assert image_stats(image, blank_contrast=0.0001)["blank"] is False

    sharp = np.asarray(noise(3).convert("L"), dtype=np.float64)
    blurred = np.asarray(noise(3).convert("L").resize((8, 8)).resize((32, 32)), dtype=np.float64)
    assert laplacian_variance(sharp) > 10 * laplacian_variance(blurred)
    assert laplacian_variance(np.zeros((2, 2))) == 0.0
