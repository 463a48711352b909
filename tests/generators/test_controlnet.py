"""ControlNet: a tiny one made from the tiny UNet, a control image per item, its scale."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synthset.errors import ManifestError
from synthset.manifest import load_manifest
from synthset.pipeline import run_dataset
from synthset.runners.local import LocalRunner
from synthset.storage.formats import version_digest
from tests.conftest import write_manifest


def _manifest(folder: Path, model: str, controlnet: Path, scale: float, name: str) -> Path:
    control = folder / "edges.png"
    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[8:24, 14:18] = 255
    Image.fromarray(pixels).save(control)
    return write_manifest(
        folder,
        f"""
dataset: cn-{name}
generator: {{model: {model}, controlnet: {controlnet}, controlnet_scale: {scale},
             steps: 2, device: cpu}}
curation: {{enabled: false}}
items: [{{prompt: a red one, count: 2, seed: 5, conditions: {{control: edges.png}}}}]
""",
        name=f"{name}.yaml",
    )


def _images(result) -> np.ndarray:
    meta = pd.read_parquet(result.published.path / "metadata.parquet").sort_values("seed")
    return np.stack(
        [np.asarray(Image.open(result.published.path / f), float) for f in meta["file_name"]]
    )


def test_a_controlnet_steers_the_images_by_its_scale(
    tiny_model, tiny_controlnet, tracking_uri, tmp_path
):
    runs = {}
    for name, scale in (("on", 1.0), ("off", 0.0)):
        path = _manifest(tmp_path, tiny_model, tiny_controlnet, scale, name)
        runs[name] = run_dataset(path, LocalRunner(), tracking_uri=tracking_uri)

    on, off = _images(runs["on"]), _images(runs["off"])
    assert on.shape == off.shape == (2, 32, 32, 3)
    assert np.abs(on - off).mean() > 1.0
    folder = runs["on"].published.path
    meta = pd.read_parquet(folder / "metadata.parquet")
    (stored,) = set(meta["condition_control"])
    digest = hashlib.sha256((tmp_path / "edges.png").read_bytes()).hexdigest()
    assert stored == f"conditions/{digest}.png" and (folder / stored).is_file()
    assert version_digest(folder) == runs["on"].published.digest
    (folder / stored).write_bytes(b"edited")
    assert version_digest(folder) != runs["on"].published.digest


def test_a_controlnet_needs_a_control_image_on_every_item(tiny_model, tiny_controlnet, tmp_path):
    text = (
        f"dataset: cn\ngenerator: {{model: {tiny_model}, controlnet: {tiny_controlnet}}}\n"
        "items: [{prompt: a red one}]\n"
    )

    with pytest.raises(ManifestError, match="needs a condition 'control'"):
        load_manifest(write_manifest(tmp_path, text))


def _family_controlnet(family: str, folder: Path) -> Path:
    """A tiny ControlNet matching a family's denoiser (SDXL from its UNet, Flux from its
    transformer's configuration)."""
    from diffusers import ControlNetModel, FluxControlNetModel

    from synthset.generators import tiny

    pipe = getattr(tiny, f"build_tiny_{family}_pipeline")()
    if family == "sdxl":
        net = ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(8, 16))
    else:
        c = pipe.transformer.config
        net = FluxControlNetModel(
            **{k: c[k] for k in ("patch_size", "in_channels", "attention_head_dim")},
            **{k: c[k] for k in ("num_attention_heads", "joint_attention_dim")},
            **{k: c[k] for k in ("pooled_projection_dim", "guidance_embeds", "axes_dims_rope")},
            num_layers=1,
            num_single_layers=1,
        )
    net.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family", ["sdxl", "flux"])
def test_sdxl_and_flux_controlnets_generate(family, tmp_path):
    from synthset.generators import tiny
    from synthset.generators.pipeline import ImageGenerator
    from synthset.manifest import GenerationRequest, GeneratorConfig

    model = getattr(tiny, f"save_tiny_{family}_pipeline")(tmp_path / family)
    net = _family_controlnet(family, tmp_path / "controlnet")
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(tmp_path / "control.png")
    config = GeneratorConfig(
        model=str(model), controlnet=str(net), steps=2, device="cpu", height=32, width=32
    )
    request = GenerationRequest(
        sample_id="c",
        item_index=0,
        index=0,
        seed=1,
        prompt="a one",
        control=str(tmp_path / "control.png"),
    )

    (result,) = ImageGenerator(config).generate([request])

    assert result.error is None and result.image.size == (32, 32)
