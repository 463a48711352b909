"""Diversity-preserving sampling inside the denoiser call, for any pipeline that batches
classifier-free guidance as [unconditional, conditional] (Stable Diffusion 1.x/2.x, SDXL, SD3,
their img2img, inpainting and ControlNet variants).

- **Guidance interval** (Kynkäänniemi et al. 2024): guidance only while the noise level σ lies
  in (lo, hi]. Outside it the denoiser runs on the conditional half alone and its prediction
  stands for both halves, so the pipeline's `uncond + w · (cond − uncond)` is the conditional
  prediction (and that step costs half).
- **CADS** (Sadat et al. 2024): the conditional half's text embedding (and pooled embedding,
  where the denoiser takes one) becomes `√γ(t) · y + s · √(1 − γ(t)) · n`, γ going from 0
  above diffusion time τ2 to 1 below τ1; with `rescale` the noised embedding is brought back to
  y's mean and standard deviation and mixed in at ψ.

σ is the EDM noise level, the paper's unit: √((1 − ᾱ)/ᾱ) for the DDPM family of schedulers
(from the timestep the denoiser is given), s/(1 − s) for flow matching (s the scheduler's
current sigma). Diffusers' own `guiders` (ClassifierFreeGuidance `start`/`stop`, as fractions
of the steps) only drive modular pipelines, not the classic ones synthset loads.

The hooks are installed once per denoiser and act only inside `diverse_sampling`, on the
thread that entered it: a cached pipeline shared with other configurations is unchanged
outside. Each image draws its CADS noise from its own generator seeded from the image's seed,
so an image does not depend on the batch it was made in.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthset.errors import SynthsetError
from synthset.manifest import CadsConfig, DiversityConfig

_ACTIVE = threading.local()
_INSTALLED = "_synthset_diversity_hooks"
_POOLED = "pooled_projections"
"""The pooled prompt embedding a transformer takes beside the sequence (SD3); SDXL's UNet takes
it as `added_cond_kwargs["text_embeds"]`. CADS noises it like the sequence."""


def denoiser_of(pipe: Any) -> Any:
    """The pipeline's UNet or transformer, or a one-line error naming the pipeline."""
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if denoiser is None:
        raise SynthsetError(
            f"generator.diversity needs a UNet or transformer denoiser; "
            f"{type(pipe).__name__} has neither"
        )
    return denoiser


def check_pipeline(pipe: Any) -> None:
    """Refuse, before any image, a pipeline the options cannot act on: one that runs true
    classifier-free guidance as separate denoiser calls (Flux's `true_cfg_scale`) or whose
    noise levels cannot be read."""
    import inspect

    if "true_cfg_scale" in inspect.signature(pipe.__call__).parameters:
        raise SynthsetError(
            f"generator.diversity works with pipelines that batch classifier-free guidance "
            f"(Stable Diffusion, SDXL, SD3); {type(pipe).__name__} does not"
        )
    denoiser_of(pipe)
    noise_levels(pipe.scheduler)


def noise_levels(scheduler: Any) -> Callable[[Any], tuple[float, float]]:
    """timestep → (σ, diffusion time t in [0, 1]) for the scheduler's kind, or a one-line error."""
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is not None and not scheduler.config.get("use_flow_sigmas", False):
        a = np.asarray(alphas, dtype=np.float64)
        log_sigma = 0.5 * np.log((1.0 - a) / a)
        last = len(a) - 1

        def vp(timestep: Any) -> tuple[float, float]:
            t = min(max(_scalar(timestep), 0.0), float(last))
            return float(np.exp(np.interp(t, np.arange(len(a)), log_sigma))), t / last

        return vp
    if hasattr(scheduler, "sigmas") and hasattr(scheduler, "step_index"):

        def flow(_: Any) -> tuple[float, float]:
            index = scheduler.step_index
            if index is None:
                index = scheduler.begin_index or 0
            s = float(scheduler.sigmas[index])
            return (s / (1.0 - s) if s < 1.0 else float("inf")), s

        return flow
    raise SynthsetError(
        f"generator.diversity cannot read noise levels from {type(scheduler).__name__} "
        "(neither alphas_cumprod nor flow-matching sigmas); use another scheduler"
    )


def _scalar(timestep: Any) -> float:
    import torch

    if isinstance(timestep, torch.Tensor):
        return float(timestep.flatten()[0])
    return float(timestep)


def cads_gamma(t: float, cads: CadsConfig) -> float:
    """The annealing schedule: 1 (clean condition) for t ≤ τ1, 0 for t ≥ τ2, linear between."""
    if t <= cads.tau1:
        return 1.0
    if t >= cads.tau2:
        return 0.0
    return (cads.tau2 - t) / (cads.tau2 - cads.tau1)


