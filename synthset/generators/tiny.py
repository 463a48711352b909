"""Tiny diffusion pipelines built offline from the real diffusers/transformers classes.

No weights can be downloaded on the machines this project is built on, so tests and the
built-in default model use a pipeline built here: a real `StableDiffusionPipeline` (VAE,
cross-attention UNet, CLIP text encoder) with tiny configs, and a real `CLIPTokenizer` whose
vocabulary and merges come from the BPE file that open_clip ships. Saved with
`save_pretrained`, it loads through `from_pretrained(path)` exactly like a Hub model.

The other families are built the same way, so code that must handle more than UNet pipelines
(a transformer denoiser, T5 prompts, no negative prompt) can be tested offline: SDXL (two CLIP
encoders, size/crop conditioning), SD3 (MMDiT, two CLIP encoders and T5) and Flux (MMDiT with
packed latents, CLIP and T5). T5's SentencePiece model cannot be downloaded, so its tokenizer is
a small `tokenizers` Unigram model with T5's special tokens and Metaspace pre-tokenizer.
"""

from __future__ import annotations

import gzip
import json
import string
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diffusers import (
        AutoencoderKL,
        FluxPipeline,
        FluxTransformer2DModel,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

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


T5_SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
"""T5's ids 0, 1 and 2: pad (also the decoder start), end of sequence, unknown."""
_T5_WORDS = (
    "a an the of and in on with photo painting drawing picture image red green blue yellow "
    "black white cat dog bird house tree car digit zero one two three four five six seven "
    "eight nine sky sea city portrait landscape"
)
"""Whole-word pieces, so common prompt words are one token as in a real vocabulary."""


def _t5_vocabulary() -> list[tuple[str, float]]:
    """A few hundred Unigram pieces: T5's specials, every printable character alone and after
    the word boundary `▁`, and some whole words, so any ASCII prompt tokenizes without `<unk>`."""
    chars = [c for c in string.printable if not c.isspace()]
    pieces = [(t, 0.0) for t in T5_SPECIAL_TOKENS] + [("▁", -3.0)]
    pieces += [("▁" + w, -4.0) for w in _T5_WORDS.split()]
    pieces += [("▁" + c, -6.0) for c in chars] + [(c, -7.0) for c in chars]
    return pieces


def build_t5_tokenizer(max_length: int = 512) -> T5TokenizerFast:
    """A T5 tokenizer without SentencePiece or the Hub: a `tokenizers` Unigram model wrapped in
    `T5TokenizerFast`, which adds `</s>` after each prompt and pads with `<pad>` as T5 does."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import Unigram
    from transformers import T5TokenizerFast

    backend = Tokenizer(Unigram(_t5_vocabulary(), unk_id=2, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(prepend_scheme="always")]
    )
    backend.decoder = decoders.Metaspace(prepend_scheme="always")
    return T5TokenizerFast(tokenizer_object=backend, extra_ids=0, model_max_length=max_length)


def _t5_encoder(d_model: int, vocab_size: int) -> T5EncoderModel:
    """A two-layer T5 encoder; `d_model` is the width the denoiser's text input expects."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=8,
        d_ff=d_model * 2,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config)


def _clip_tokenizer(pad_token: str = "<|endoftext|>") -> CLIPTokenizer:
    import tempfile

    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        return CLIPTokenizer.from_pretrained(write_clip_tokenizer(tmp, pad_token=pad_token))


def _clip_encoder(hidden: int = 32, projection: bool = False) -> CLIPTextModel:
    """A two-layer CLIP text encoder over the full CLIP vocabulary; with `projection`, the
    `CLIPTextModelWithProjection` whose pooled `text_embeds` SDXL and SD3 condition on."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        projection_dim=hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="gelu",
        bos_token_id=CLIP_VOCAB_SIZE - 2,
        eos_token_id=CLIP_VOCAB_SIZE - 1,
        pad_token_id=CLIP_VOCAB_SIZE - 1,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _vae(latent_channels: int = 4, flow: bool = False) -> AutoencoderKL:
    """An AutoencoderKL with one downsampling (pipelines read `vae_scale_factor` = 2 from it).

    `flow` gives the SD3/Flux layout: no quant convs, and a shift factor the pipelines apply.
    """
    from diffusers import AutoencoderKL

    extra = {"use_quant_conv": False, "use_post_quant_conv": False, "shift_factor": 0.0609}
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=8,
        sample_size=64,
        **(extra if flow else {}),
    )


def _sdxl_unet(text_dim: int, pooled_dim: int) -> UNet2DConditionModel:
    """SDXL's UNet: cross-attention on both encoders' hidden states concatenated, plus the
    `text_time` embedding of the pooled prompt and the six size/crop numbers (8 each)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=32,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + pooled_dim,
        cross_attention_dim=text_dim,
        norm_num_groups=8,
    )


