"""Which device and dtype a model runs on: `auto` resolved the same way for every model kind."""

from __future__ import annotations

from typing import Any

from synthset.errors import SynthsetError


def resolve_device(device: str, field: str = "generator.device") -> str:
    """`auto` is CUDA when a GPU is visible, else CPU; `field` names the setting in errors."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SynthsetError(
            f"{field} is {device!r} but no CUDA device is visible; use 'auto' or 'cpu'"
        )
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    """`auto` is bfloat16 (or float16 where bf16 is unsupported) on CUDA, float32 elsewhere."""
    import torch

    if dtype == "auto":
        if not device.startswith("cuda"):
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, dtype)
