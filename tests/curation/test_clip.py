"""The CLIP scorer: any open_clip model by name and weights, loaded once per process."""

from __future__ import annotations

import numpy as np
import pytest

from synthset.curation.clip import load_scorer, scorer_for
from synthset.curation.config import ClipConfig
from synthset.errors import SynthsetError
from synthset.models.clip import default_checkpoint


def test_the_model_is_loaded_once_per_process(scorer):
    before = load_scorer.cache_info()
    assert scorer_for(ClipConfig()) is scorer
    assert scorer_for(ClipConfig(batch_size=8)) is scorer
    after = load_scorer.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 2


def test_embeddings_are_normalised_and_independent_of_the_batch(scorer, digit_images):
    images, _ = digit_images
    one = scorer.embed_images(images[:10], batch_size=1)
    many = scorer.embed_images(images[:10], batch_size=64)
    assert one.shape == (10, scorer.dim) and one.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(one, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(one, many, atol=1e-5)
    assert scorer.embed_images([]).shape == (0, scorer.dim)


def test_clip_score_is_100_times_the_clamped_cosine(scorer, digit_images):
    images, _ = digit_images
    emb = scorer.embed_images(images[:3])
    prompts = ["a handwritten zero", "a red cat", "a handwritten zero"]
    cos = (emb * scorer.embed_texts(prompts)).sum(axis=1)
    np.testing.assert_allclose(
        scorer.clip_scores(emb, prompts), 100 * np.maximum(cos, 0), atol=1e-4
    )
    with pytest.raises(ValueError, match="one prompt per image"):
        scorer.clip_scores(emb, prompts[:2])


def test_a_prompt_embeds_to_the_same_bits_whatever_prompts_are_new_beside_it(scorer):
    """A resumed run meets its prompts in another order than the run it finishes; scores and
    so the version's digest must not depend on it."""
    prompt = "a blue three"
    scorer._texts.clear()
    alone = scorer.embed_texts([prompt])[0].copy()
    for others in (["a red seven"], [f"a digit {i}" for i in range(20)]):
        scorer._texts.clear()
        beside = scorer.embed_texts([*others, prompt])
        assert np.array_equal(beside[-1], alone)
    scorer._texts.clear()


def test_a_local_checkpoint_file_loads_the_same_weights(scorer, digit_images, tmp_path):
    images, _ = digit_images
    copy = tmp_path / "my-clip.safetensors"
    copy.write_bytes(default_checkpoint().read_bytes())

    other = load_scorer("synthset-tiny-clip", str(copy), "cpu")

    assert other is not scorer
    assert other.identity == {
        "model": "synthset-tiny-clip",
        "pretrained": f"my-clip.safetensors:{copy.stat().st_size}",
    }
    np.testing.assert_allclose(
        other.embed_images(images[:4]), scorer.embed_images(images[:4]), atol=1e-6
    )


def test_weights_that_cannot_be_loaded_raise_a_clear_error():
    with pytest.raises(SynthsetError, match="cannot load CLIP model 'RN50'.*'nosuchtag'"):
        load_scorer("RN50", "nosuchtag", "cpu")


def test_batched_preprocessing_is_exactly_the_models_own(scorer, digit_images):
    import torch

    images, _ = digit_images
    same = scorer.preprocess_batch(images[:8])
    assert torch.equal(same, torch.stack([scorer.preprocess(im) for im in images[:8]]))
    mixed = [images[0].resize((48, 40)), images[1].convert("L"), images[2]]
    assert torch.equal(
        scorer.preprocess_batch(mixed), torch.stack([scorer.preprocess(im) for im in mixed])
    )