def cads_noise(y: Any, gamma: float, cads: CadsConfig, noise: Any) -> Any:
    """CADS on one batch of condition vectors `y` (per row: its own mean and deviation)."""
    if gamma >= 1.0:
        return y
    import torch

    yf = y.float()
    dims = tuple(range(1, yf.ndim))
    noised = gamma**0.5 * yf + cads.noise_scale * (1.0 - gamma) ** 0.5 * noise
    if cads.rescale:
        mean, std = yf.mean(dims, keepdim=True), yf.std(dims, keepdim=True)
        scaled = (noised - noised.mean(dims, keepdim=True)) / noised.std(dims, keepdim=True)
        scaled = torch.nan_to_num(scaled * std + mean)
        noised = cads.psi * scaled + (1.0 - cads.psi) * noised
    return noised.to(y.dtype)


def cads_seed(seed: int) -> int:
    """The seed of an image's CADS noise: derived from its seed, apart from its latent noise."""
    return int.from_bytes(hashlib.sha256(f"cads:{seed}".encode()).digest()[:8], "big") >> 1


@dataclass
class _Call:
    config: DiversityConfig
    denoiser: Any
    images: int
    level: Callable[[Any], tuple[float, float]]
    generators: list[Any]
    halved: bool = False
    calls: list[tuple[float, bool]] = field(default_factory=list)
    """(σ, guided) per denoiser call, for tests and logs."""


@contextlib.contextmanager
def diverse_sampling(
    pipe: Any, config: DiversityConfig | None, seeds: Sequence[int]
) -> Iterator[_Call | None]:
    """Within this block, the pipeline's denoiser calls on this thread apply `config` to a
    batch of images with `seeds` (in the order the pipeline was given them)."""
    if config is None or not config.active:
        yield None
        return
    import torch

    denoiser = denoiser_of(pipe)
    install(denoiser)
    call = _Call(
        config,
        denoiser,
        len(seeds),
        noise_levels(pipe.scheduler),
        [torch.Generator("cpu").manual_seed(cads_seed(s)) for s in seeds],
    )
    _ACTIVE.call = call
    try:
        yield call
    finally:
        _ACTIVE.call = None


def install(denoiser: Any) -> None:
    """Add the two hooks to `denoiser` once; they do nothing outside `diverse_sampling`."""
    if getattr(denoiser, _INSTALLED, False):
        return
    denoiser.register_forward_pre_hook(_before, with_kwargs=True)
    denoiser.register_forward_hook(_after, with_kwargs=True)
    setattr(denoiser, _INSTALLED, True)


def _current(module: Any) -> _Call | None:
    call = getattr(_ACTIVE, "call", None)
    return call if call is not None and call.denoiser is module else None


def _before(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    call = _current(module)
    if call is None:
        return None
    sample = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
    timestep = args[1] if len(args) > 1 else kwargs.get("timestep")
    b, n = call.images, int(sample.shape[0])
    if n not in (b, 2 * b):
        raise SynthsetError(
            f"generator.diversity: the denoiser got a batch of {n} for {b} images; it works "
            "with one image per prompt and guidance batched as [unconditional, conditional]"
        )
    guided = n == 2 * b
    sigma, t = call.level(timestep)
    if call.config.cads is not None:
        kwargs = _with_cads(kwargs, call, t, start=n - b)
    interval = call.config.guidance_interval
    if guided and interval is not None and not interval[0] < sigma <= interval[1]:
        guided = False
        call.halved = True
        args, kwargs = _second_half(args, n), _second_half(kwargs, n)
    call.calls.append((sigma, guided))
    return args, kwargs


def _after(module: Any, args: tuple, kwargs: dict, output: Any) -> Any:
    call = _current(module)
    if call is None or not call.halved:
        return None
    import torch

    call.halved = False
    if isinstance(output, tuple):
        return (torch.cat([output[0], output[0]]), *output[1:])
    output.sample = torch.cat([output.sample, output.sample])
    return output


def _second_half(value: Any, n: int) -> Any:
    """`value` with every tensor of batch `n` cut to its conditional (second) half."""
    import torch

    if isinstance(value, torch.Tensor):
        return value[n // 2 :] if value.ndim and value.shape[0] == n else value
    if isinstance(value, dict):
        return {k: _second_half(v, n) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_second_half(v, n) for v in value)
    return value


def _with_cads(kwargs: dict, call: _Call, t: float, start: int) -> dict:
    """kwargs with rows `start:` (the conditional images) of the prompt embeddings noised."""
    cads = call.config.cads
    gamma = cads_gamma(t, cads)
    if gamma >= 1.0:
        return kwargs
    kwargs = dict(kwargs)
    kwargs["encoder_hidden_states"] = _noised(kwargs["encoder_hidden_states"], call, gamma, start)
    if kwargs.get(_POOLED) is not None:
        kwargs[_POOLED] = _noised(kwargs[_POOLED], call, gamma, start)
    added = kwargs.get("added_cond_kwargs")
    if added and added.get("text_embeds") is not None:
        added = dict(added, text_embeds=_noised(added["text_embeds"], call, gamma, start))
        kwargs["added_cond_kwargs"] = added
    return kwargs


def _noised(y: Any, call: _Call, gamma: float, start: int) -> Any:
    import torch

    shape = tuple(y.shape[1:])
    noise = torch.stack([torch.randn(shape, generator=g) for g in call.generators])
    noise = noise.to(y.device)
    cond = cads_noise(y[start:], gamma, call.config.cads, noise)
    return torch.cat([y[:start], cond]) if start else cond
