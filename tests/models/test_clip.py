"""The packaged tiny CLIP: loads through open_clip's factory offline and meets its quality bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synthset.models import clip, digits


@pytest.fixture(scope="module")
def packaged() -> tuple:
    return clip.load_clip()


@pytest.fixture(scope="module")
def held_out() -> tuple:
    return clip.held_out_digits()


def test_packaged_weights_load_through_open_clip_factory() -> None:
    import open_clip

    clip.register()
    clip.register()
    path = clip.default_checkpoint()
    assert path.stat().st_size <= 8_000_000
    model, _, preprocess = open_clip.create_model_and_transforms(
        clip.TINY_CLIP_NAME, pretrained=str(path)
    )
    image = digits.paint(np.eye(32, dtype=np.float32), "red", "white")
    from PIL import Image

    assert preprocess(Image.fromarray(image)).shape == (3, 32, 32)
    tokens = open_clip.get_tokenizer(clip.TINY_CLIP_NAME)(["a red seven on a white background"])
    assert model.encode_text(tokens).shape == (1, clip.TINY_CLIP_CONFIG["embed_dim"])


def test_zero_shot_accuracy_on_held_out_digits(packaged: tuple, held_out: tuple) -> None:
    images, labels, _, _ = held_out
    assert clip.zero_shot_accuracy(*packaged, images, labels) >= 0.90
    assert (
        clip.zero_shot_accuracy(*packaged, images, labels, templates=("a handwritten {word}",))
        >= 0.90
    )


@pytest.mark.parametrize("kind", ["digit", "colour"])
def test_matched_prompts_score_above_mismatched(
    packaged: tuple, held_out: tuple, kind: str
) -> None:
    images, labels, inks, bgs = held_out
    matched, wrong = clip.mismatched_prompts(labels, inks, bgs, kind)
    assert clip.matched_vs_mismatched_auc(*packaged, images, matched, wrong) >= 0.95


def test_colour_words_matter(packaged: tuple) -> None:
    test = digits.load_split("test")
    seven = digits.upscale(test.images[test.labels == 7][:1])[0]
    image = digits.paint(seven, "red", "white")
    prompts = [
        "a red seven on a white background",
        "a blue seven on a green background",
        "a white seven on a red background",
        "a red one on a white background",
    ]
    scores = clip.clip_score(*packaged, [image] * len(prompts), prompts)
    assert scores[0] == scores.max() and scores[0] > scores[1:].max()


def test_clip_score_is_in_torchmetrics_units(packaged: tuple, held_out: tuple) -> None:
    images, labels, inks, bgs = held_out
    matched, _ = clip.mismatched_prompts(labels[:50], inks[:50], bgs[:50], "digit")
    scores = clip.clip_score(*packaged, list(images[:50]), matched)
    assert scores.shape == (50,) and scores.min() >= 0 and scores.max() <= 100
    with pytest.raises(ValueError, match="one prompt per image"):
        clip.clip_score(*packaged, list(images[:2]), matched[:1])


def test_caption_catalogue_covers_the_templates() -> None:
    captions, ids, compatible = clip.caption_catalogue()
    _, generated, _ = digits.coloured_dataset(digits.load_split("test"), copies=1)
    assert set(generated) <= set(captions)
    index = {c: i for i, c in enumerate(captions)}
    red, white, blue = (list(digits.COLOURS).index(c) for c in ("red", "white", "blue"))
    plain, coloured = index["a handwritten seven"], index["a red seven on a white background"]
    assert compatible[7, red, white, plain] and compatible[7, blue, white, plain]
    assert compatible[7, red, white, coloured] and not compatible[7, blue, white, coloured]
    assert not compatible[1, red, white, plain]
    assert ids.max() == len(captions) - 1


def test_soft_loss_with_identity_targets_is_clip_loss() -> None:
    from open_clip.loss import ClipLoss

    gen = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(6, 8, generator=gen), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(6, 8, generator=gen), dim=-1)
    scale = torch.tensor(10.0)
    expected = ClipLoss()(img, txt, scale)
    assert torch.allclose(
        clip.soft_clip_loss(img, txt, scale, torch.eye(6, dtype=torch.bool)), expected
    )


def test_training_loop_runs_and_saves_a_loadable_checkpoint(tmp_path: Path) -> None:
    split = digits.load_split("train")
    model = clip.train_clip(
        seed=0,
        steps=2,
        batch_size=8,
        warmup=1,
        log_every=0,
        images=split.images[:20],
        labels=split.labels[:20],
    )
    path = clip.save_clip(model, tmp_path / "tiny.safetensors")
    loaded, preprocess, tokenizer = clip.load_clip(clip.TINY_CLIP_NAME, pretrained=path)
    expected = model.state_dict()["text_projection"].half().float()
    assert torch.equal(loaded.state_dict()["text_projection"], expected)
    scores = clip.clip_score(
        loaded, preprocess, tokenizer, [np.zeros((32, 32, 3), np.uint8)], ["a handwritten one"]
    )
    assert 0 <= scores[0] <= 100
