"""The published component configurations of SD-1.5, SDXL base 1.0 and FLUX.1-dev, as data.

`bench/gpu_throughput.py` builds these with random weights (speed does not depend on the
weights). Every value is the published one except where a comment says "reduced": FLUX.1's
transformer keeps its width (24 heads of 128, in_channels 64, joint_attention_dim 4096,
pooled 768, guidance embedding) with 2 double-stream and 4 single-stream blocks instead of
19 and 38, and its T5-XXL encoder keeps its width with 2 layers instead of 24 and the offline
tokenizer's vocabulary (`synthset.generators.tiny.build_t5_tokenizer`) instead of 32,128.

Sources, read for this module (the Hub's own `config.json` files cannot be fetched here, so
each value is taken from the original training configs and the converters diffusers uses to
turn them into those files):

- [CompVis] CompVis/stable-diffusion `configs/stable-diffusion/v1-inference.yaml`: the SD-1.x
  UNet (model_channels 320, channel_mult [1, 2, 4, 4], attention_resolutions [4, 2, 1],
  num_res_blocks 2, num_heads 8, context_dim 768), VAE (ch 128, ch_mult [1, 2, 4, 4],
  num_res_blocks 2, z_channels 4), scale_factor 0.18215, linear_start/end 0.00085/0.012,
  1000 timesteps.
- [SGM] Stability-AI/generative-models `configs/inference/sd_xl_base.yaml`: the SDXL UNet
  (model_channels 320, channel_mult [1, 2, 4], attention_resolutions [4, 2],
  num_head_channels 64, transformer_depth [1, 2, 10], context_dim 2048, adm_in_channels
  2816, use_linear_in_transformer), the VAE as SD's, scale_factor 0.13025, the encoders
  (FrozenCLIPEmbedder = CLIP ViT-L/14, FrozenOpenCLIPEmbedder2 arch ViT-bigG-14).
- [diffusers-ldm] huggingface/diffusers `src/diffusers/loaders/single_file_utils.py`:
  `create_unet_diffusers_config_from_ldm` (how the two YAMLs above become diffusers configs:
  block types from attention_resolutions, head dims from num_head_channels when
  use_linear_in_transformer, `text_time` with addition_time_embed_dim 256 when context_dim
  is 2048, sample_size = image size / 8), `create_vae_diffusers_config_from_ldm`,
  `SCHEDULER_DEFAULT_CONFIG` (the SD schedulers' betas, steps_offset, spacing) and
  `DIFFUSERS_TO_LDM_DEFAULT_IMAGE_SIZE_MAP` (v1 512, xl_base 1024).
- [open_clip] open_clip `model_configs/ViT-L-14.json` and `ViT-bigG-14.json` (installed with
  this project): text width, heads, layers, vocabulary, context length, embed_dim;
  `tests/test_bench_configs.py` compares the CLIP configs below with those files.
- [BFL] black-forest-labs/flux `src/flux/util.py` `configs["flux-dev"]`: in_channels 64,
  vec_in_dim 768, context_in_dim 4096, hidden_size 3072, num_heads 24, depth 19,
  depth_single_blocks 38, axes_dim [16, 56, 56], guidance_embed True, the autoencoder
  (ch 128, ch_mult [1, 2, 4, 4], num_res_blocks 2, z_channels 16, scale 0.3611, shift
  0.1159), the encoders (`google/t5-v1_1-xxl`, `openai/clip-vit-large-patch14`).
- [diffusers-flux] huggingface/diffusers `scripts/convert_flux_to_diffusers.py` (transformer
  19/38 blocks, inner_dim 3072, mlp_ratio 4; VAE = SD3's VAE config with scaling_factor
  0.3611 and shift_factor 0.1159), `FluxTransformer2DModel.__init__` defaults (the FLUX.1
  values), `pipeline_flux.py` (`calculate_shift` defaults base_image_seq_len 256,
  max_image_seq_len 4096, base_shift 0.5, max_shift 1.15; 28 steps and guidance 3.5 by
  default).
- [SD3.5] Stability-AI/sd3.5 `sd3_infer.py`: `CLIPL_CONFIG` (quick_gelu, 768, 3072, 12 heads,
  12 layers), `CLIPG_CONFIG` (gelu, 1280, 5120, 20 heads, 32 layers) and `T5_CONFIG`
  (d_model 4096, d_ff 10240, 64 heads, 24 layers, vocab 32128), the same encoders.

The tests build every configuration on the meta device and check the published parameter
counts (SD-1.5 UNet 859.5M, SDXL UNet 2.567B, CLIP-L text 123.1M, bigG text 694.7M, the full
FLUX.1 transformer 11.9B, the T5-XXL encoder 4.76B, the VAEs 83.7M).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CLIP_VOCAB_SIZE = 49408
CLIP_SPECIAL_IDS = {"bos_token_id": 49406, "eos_token_id": 49407}
"""`<|startoftext|>` and `<|endoftext|>` in the CLIP vocabulary the offline tokenizer writes
(the Hub's CLIP-L config still says eos 2, which transformers reads as "pool at argmax", the
same position for this vocabulary)."""

# Stable Diffusion 1.5 ---------------------------------------------------------------------

SD15_UNET: dict[str, Any] = {
    # [CompVis] unet_config through [diffusers-ldm] create_unet_diffusers_config_from_ldm
    "sample_size": 64,  # 512 px / 8 ([diffusers-ldm] image size map "v1": 512)
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280, 1280),  # 320 × channel_mult [1, 2, 4, 4]
    "layers_per_block": 2,  # num_res_blocks
    "down_block_types": (  # attention at downsampling factors 1, 2, 4
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    "cross_attention_dim": 768,  # context_dim (CLIP ViT-L/14 width)
    "attention_head_dim": 8,  # num_heads 8 (diffusers' historical name for the head count)
    "use_linear_projection": False,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}

SD_VAE: dict[str, Any] = {
    # [CompVis] first_stage_config.ddconfig through [diffusers-ldm] vae config
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (128, 256, 512, 512),  # ch 128 × ch_mult [1, 2, 4, 4]
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,  # num_res_blocks
    "latent_channels": 4,  # z_channels
    "norm_num_groups": 32,
    "act_fn": "silu",
    "sample_size": 512,
    "scaling_factor": 0.18215,  # scale_factor
}

CLIP_L_TEXT: dict[str, Any] = {
    # CLIP ViT-L/14 text tower: [open_clip] ViT-L-14.json text_cfg, [SD3.5] CLIPL_CONFIG
    "vocab_size": CLIP_VOCAB_SIZE,
    "hidden_size": 768,
    "intermediate_size": 3072,  # 4 × width
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",  # OpenAI's CLIP
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,  # embed_dim
    "pad_token_id": 1,
    **CLIP_SPECIAL_IDS,
}

SD15_SCHEDULER: dict[str, Any] = {
    # PNDM as runwayml/stable-diffusion-v1-5 ships it: [CompVis] betas and timesteps,
    # [diffusers-ldm] SCHEDULER_DEFAULT_CONFIG (set_alpha_to_one, skip_prk_steps, offset)
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}

# Stable Diffusion XL base 1.0 -------------------------------------------------------------

SDXL_UNET: dict[str, Any] = {
    # [SGM] network_config through [diffusers-ldm] create_unet_diffusers_config_from_ldm
    "sample_size": 128,  # 1024 px / 8
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280),  # 320 × channel_mult [1, 2, 4]
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),  # transformer_depth
    "attention_head_dim": (5, 10, 20),  # heads = channels / num_head_channels 64
    "use_linear_projection": True,  # use_linear_in_transformer
    "cross_attention_dim": 2048,  # CLIP-L 768 + bigG 1280, concatenated
    "addition_embed_type": "text_time",  # num_classes "sequential" with context_dim 2048
    "addition_time_embed_dim": 256,  # ConcatTimestepEmbedderND outdim 256
    "projection_class_embeddings_input_dim": 2816,  # adm_in_channels: 1280 + 6 × 256
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}

SDXL_VAE: dict[str, Any] = {
    **SD_VAE,  # [SGM] first_stage_config.ddconfig is SD's
    "sample_size": 1024,
    "scaling_factor": 0.13025,  # [SGM] scale_factor
    "force_upcast": True,
}

CLIP_BIGG_TEXT: dict[str, Any] = {
    # OpenCLIP ViT-bigG/14 text tower: [open_clip] ViT-bigG-14.json, [SD3.5] CLIPG_CONFIG
    "vocab_size": CLIP_VOCAB_SIZE,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",  # open_clip's default GELU, not OpenAI's quick_gelu
    "layer_norm_eps": 1e-5,
    "projection_dim": 1280,  # embed_dim: the pooled `text_embeds` SDXL conditions on
    "pad_token_id": 1,
    **CLIP_SPECIAL_IDS,
}

SDXL_SCHEDULER: dict[str, Any] = {
    # Euler as SDXL base 1.0 ships it: [diffusers-ldm] SCHEDULER_DEFAULT_CONFIG
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "interpolation_type": "linear",
    "prediction_type": "epsilon",
    "use_karras_sigmas": False,
}

# FLUX.1-dev -------------------------------------------------------------------------------

FLUX_DEPTH = {"num_layers": 19, "num_single_layers": 38}
"""FLUX.1's published depth ([BFL] depth, depth_single_blocks); the bench uses FLUX_TRANSFORMER."""

