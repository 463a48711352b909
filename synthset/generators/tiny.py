"""Tiny Stable Diffusion pipelines built offline from the real diffusers/transformers classes.

No weights can be downloaded on the machines this project is built on, so tests and the
built-in default model use a pipeline built here: a real `StableDiffusionPipeline` (VAE,
cross-attention UNet, CLIP text encoder) with tiny configs, and a real `CLIPTokenizer` whose
vocabulary and merges come from the BPE file that open_clip ships. Saved with
`save_pretrained`, it loads through `from_pretrained(path)` exactly like a Hub model.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

CLIP_VOCAB_SIZE = 49408
_N_MERGES = 49152 - 256 - 2


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def write_clip_tokenizer(
    folder: str | Path, max_length: int = 77, pad_token: str = "<|endoftext|>"
) -> Path:
    """Write a CLIP tokenizer (vocab.json, merges.txt, configs) built from open_clip's BPE file.

    The vocabulary is the one OpenAI CLIP uses (49,408 tokens, `<|startoftext|>` and
    `<|endoftext|>` last), so `CLIPTokenizer.from_pretrained(folder)` tokenizes as the Hub's
    `openai/clip-vit-base-patch32` tokenizer does. Prompts are cut to `max_length` tokens;
    `pad_token="!"` pads with token 0 as open_clip's tokenizer (and Stable Diffusion 2's) does.
    """
    import open_clip.tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = Path(open_clip.tokenizer.default_bpe())
    with gzip.open(bpe) as f:
        merges = f.read().decode("utf-8").split("\n")[1 : _N_MERGES + 1]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == CLIP_VOCAB_SIZE
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": pad_token,
        "do_lower_case": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return folder


def build_tiny_sd_pipeline(
    seed: int = 0, sample_size: int = 16, channels: tuple[int, ...] = (32, 64), text_dim: int = 32
):
    """A randomly initialised tiny `StableDiffusionPipeline` (images of 2 × sample_size pixels).

    Same class structure as Stable Diffusion 1.x: AutoencoderKL (one downsampling), a UNet with
    cross-attention blocks, a CLIP text encoder with the full CLIP vocabulary, a PNDM scheduler.
    """
    import tempfile

    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=channels,
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=text_dim,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=sample_size * 2,
    )
    text_config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=text_dim,
        intermediate_size=text_dim * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=CLIP_VOCAB_SIZE - 2,
        eos_token_id=CLIP_VOCAB_SIZE - 1,
        pad_token_id=CLIP_VOCAB_SIZE - 1,
    )
    text_encoder = CLIPTextModel(text_config)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(tmp))
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_sd_pipeline(folder: str | Path, seed: int = 0) -> Path:
    """Build a tiny pipeline and save it (safetensors) so `from_pretrained(folder)` loads it."""
    folder = Path(folder)
    build_tiny_sd_pipeline(seed=seed).save_pretrained(folder, safe_serialization=True)
    return folder
