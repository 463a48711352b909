"""An exponential moving average of a model's weights: what a private synthesizer (tabular
or images) samples with, a copy updated after every optimizer step."""

from __future__ import annotations

import copy

import torch


class EMA:
    """`module`'s weights averaged with `decay` per update, as a frozen eval-mode copy."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay, self.module = decay, copy.deepcopy(module).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        for mine, theirs in zip(self.module.parameters(), module.parameters(), strict=True):
            mine.mul_(self.decay).add_(theirs.detach(), alpha=1 - self.decay)
