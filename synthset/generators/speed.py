"""The GPU speed stack, each piece an option with a safe default (all off): attention backend,
regional `torch.compile` of the denoiser, channels_last, fused QKV projections, VAE slicing and
tiling, model or sequential CPU offload. None of them changes what an image shows (only the
last bits of its floats), so none is part of the sample ids."""

from __future__ import annotations

from typing import Any

from synthset.errors import SynthsetError
from synthset.manifest import SpeedConfig

OFFLOAD = {"model": "enable_model_cpu_offload", "sequential": "enable_sequential_cpu_offload"}


def _denoiser(pipe: Any) -> Any:
    return getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)


def _attention(pipe: Any, backend: str) -> None:
    denoiser = _denoiser(pipe)
    try:
        denoiser.set_attention_backend(backend)
    except (ValueError, RuntimeError, ImportError) as exc:
        raise SynthsetError(
            f"generator.speed.attention {backend!r}: {str(exc).splitlines()[0]}"
        ) from None


def _compile(pipe: Any) -> None:
    """Regional compilation (the repeated blocks, compiled once) where diffusers offers it."""
    import torch

    denoiser = _denoiser(pipe)
    if getattr(denoiser, "_repeated_blocks", None):
        denoiser.compile_repeated_blocks(fullgraph=True)
    else:
        name = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
        setattr(pipe, name, torch.compile(denoiser, fullgraph=True))


def apply_speed(pipe: Any, speed: SpeedConfig, device: str) -> Any:
    """The pipeline with the chosen options applied; returns it (offload moves it itself)."""
    import torch

    if speed.fuse_qkv and hasattr(pipe, "fuse_qkv_projections"):
        pipe.fuse_qkv_projections()
    if speed.attention:
        _attention(pipe, speed.attention)
    if speed.channels_last:
        for module in (getattr(pipe, "unet", None), getattr(pipe, "vae", None)):
            if module is not None:
                module.to(memory_format=torch.channels_last)
    if speed.vae_slicing:
        pipe.vae.enable_slicing()
    if speed.vae_tiling:
        pipe.vae.enable_tiling()
    if speed.compile:
        _compile(pipe)
    if speed.offload != "none":
        if not device.startswith("cuda"):
            raise SynthsetError("generator.speed.offload needs a CUDA device")
        offload = {
            "model": "enable_model_cpu_offload",
            "sequential": "enable_sequential_cpu_offload",
        }
        getattr(pipe, offload[speed.offload])()
        return pipe
    return pipe.to(device)
