"""Fixtures the generator tests share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_controlnet(tiny_model, tmp_path_factory) -> Path:
    """`ControlNetModel.from_unet`, its zero convolutions made non-zero so it has an effect."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_pretrained(tiny_model, subfolder="unet")
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    for block in (net.controlnet_down_blocks, net.controlnet_mid_block):
        for weight in block.parameters():
            torch.nn.init.normal_(weight, std=0.5)
    folder = tmp_path_factory.mktemp("controlnet")
    net.save_pretrained(folder)
    return folder
