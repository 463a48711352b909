"""Reference sets: the built-in digits, folders and imagefolders, their identities, and the
feature cache keyed by reference and feature space."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from synthset.curation.config import ClipConfig
from synthset.errors import SynthsetError
from synthset.layout import cache_dir
from synthset.quality.features import FeatureSpace
from synthset.quality.reference import digits_images, resolve_reference


def _images(folder, n, colour=(200, 30, 30), suffix=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = np.full((32, 32, 3), colour, np.uint8)
        pixels[4 + i % 20 : 10 + i % 20, 8:24] = 255 - np.array(colour, np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:03d}{suffix}")


def test_builtin_digits_are_the_held_out_split_rendered_like_training():
    images = digits_images()
    assert images.shape == (360, 32, 32, 3) and images.dtype == np.uint8
    ref = resolve_reference("synthset/digits")
    assert (ref.kind, ref.images) == ("builtin", 360) and "held-out" in ref.description


def test_a_folder_is_searched_recursively_and_cached_once(tmp_path):
    _images(tmp_path / "real" / "a", 5)
    _images(tmp_path / "real" / "b", 3, (20, 20, 200), ".jpg")
    (tmp_path / "real" / "notes.txt").write_text("not an image")
    ref = resolve_reference(str(tmp_path / "real"))
    assert (ref.kind, ref.images, ref.spec) == ("folder", 8, "real")
    space = FeatureSpace(ClipConfig())
    features = ref.features(space)
    assert features.shape == (8, 64)
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-2)
    cached = sorted((cache_dir() / "quality" / "features").glob("*.npy"))
    assert cached and np.array_equal(ref.features(space), features)
    os.utime(tmp_path / "real" / "a" / "000.png", ns=(1, 1))
    changed = resolve_reference(str(tmp_path / "real"))
    assert changed.identity != ref.identity, "a changed file is another reference"


def test_an_imagefolder_reads_the_files_its_metadata_names(tmp_path):
    _images(tmp_path / "hf" / "train", 4)
    (tmp_path / "hf" / "metadata.csv").write_text(
        "file_name,label\ntrain/000.png,1\ntrain/002.png,2\n"
    )
    ref = resolve_reference(str(tmp_path / "hf"))
    assert (ref.kind, ref.images) == ("imagefolder", 2)
    (tmp_path / "hf" / "metadata.csv").write_text("file_name\ntrain/009.png\n")
    with pytest.raises(SynthsetError, match="train/009.png is listed but not there"):
        resolve_reference(str(tmp_path / "hf"))


def test_what_is_not_a_reference_is_named(tmp_path):
    with pytest.raises(SynthsetError, match="'nowhere' is not synthset/digits"):
        resolve_reference("nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SynthsetError, match="no images"):
        resolve_reference(str(tmp_path / "empty"))