def build_tiny_sdxl_pipeline(seed: int = 0) -> StableDiffusionXLPipeline:
    """A randomly initialised tiny `StableDiffusionXLPipeline`, native size 64×64 pixels.

    Two CLIP encoders (the second with projection) as in SDXL, SDXL's UNet conditioning, an
    Euler scheduler configured as SDXL's; no watermarker (its package is not installed).
    """
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    torch.manual_seed(seed)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
    return StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=_clip_encoder(),
        text_encoder_2=_clip_encoder(projection=True),
        tokenizer=_clip_tokenizer(),
        tokenizer_2=_clip_tokenizer(pad_token="!"),
        unet=_sdxl_unet(text_dim=64, pooled_dim=32),
        scheduler=scheduler,
        add_watermarker=False,
    )


def _sd3_transformer() -> SD3Transformer2DModel:
    """SD3's MMDiT: 2×2 patches, prompt tokens of width 64 (T5's, and the two 32-wide CLIP
    encoders' concatenated), pooled input 64 (both CLIP projections)."""
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=4,
        out_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=64,
        caption_projection_dim=32,
        pooled_projection_dim=64,
        pos_embed_max_size=64,
    )


def build_tiny_sd3_pipeline(seed: int = 0) -> StableDiffusion3Pipeline:
    """A randomly initialised tiny `StableDiffusion3Pipeline`, native size 64×64 pixels."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, StableDiffusion3Pipeline

    torch.manual_seed(seed)
    tokenizer_3 = build_t5_tokenizer(max_length=256)
    return StableDiffusion3Pipeline(
        transformer=_sd3_transformer(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(flow=True),
        text_encoder=_clip_encoder(projection=True),
        text_encoder_2=_clip_encoder(projection=True),
        text_encoder_3=_t5_encoder(64, len(tokenizer_3)),
        tokenizer=_clip_tokenizer(),
        tokenizer_2=_clip_tokenizer(pad_token="!"),
        tokenizer_3=tokenizer_3,
    )


def _flux_transformer(latent_channels: int) -> FluxTransformer2DModel:
    """Flux's MMDiT (one double-stream and one single-stream block); it sees latents packed
    2×2, so its input has 4 × the VAE's latent channels; rotary axes sum to the head size."""
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=latent_channels * 4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=(4, 4, 8),
    )


def build_tiny_flux_pipeline(seed: int = 0) -> FluxPipeline:
    """A randomly initialised tiny `FluxPipeline` (schnell-like: no guidance embedding).

    Flux's pipeline fixes its native size at 128 latent pixels × `vae_scale_factor` (256×256
    here); the scheduler shifts its timesteps with the image size as Flux's does.
    """
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    torch.manual_seed(seed)
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_image_seq_len=256,
        max_image_seq_len=4096,
        base_shift=0.5,
        max_shift=1.15,
    )
    tokenizer_2 = build_t5_tokenizer(max_length=512)
    return FluxPipeline(
        transformer=_flux_transformer(latent_channels=4),
        scheduler=scheduler,
        vae=_vae(flow=True),
        text_encoder=_clip_encoder(),
        text_encoder_2=_t5_encoder(32, len(tokenizer_2)),
        tokenizer=_clip_tokenizer(),
        tokenizer_2=tokenizer_2,
    )


def _save(pipe, folder: str | Path) -> Path:
    folder = Path(folder)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def save_tiny_sdxl_pipeline(folder: str | Path, seed: int = 0) -> Path:
    """Build a tiny SDXL pipeline and save it so `DiffusionPipeline.from_pretrained` loads it."""
    return _save(build_tiny_sdxl_pipeline(seed), folder)


def save_tiny_sd3_pipeline(folder: str | Path, seed: int = 0) -> Path:
    """Build a tiny SD3 pipeline and save it so `DiffusionPipeline.from_pretrained` loads it."""
    return _save(build_tiny_sd3_pipeline(seed), folder)


def save_tiny_flux_pipeline(folder: str | Path, seed: int = 0) -> Path:
    """Build a tiny Flux pipeline and save it so `DiffusionPipeline.from_pretrained` loads it."""
    return _save(build_tiny_flux_pipeline(seed), folder)
