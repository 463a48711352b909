"""TabDDPM-style mixed diffusion: Gaussian diffusion on numeric scores, multinomial diffusion on
categories, one MLP denoiser for both.

The noise schedule is a diffusers scheduler: training uses `DDPMScheduler.add_noise` and its
`alphas_cumprod` (ᾱ_t), sampling steps the numeric part with any diffusers scheduler built by
`from_config` (DDPM, DDIM, DPM-Solver++, Euler, ...). Categorical columns follow Hoogeboom et
al.'s multinomial diffusion on the same ᾱ_t:

    q(x_t | x_0) = Cat(ᾱ_t·x_0 + (1 − ᾱ_t)/K)
    q(x_s | x_t, x_0) ∝ [α_{t|s}·x_t + (1 − α_{t|s})/K] ⊙ [ᾱ_s·x_0 + (1 − ᾱ_s)/K]

with α_{t|s} = ᾱ_t/ᾱ_s.

The denoiser predicts the numeric noise ε and, per categorical column, shares over x_0 (its
logits plus the log prior); by Bayes with q(x_t | x_0) they give the model's p(x_0 | x_t)
(`_x0_given_xt`), and the categorical loss is its cross-entropy with the true x_0, averaged
over columns (D3PM's auxiliary x_0 loss, alone). TabDDPM's per-step posterior KL is a
tighter bound, but over 1,000 steps each term is O(β_t): its gradients were about 10⁻⁴ of the
numeric loss's, and in a few thousand steps the model learned no dependence between
categories (ACTG 320's `tx`, a function of `txgrp`, came out independent of it). Because the
posterior is defined for any s < t, sampling may skip steps together with the numeric scheduler.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from synthset.generators.schedulers import make_scheduler
from synthset.privacy.tabular.prior import GaussianPrior

SCHEDULERS: dict[str, str] = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "dpmpp": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "unipc": "UniPCMultistepScheduler",
}
BETA_SCHEDULES = {"cosine": "squaredcos_cap_v2", "linear": "linear"}
_LOG_EPS = 1e-30
CLIP_SAMPLE = 5.2
"""Predicted clean scores are clipped to ±5.2, the range of the encoder's normal scores: near
t = T the cosine schedule's ᾱ_t is tiny and an unclipped x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t
amplifies the denoiser's error until samples run to the extremes."""


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, as in DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Denoiser(nn.Module):
    """TabDDPM's MLP: projected input plus timestep (and condition) embedding, then an MLP.

    `n_classes > 0` conditions on a class label (embedding); `numeric_condition` on a
    numeric target's normal score (a linear embedding). Only layers Opacus supports.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        hidden: Sequence[int] = (256, 256, 256),
        d_embed: int = 128,
        n_classes: int = 0,
        numeric_condition: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.d_embed = d_embed
        self.proj = nn.Linear(d_in, d_embed)
        self.time = nn.Sequential(
            nn.Linear(d_embed, d_embed), nn.SiLU(), nn.Linear(d_embed, d_embed)
        )
        self.label: nn.Module | None = None
        if n_classes:
            self.label = nn.Embedding(n_classes, d_embed)
        elif numeric_condition:
            self.label = nn.Linear(1, d_embed)
        layers: list[nn.Module] = []
        width = d_embed
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, d_out))
        self.mlp = nn.Sequential(*layers)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`x` is (rows, width) or (rows, draws, width) with `t` shaped like its leading dims;
        `y` has one entry per row."""
        emb = self.time(timestep_embedding(t.reshape(-1), self.d_embed).view(*t.shape, -1))
        if self.label is not None and y is not None:
            cond = self.label(y) if isinstance(self.label, nn.Embedding) else self.label(y[:, None])
            emb = emb + F.silu(cond).view(cond.shape[0], *([1] * (t.dim() - 1)), -1)
        return self.mlp(self.proj(x) + emb)


