"""The speed options reach the pipeline (checked on CPU; their effect is a GPU matter) and leave
the sample ids alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthset.errors import SynthsetError
from synthset.generators.pipeline import ImageGenerator
from synthset.manifest import GenerationRequest, GeneratorConfig


def _config(model: str, **speed) -> GeneratorConfig:
    return GeneratorConfig(model=model, steps=2, device="cpu", speed=speed)


def test_speed_options_are_applied_and_images_stay_the_same(tiny_model):
    request = GenerationRequest(sample_id="s", item_index=0, index=0, seed=2, prompt="a red one")
    options = dict(attention="native", channels_last=True, fuse_qkv=True, vae_tiling=True)
    plain = ImageGenerator(_config(tiny_model))
    fast = ImageGenerator(_config(tiny_model, vae_slicing=True, **options))

    pipe = fast.pipe
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    weight = next(p for p in pipe.unet.parameters() if p.dim() == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert pipe.unet.original_attn_processors is not None
    a = np.asarray(plain.generate([request])[0].image, float)
    b = np.asarray(fast.generate([request])[0].image, float)
    assert np.abs(a - b).max() <= 2
    assert _config(tiny_model).identity() == _config(tiny_model, **options).identity()


def test_offload_without_cuda_and_an_unknown_attention_backend_are_user_errors(tiny_model):
    with pytest.raises(SynthsetError, match="offload needs a CUDA device"):
        ImageGenerator(_config(tiny_model, offload="model"))
    with pytest.raises(SynthsetError, match="generator.speed.attention 'warp-drive'"):
        ImageGenerator(_config(tiny_model, attention="warp-drive"))
