"""The memorization gate: exact, shifted, noised and re-contrasted copies of training
phantoms are rejected with a reason naming their source; genuinely new phantoms pass."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from synthset.privacy.medical import memorization as mem
from synthset.privacy.medical.phantoms import make_phantoms

SOURCES = np.arange(0, 60, 3)


@pytest.fixture(scope="module")
def training():
    return make_phantoms(60, 32, seed=0)[0]


@pytest.fixture(scope="module")
def novel():
    return make_phantoms(100, 32, seed=1)[0]


def _moved(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(images)
    h, w = images.shape[1:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = images[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _noised(images: np.ndarray, sigma: float) -> np.ndarray:
    noise = np.random.default_rng(3).normal(0, sigma, images.shape)
    return np.clip(images + noise, 0, 1).astype(np.float32)


COPIES = {
    "exact": lambda x: x.copy(),
    "moved 1 px": lambda x: _moved(x, 1, 0),
    "moved 2 px diagonally": lambda x: _moved(x, 2, -2),
    "noise 0.02": lambda x: _noised(x, 0.02),
    "noise 0.05": lambda x: _noised(x, 0.05),
    "moved and noised": lambda x: _noised(_moved(x, 0, 1), 0.03),
    "contrast": lambda x: np.clip(0.8 * x + 0.1, 0, 1).astype(np.float32),
}


@pytest.mark.parametrize("kind", list(COPIES))
def test_every_planted_copy_is_rejected_naming_its_source(training, kind):
    copies = COPIES[kind](training[SOURCES])
    result = mem.check_memorization(copies, training)
    assert result.rejected.all(), result.frame()[~result.rejected]
    assert result.match.tolist() == SOURCES.tolist()
    for source, reason in zip(SOURCES, result.reasons, strict=True):
        assert reason.startswith(f"near copy of training image {source}: ")
        assert "past the allowed" in reason and "\n" not in reason


def test_new_phantoms_pass(training, novel):
    result = mem.check_memorization(novel, training)
    assert result.kept.mean() >= 0.95
    assert all(r is None for r, k in zip(result.reasons, result.kept, strict=True) if k)
    assert result.passed


def test_copies_mixed_with_new_images(training, novel):
    mixed = np.concatenate([novel[:40], training[SOURCES[:4]]])
    result = mem.check_memorization(mixed, training, max_rejected_share=0.5)
    assert result.rejected[40:].all() and result.rejected[:40].mean() <= 0.05
    pairs = result.closest_pairs
    assert {p.synthetic for p in pairs[:4]} == set(range(40, 44))
    assert all(p.rejected and p.pixel_distance == 0 for p in pairs[:4])
    assert [p.training for p in pairs[:4]] == [int(result.match[p.synthetic]) for p in pairs[:4]]
    assert len(pairs) == 16


def test_release_check_blocks_a_model_that_copies(training, novel):
    mixed = np.concatenate([novel[:30], training[:10]])
    result = mem.check_memorization(mixed, training)
    assert not result.passed
    (reason,) = result.gate.reasons
    rejected = int(result.rejected.sum())
    assert rejected >= 10
    assert reason.startswith(f"rejected_share = {rejected / 40:.4g}, ")
    assert reason.endswith(f"past the allowed <= 0.05 ({rejected} of 40 synthetic images)")
    relaxed = mem.check_memorization(mixed, training, max_rejected_share=None)
    assert relaxed.passed and relaxed.rejected.sum() == result.rejected.sum()


def test_thresholds_are_configurable(training, novel):
    copies = _moved(training[SOURCES], 1, 1)
    off = mem.check_memorization(
        copies, training, ratio_threshold=None, ssim_threshold=None, embedding_ratio_threshold=None
    )
    assert not off.rejected.any()
    by_ssim = mem.check_memorization(
        copies, training, ratio_threshold=None, embedding_ratio_threshold=None
    )
    assert by_ssim.rejected.all() and all("ssim = " in r for r in by_ssim.reasons)
    assert not any("pixel_ratio" in r for r in by_ssim.reasons)
    strict = mem.check_memorization(novel, training, ratio_threshold=0.99, ssim_threshold=None)
    assert strict.rejected.mean() > 0.9
    lenient = mem.check_memorization(
        _noised(training[SOURCES], 0.02),
        training,
        ratio_threshold=0.01,
        embedding_ratio_threshold=0.01,
        ssim_threshold=0.999,
    )
    assert not lenient.rejected.any()
    unshifted = mem.check_memorization(
        _moved(training[SOURCES], 2, 2),
        training,
        ssim_threshold=None,
        embedding_ratio_threshold=None,
        max_shift=0,
    )
    assert unshifted.rejected.mean() < 0.5


def test_config_is_checked():
    with pytest.raises(ValidationError):
        mem.MemorizationConfig(k=1)
    with pytest.raises(ValidationError):
        mem.MemorizationConfig(ratio_threshold=1.5)
    with pytest.raises(ValidationError):
        mem.MemorizationConfig(unknown=1)


def test_bad_arrays_are_refused(training):
    with pytest.raises(ValueError, match="resample one set"):
        mem.check_memorization(np.zeros((2, 16, 16)), training)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        mem.check_memorization(np.zeros((16, 16)), training)
    with pytest.raises(ValueError, match="at least 2 training"):
        mem.check_memorization(training[:1], training[:1])
    with pytest.raises(ValueError, match="NaN"):
        mem.check_memorization(np.full((1, 32, 32), np.nan), training)


def test_summary_frame_and_custom_embedding(training, novel):
    calls = []

    def pixels(images):
        calls.append(len(images))
        return images.reshape(len(images), -1)

    result = mem.check_memorization(
        np.concatenate([novel[:10], training[:2]]), training, embed=pixels, max_rejected_share=1
    )
    assert calls == [12, 60]
    summary = result.summary()
    json.dumps(summary)
    assert summary["embedding"] == "custom: pixels"
    assert summary["rejected"] == int(result.rejected.sum()) >= 2
    assert summary["rejected_by_check"]["pixel_ratio"] >= 2
    assert summary["config"]["ssim_threshold"] == 0.95 and summary["passed"]
    frame = result.frame()
    assert len(frame) == 12 and frame["rejected"].tolist() == result.rejected.tolist()
    assert frame["reason"].iloc[-1].startswith("near copy of training image 1")
    default = mem.check_memorization(novel[:5], training)
    assert default.summary()["embedding"] == mem.EMBEDDING.format(8)


def test_shift_search_finds_the_true_nearest(training):
    moved = _moved(training[:5], 2, 1)
    index, distance, ratio = mem.shifted_neighbours(moved, training, k=3, max_shift=2)
    assert index[:, 0].tolist() == list(range(5))
    brute = np.array(
        [
            [
                min(
                    np.linalg.norm(mem.shift(moved[i : i + 1], dy, dx)[0] - t)
                    for dy in range(-2, 3)
                    for dx in range(-2, 3)
                )
                for t in training
            ]
            for i in range(5)
        ]
    )
    assert np.allclose(distance, np.sort(brute, axis=1)[:, :3], atol=1e-4)
    assert np.allclose(ratio, distance[:, 0] / distance.mean(axis=1))


def test_aligned_ssim():
    image = make_phantoms(1, 32, seed=9)[0][0]
    assert mem.aligned_ssim(image, image) == pytest.approx(1.0)
    assert mem.aligned_ssim(_moved(image[None], 2, 0)[0], image) == pytest.approx(1.0, abs=0.02)
    assert mem.aligned_ssim(_moved(image[None], 2, 0)[0], image, max_shift=0) < 0.9
