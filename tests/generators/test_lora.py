"""LoRA adapters from safetensors files, made here with peft on the tiny pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthset.errors import ManifestError
from synthset.generators.pipeline import ImageGenerator
from synthset.manifest import GenerationRequest, load_manifest
from tests.conftest import write_manifest


@pytest.fixture(scope="session")
def tiny_lora(tiny_model, tmp_path_factory) -> Path:
    """A rank-4 LoRA on the UNet's attention projections, random (non-zero) weights."""
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(0)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model)
    targets = ["to_q", "to_k", "to_v", "to_out.0"]
    pipe.unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=targets, init_lora_weights=False)
    )
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
    folder = tmp_path_factory.mktemp("lora")
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=layers, safe_serialization=True
    )
    return folder / "pytorch_lora_weights.safetensors"


def _manifest(model: str, loras: str = "") -> Path:
    text = (
        f"dataset: lora\ngenerator: {{model: {model}, steps: 2, device: cpu{loras}}}\n"
        "items: [{prompt: a red seven, count: 2, seed: 3}]\n"
    )
    return write_manifest(Path.cwd(), text, name=f"m{abs(hash(loras))}.yaml")


def _pixels(manifest) -> np.ndarray:
    requests = [
        GenerationRequest(
            sample_id=f"s{i}", item_index=0, index=i, seed=3 + i, prompt="a red seven"
        )
        for i in range(2)
    ]
    results = ImageGenerator(manifest.generator).generate(requests)
    return np.stack([np.asarray(r.image, dtype=float) for r in results])


def test_a_lora_changes_the_images_by_its_scale_and_the_sample_ids(tiny_model, tiny_lora):
    base = load_manifest(_manifest(tiny_model))
    full = load_manifest(_manifest(tiny_model, f", loras: [{{path: {tiny_lora}, scale: 1.0}}]"))
    off = load_manifest(
        _manifest(tiny_model, f", loras: [{{path: {tiny_lora.parent}, scale: 0.0}}]")
    )

    plain, adapted, zero = _pixels(base), _pixels(full), _pixels(off)

    assert np.abs(adapted - plain).mean() > 1.0
    assert np.abs(zero - plain).max() <= 1.0
    ids = [m.generator.identity() for m in (base, full, off)]
    assert len({str(i) for i in ids}) == 3 and "loras" not in ids[0]


def test_pickled_or_missing_lora_weights_are_refused(tiny_model, tmp_path):
    pickled = tmp_path / "lora.bin"
    pickled.write_bytes(b"not safetensors")

    with pytest.raises(ManifestError, match="must be .safetensors"):
        load_manifest(_manifest(tiny_model, f", loras: [{{path: {pickled}}}]"))
    with pytest.raises(ManifestError, match=r"loras\[0\]: field 'path': no such LoRA file"):
        load_manifest(_manifest(tiny_model, ", loras: [{path: nowhere.safetensors}]"))
