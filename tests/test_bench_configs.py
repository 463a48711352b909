"""The GPU bench's real-size configurations construct and have the published sizes.

Everything is built on the meta device (no memory, no weights), so a typo in a configuration
fails here, in CI, rather than on the GPU machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench import gpu_configs as cfg
from bench.gpu_throughput import build_pipeline


def _meta(component: cfg.Component, **overrides) -> torch.nn.Module:
    with torch.device("meta"):
        return cfg.instantiate(component, **overrides)


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


PUBLISHED = [
    # (what, component, overrides, published parameter count)
    ("SD-1.5 UNet", cfg.FAMILIES["sd"].components["unet"], {}, 859.5e6),
    ("SDXL UNet", cfg.FAMILIES["sdxl"].components["unet"], {}, 2.567e9),
    ("CLIP ViT-L/14 text", cfg.FAMILIES["sd"].components["text_encoder"], {}, 123.1e6),
    ("OpenCLIP bigG text", cfg.FAMILIES["sdxl"].components["text_encoder_2"], {}, 694.7e6),
    ("SD VAE", cfg.FAMILIES["sd"].components["vae"], {}, 83.65e6),
    ("SDXL VAE", cfg.FAMILIES["sdxl"].components["vae"], {}, 83.65e6),
    ("FLUX.1 VAE", cfg.FAMILIES["flux"].components["vae"], {}, 83.8e6),
    (
        "FLUX.1 transformer at full depth",
        cfg.FAMILIES["flux"].components["transformer"],
        cfg.FLUX_DEPTH,
        11.9e9,
    ),
    (
        "T5-XXL encoder",
        cfg.Component("transformers", "T5EncoderModel", cfg.T5_XXL, "T5Config"),
        {},
        4.762e9,
    ),
]


@pytest.mark.parametrize(
    ("what", "component", "overrides", "published"),
    PUBLISHED,
    ids=[p[0] for p in PUBLISHED],
)
def test_real_configurations_have_the_published_parameter_counts(
    what, component, overrides, published
):
    count = _params(_meta(component, **overrides))

    assert count == pytest.approx(published, rel=0.01), f"{what}: {count:,}"


def test_the_reduced_flux_keeps_flux_width_and_is_smaller():
    transformer = _meta(cfg.FAMILIES["flux"].components["transformer"])
    config = transformer.config

    assert config.num_attention_heads * config.attention_head_dim == 3072
    assert (config.in_channels, config.joint_attention_dim) == (64, 4096)
    assert (config.pooled_projection_dim, config.guidance_embeds) == (768, True)
    assert sum(config.axes_dims_rope) == config.attention_head_dim
    assert len(transformer.transformer_blocks) == 2
    assert len(transformer.single_transformer_blocks) == 4
    assert 1.0e9 < _params(transformer) < 1.6e9


@pytest.mark.parametrize(
    ("config_file", "text"),
    [("ViT-L-14.json", cfg.CLIP_L_TEXT), ("ViT-bigG-14.json", cfg.CLIP_BIGG_TEXT)],
)
def test_clip_text_configs_match_open_clip(config_file, text):
    """open_clip ships the text towers' configurations: compare ours with them."""
    import open_clip

    shipped = json.loads(
        (Path(open_clip.__file__).parent / "model_configs" / config_file).read_text()
    )
    tower = shipped["text_cfg"]

    assert text["hidden_size"] == tower["width"]
    assert text["num_attention_heads"] == tower["heads"]
    assert text["num_hidden_layers"] == tower["layers"]
    assert text["vocab_size"] == tower["vocab_size"]
    assert text["max_position_embeddings"] == tower["context_length"]
    assert text["intermediate_size"] == 4 * tower["width"]
    assert text["projection_dim"] == shipped["embed_dim"]


def test_text_widths_feed_the_denoisers():
    """SDXL attends to CLIP-L and bigG concatenated and conditions on bigG's pooled output and
    six size numbers; Flux attends to T5 and conditions on CLIP-L's pooled output."""
    unet = cfg.SDXL_UNET
    clip_l, big_g = cfg.CLIP_L_TEXT, cfg.CLIP_BIGG_TEXT

    assert cfg.SD15_UNET["cross_attention_dim"] == clip_l["hidden_size"]
    assert unet["cross_attention_dim"] == clip_l["hidden_size"] + big_g["hidden_size"]
    assert unet["projection_class_embeddings_input_dim"] == (
        big_g["projection_dim"] + 6 * unet["addition_time_embed_dim"]
    )
    assert cfg.FLUX_TRANSFORMER["joint_attention_dim"] == cfg.T5_XXL["d_model"]
    assert cfg.FLUX_TRANSFORMER["pooled_projection_dim"] == clip_l["hidden_size"]
    assert cfg.FLUX_TRANSFORMER["in_channels"] == 4 * cfg.FLUX_VAE["latent_channels"]


@pytest.mark.parametrize("family", list(cfg.FAMILIES))
def test_each_family_assembles_into_its_pipeline_at_its_native_size(family):
    from synthset.generators.pipeline import native_size

    pipe = build_pipeline(family, "meta", torch.bfloat16)
    spec = cfg.FAMILIES[family]

    assert type(pipe).__name__ == spec.pipeline
    assert native_size(pipe) == spec.resolution
    for name in spec.components:
        assert getattr(pipe, name) is not None
    if family == "flux":
        assert pipe.text_encoder_2.config.vocab_size == len(pipe.tokenizer_2)
        assert pipe.tokenizer_2.model_max_length == 512
    if family == "sdxl":
        assert pipe.tokenizer_2.pad_token == "!"