FLUX_TRANSFORMER: dict[str, Any] = {
    # [BFL] configs["flux-dev"].params, [diffusers-flux] FluxTransformer2DModel defaults
    "patch_size": 1,
    "in_channels": 64,  # 16 latent channels packed 2 × 2
    "num_layers": 2,  # reduced: 19 double-stream blocks in FLUX.1
    "num_single_layers": 4,  # reduced: 38 single-stream blocks in FLUX.1
    "attention_head_dim": 128,  # hidden_size 3072 / num_heads 24
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,  # context_in_dim: T5-XXL width
    "pooled_projection_dim": 768,  # vec_in_dim: CLIP-L pooled output
    "guidance_embeds": True,  # guidance_embed (dev; schnell has none)
    "axes_dims_rope": (16, 56, 56),  # axes_dim
}

FLUX_VAE: dict[str, Any] = {
    # [BFL] ae_params; [diffusers-flux] SD3's VAE config with Flux's scale and shift
    **SD_VAE,
    "latent_channels": 16,  # z_channels
    "sample_size": 1024,
    "scaling_factor": 0.3611,
    "shift_factor": 0.1159,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "force_upcast": True,
}

T5_XXL: dict[str, Any] = {
    # google/t5-v1_1-xxl ([BFL] load_t5): [SD3.5] T5_CONFIG; T5 v1.1's gated GELU
    # feed-forward, 32 relative-position buckets over distance 128, untied embeddings
    "vocab_size": 32128,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "feed_forward_proj": "gated-gelu",
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "layer_norm_epsilon": 1e-6,
    "tie_word_embeddings": False,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}