class MixedDiffusion:
    """Gaussian + multinomial diffusion over `d_num` numeric scores and categorical columns
    of `category_sizes` categories each."""

    def __init__(
        self,
        d_num: int,
        category_sizes: Sequence[int],
        timesteps: int = 1000,
        schedule: str = "cosine",
    ):
        from diffusers import DDPMScheduler

        if schedule not in BETA_SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; allowed: {', '.join(BETA_SCHEDULES)}")
        self.d_num, self.sizes, self.timesteps = d_num, list(category_sizes), timesteps
        self.prior: GaussianPrior | None = None
        """When set, the denoiser's numeric output is a correction to this prior's noise
        prediction (see `synthset.privacy.tabular.prior`)."""
        self.category_prior: torch.Tensor | None = None
        """When set, (columns, categories) log shares added to the denoiser's x_0 logits."""
        self.scheduler = DDPMScheduler(
            num_train_timesteps=timesteps,
            beta_schedule=BETA_SCHEDULES[schedule],
            clip_sample=True,
            clip_sample_range=CLIP_SAMPLE,
            prediction_type="epsilon",
        )
        self.alphas_cumprod = self.scheduler.alphas_cumprod.double()
        k_max = max(self.sizes, default=1)
        n_cat = len(self.sizes)
        self.mask = torch.zeros(n_cat, k_max, dtype=torch.bool)
        self.flat_index = torch.zeros(n_cat, k_max, dtype=torch.long)
        offset = 0
        for j, k in enumerate(self.sizes):
            self.mask[j, :k] = True
            self.flat_index[j, :k] = torch.arange(offset, offset + k)
            offset += k
        self.k = torch.tensor(self.sizes, dtype=torch.float64).clamp(min=1)[None, :, None]
        self.d_cat_flat = offset

    @property
    def d_model(self) -> int:
        """Width of the denoiser's input and output."""
        return self.d_num + self.d_cat_flat

    def _noise_prediction(
        self, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        if self.prior is None:
            return out[:, : self.d_num]
        return out[:, : self.d_num] + self.prior.noise(x_t, t)

    def _clipped(self, eps: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise prediction whose implied clean scores lie within ±`CLIP_SAMPLE`.

        DDPM clips x̂_0 itself; multistep solvers (DPM-Solver++, UniPC) and Euler have no such
        option (diffusers' dynamic thresholding also rescales x̂_0 to ±1), and near t = T an
        unclipped x̂_0 sends samples to the extremes, so the clip is applied to ε for all.
        """
        ab = self.alphas_cumprod[int(t)].to(eps.dtype)
        x0 = ((x_t - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-CLIP_SAMPLE, CLIP_SAMPLE)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    def _onehot(self, x_cat: torch.Tensor) -> torch.Tensor:
        return F.one_hot(x_cat, self.mask.shape[1]).double() * self.mask

    def _flat(self, onehot: torch.Tensor) -> torch.Tensor:
        return onehot[:, self.mask].float()

    def _probs(self, logits: torch.Tensor) -> torch.Tensor:
        padded = logits[:, self.flat_index].double().masked_fill(~self.mask, -torch.inf)
        if self.category_prior is not None:
            padded = padded + self.category_prior
        return torch.softmax(padded, dim=-1)

    def _ab(self, t: torch.Tensor) -> torch.Tensor:
        """ᾱ_t, with ᾱ_{-1} = 1 (the data itself)."""
        ab = self.alphas_cumprod[t.clamp(min=0)]
        return torch.where(t < 0, torch.ones_like(ab), ab)[:, None, None]

    def _q_xt(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self._ab(t)
        return (ab * x0 + (1 - ab) / self.k) * self.mask

    def _posterior(
        self, xt: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: torch.Tensor
    ) -> torch.Tensor:
        a_ts = self._ab(t) / self._ab(s)
        ab_s = self._ab(s)
        unnorm = (a_ts * xt + (1 - a_ts) / self.k) * (ab_s * x0 + (1 - ab_s) / self.k) * self.mask
        return unnorm / unnorm.sum(-1, keepdim=True).clamp(min=_LOG_EPS)

    def _x0_given_xt(self, shares: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """p(x_0 | x_t) ∝ shares(x_0)·q(x_t | x_0): the denoiser's (and the prior's) `shares`
        are the part that does not come from x_t itself, and Bayes adds what x_t says (the
        kernel is symmetric, so q(x_t | x_0 = j) over j is `_q_xt(x_t, t)`).

        The cross-entropy trains this posterior; sampling steps with the plug-in posterior
        q(x_s | x_t, shares), which is the exact mixture Σ_x0 p(x_0 | x_t)·q(x_s | x_t, x_0)
        for exactly these shares. Plugging in p(x_0 | x_t) itself would count x_t twice: each
        column would stay near its uniform start, and shares drift towards uniform (the mixed
        table's `hiv` came out at 26% instead of 11%)."""
        joint = shares * self._q_xt(xt, t)
        return joint / joint.sum(-1, keepdim=True).clamp(min=_LOG_EPS)

    def _draw(self, probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        u = torch.rand(probs.shape, generator=generator, dtype=torch.float64).clamp(1e-30, 1.0)
        gumbel = -torch.log(-torch.log(u))
        scores = torch.log(probs.clamp(min=_LOG_EPS)) + gumbel
        return scores.masked_fill(~self.mask, -torch.inf).argmax(-1)

    def loss(
        self,
        model: nn.Module,
        x_num: torch.Tensor,
        x_cat: torch.Tensor,
        y: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        draws: int = 1,
    ) -> torch.Tensor:
        """Per-row training loss (numeric noise MSE + categorical x_0 cross-entropy).

        With `draws` > 1 each row's loss is averaged over that many (t, noise) draws, and the
        model sees them as a (rows, draws, width) batch, so a row still contributes exactly one
        per-sample gradient (under DP-SGD: less gradient noise, same sensitivity).
        """
        rows = x_num.shape[0]
        if draws > 1:
            x_num = x_num.repeat_interleave(draws, dim=0)
            x_cat = x_cat.repeat_interleave(draws, dim=0)
        n = x_num.shape[0]
        t = torch.randint(0, self.timesteps, (n,), generator=generator)
        noise = torch.randn(x_num.shape, generator=generator)
        xt_num = self.scheduler.add_noise(x_num, noise, t)
        parts = [xt_num]
        x0 = xt = None
        if self.sizes:
            x0 = self._onehot(x_cat)
            xt = self._onehot(self._draw(self._q_xt(x0, t), generator))
            parts.append(self._flat(xt))
        x_in = torch.cat(parts, dim=1)
        if draws > 1:
            out = model(x_in.view(rows, draws, -1), t.view(rows, draws), y).reshape(n, -1)
        else:
            out = model(x_in, t, y)
        loss = torch.zeros(n)
        if self.d_num:
            loss = loss + ((self._noise_prediction(out, xt_num, t) - noise) ** 2).mean(dim=1)
        if self.sizes:
            pred = self._x0_given_xt(self._probs(out[:, self.d_num :]), xt, t)
            nll = -(x0 * torch.log(pred.clamp(min=_LOG_EPS))).sum(-1)
            loss = loss + nll.mean(dim=1).float()
        return loss.view(rows, draws).mean(dim=1) if draws > 1 else loss

    @torch.no_grad()
    def sample(
        self,
        model: nn.Module,
        n: int,
        y: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        scheduler: str = "ddpm",
        steps: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw `n` rows: numeric scores (float32) and category indices (int64)."""
        sched = make_scheduler(scheduler, self.scheduler.config, SCHEDULERS)
        sched.set_timesteps(steps or self.timesteps)
        x = torch.randn((n, self.d_num), generator=generator) * float(sched.init_noise_sigma)
        uniform = self.mask.double()[None].expand(n, -1, -1) / self.k
        x_cat = (
            self._draw(uniform, generator) if self.sizes else torch.zeros((n, 0), dtype=torch.long)
        )
        timesteps = list(sched.timesteps)
        takes_generator = "generator" in inspect.signature(sched.step).parameters
        for i, t in enumerate(timesteps):
            t_batch = torch.full((n,), int(t), dtype=torch.long)
            parts = [sched.scale_model_input(x, t)]
            if self.sizes:
                parts.append(self._flat(self._onehot(x_cat)))
            out = model(torch.cat(parts, dim=1), t_batch, y)
            if self.d_num:
                extra = {"generator": generator} if takes_generator else {}
                eps = self._clipped(self._noise_prediction(out, parts[0], t_batch), parts[0], t)
                x = sched.step(eps, t, x, **extra).prev_sample
            if self.sizes:
                shares, xt = self._probs(out[:, self.d_num :]), self._onehot(x_cat)
                if i == len(timesteps) - 1:
                    x_cat = self._draw(self._x0_given_xt(shares, xt, t_batch), generator)
                else:
                    s = torch.full((n,), int(timesteps[i + 1]), dtype=torch.long)
                    x_cat = self._draw(self._posterior(xt, shares, t_batch, s), generator)
        return x.float(), x_cat