T5_REDUCED: dict[str, Any] = {**T5_XXL, "num_layers": 2}
"""Reduced: 2 of T5-XXL's 24 layers (about FLUX_TRANSFORMER's share of FLUX.1's depth); its
`vocab_size` is set to the offline tokenizer's when built."""

FLUX_SCHEDULER: dict[str, Any] = {
    # FLUX.1-dev's FlowMatchEulerDiscreteScheduler: [diffusers-flux] calculate_shift values,
    # resolution-dependent shift on
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
    "base_shift": 0.5,
    "max_shift": 1.15,
}

# Families -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """One pipeline component: its class (diffusers or transformers) and configuration;
    transformers models take a config object (`config_class`)."""

    library: str
    cls: str
    config: dict[str, Any]
    config_class: str | None = None


@dataclass(frozen=True)
class Family:
    """A pipeline class, its models and schedulers, its tokenizers and native resolution.

    Tokenizers are named by kind: `clip` (pads with `<|endoftext|>`, as OpenAI's), `clip!`
    (pads with `!`, as OpenCLIP's and SDXL's `tokenizer_2`) and `t5` (offline Unigram)."""

    pipeline: str
    resolution: int
    components: dict[str, Component]
    tokenizers: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)


def _clip(config: dict[str, Any], projection: bool = False) -> Component:
    cls = "CLIPTextModelWithProjection" if projection else "CLIPTextModel"
    return Component("transformers", cls, config, "CLIPTextConfig")


FAMILIES: dict[str, Family] = {
    "sd": Family(
        pipeline="StableDiffusionPipeline",
        resolution=512,
        components={
            "unet": Component("diffusers", "UNet2DConditionModel", SD15_UNET),
            "vae": Component("diffusers", "AutoencoderKL", SD_VAE),
            "text_encoder": _clip(CLIP_L_TEXT),
            "scheduler": Component("diffusers", "PNDMScheduler", SD15_SCHEDULER),
        },
        tokenizers={"tokenizer": "clip"},
        extra={"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False},
    ),
    "sdxl": Family(
        pipeline="StableDiffusionXLPipeline",
        resolution=1024,
        components={
            "unet": Component("diffusers", "UNet2DConditionModel", SDXL_UNET),
            "vae": Component("diffusers", "AutoencoderKL", SDXL_VAE),
            "text_encoder": _clip(CLIP_L_TEXT),
            "text_encoder_2": _clip(CLIP_BIGG_TEXT, projection=True),
            "scheduler": Component("diffusers", "EulerDiscreteScheduler", SDXL_SCHEDULER),
        },
        tokenizers={"tokenizer": "clip", "tokenizer_2": "clip!"},
        extra={"add_watermarker": False},
    ),
    "flux": Family(
        pipeline="FluxPipeline",
        resolution=1024,
        components={
            "transformer": Component("diffusers", "FluxTransformer2DModel", FLUX_TRANSFORMER),
            "vae": Component("diffusers", "AutoencoderKL", FLUX_VAE),
            "text_encoder": _clip(CLIP_L_TEXT),
            "text_encoder_2": Component("transformers", "T5EncoderModel", T5_REDUCED, "T5Config"),
            "scheduler": Component("diffusers", "FlowMatchEulerDiscreteScheduler", FLUX_SCHEDULER),
        },
        tokenizers={"tokenizer": "clip", "tokenizer_2": "t5"},
    ),
}


def instantiate(component: Component, **overrides: Any) -> Any:
    """The component built from its configuration (random weights), on the current default
    device (`with torch.device(...)`): on `meta` it takes no memory."""
    import importlib

    library = importlib.import_module(component.library)
    config = {**component.config, **overrides}
    cls = getattr(library, component.cls)
    if component.config_class is None:
        return cls(**config)
    return cls(getattr(library, component.config_class)(**config))
