"""A Gaussian prior for the numeric scores: the denoiser learns a correction to it.

The encoder maps every numeric column to standard normal scores, so a Gaussian copula is the
natural first guess at their joint law: x_0 ~ N(0, Σ) with Σ a correlation matrix. For that
law the best noise prediction is linear and known in closed form: with
x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε,

    E[ε | x_t] = √(1 − ᾱ_t) · (ᾱ_t·Σ + (1 − ᾱ_t)·I)⁻¹ · x_t.

The denoiser's numeric output is added to this term, and its last layer starts at zero, so an
untrained model samples the copula exactly and training only has to learn what the copula
misses (non-Gaussian dependence, the categories). Under DP-SGD this matters most: a few
hundred noisy steps learn little, and a noisy network that must also relearn the marginals
and the correlations from scratch does worse than the copula it could have started from.

Σ is the identity (independent scores, no privacy cost) or the correlation of the training
rows' scores: exact, or released with the Gaussian mechanism (`dp_correlation`).

The categories get the same treatment (`category_log_prior`): the denoiser's logits of x_0
are added to the log of each column's category shares. Multinomial diffusion steps with
q(x_s | x_t, x̂_0) ∝ q(x_t | x_s)·q(x_s | x̂_0), and for a column whose shares are π,
x̂_0 = π makes that the exact reverse step (q(x_s | π) is the marginal of x_s), so an
untrained model samples every column at its (DP) shares, and a missing category with a
share of zero is never made up.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def nearest_correlation(matrix: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """The symmetric matrix made positive definite (eigenvalues at least `floor`) and
    rescaled to a unit diagonal."""
    symmetric = (matrix + matrix.T) / 2
    values, vectors = np.linalg.eigh(symmetric)
    fixed = (vectors * np.maximum(values, floor)) @ vectors.T
    scale = 1 / np.sqrt(np.diag(fixed))
    return fixed * scale[:, None] * scale[None, :]


def exact_correlation(scores: np.ndarray) -> np.ndarray:
    """Correlation of the rows' normal scores about 0 (their mean under the encoder's maps)."""
    if scores.shape[1] == 0:
        return np.zeros((0, 0))
    return nearest_correlation(scores.T @ scores)


def clip_norm(width: int) -> float:
    """Rows are clipped to L2 norm √width: a row of independent standard normal scores has
    about that norm, so most rows pass unclipped."""
    return math.sqrt(max(width, 1))


def clip_rows(scores: np.ndarray) -> np.ndarray:
    """Rows scaled down to L2 norm at most `clip_norm(width)`; shorter rows unchanged."""
    bound = clip_norm(scores.shape[1])
    norms = np.linalg.norm(scores, axis=1, keepdims=True)
    return scores * np.minimum(1.0, bound / np.maximum(norms, 1e-12))


def dp_correlation(
    scores: np.ndarray, noise_multiplier: float, rng: np.random.Generator
) -> np.ndarray:
    """The correlation of `scores` released with the Gaussian mechanism.

    Each row u is clipped to norm R = `clip_norm(width)` and adds u·uᵀ to the sum, whose
    entries on and above the diagonal have L2 sensitivity ‖u‖² ≤ R² under adding or removing a
    row; they get Gaussian noise of standard deviation `noise_multiplier`·R². The rest is
    post-processing: the noisy sum is scaled to a unit diagonal and shrunk towards the
    identity by the share of its off-diagonal spread that the noise explains (on a small
    table at a small ε the noise is most of it, and an unshrunk matrix would invent strong
    correlations), then projected to the nearest correlation matrix.
    """
    width = scores.shape[1]
    if width == 0:
        return np.zeros((0, 0))
    clipped = clip_rows(scores)
    noise_sd = noise_multiplier * clip_norm(width) ** 2
    upper = np.triu(rng.normal(0.0, noise_sd, size=(width, width)))
    noisy = clipped.T @ clipped + upper + np.triu(upper, 1).T
    diagonal = np.maximum(np.diag(noisy), noise_sd)
    scale = 1 / np.sqrt(diagonal)
    correlation = noisy * scale[:, None] * scale[None, :]
    if width > 1:
        off = ~np.eye(width, dtype=bool)
        noise_var = noise_sd**2 * np.mean((scale[:, None] * scale[None, :])[off] ** 2)
        shrink = min(1.0, noise_var / max(np.mean(correlation[off] ** 2), 1e-12))
        correlation = (1 - shrink) * correlation + shrink * np.eye(width)
    return nearest_correlation(correlation)


class GaussianPrior:
    """The closed-form noise prediction of N(0, Σ) scores under a diffusers schedule."""

    def __init__(self, correlation: np.ndarray, alphas_cumprod: torch.Tensor):
        self.correlation = np.asarray(correlation, dtype=np.float64)
        values, vectors = np.linalg.eigh(self.correlation)
        self.values = torch.from_numpy(np.maximum(values, 0.0))
        self.vectors = torch.from_numpy(vectors)
        self.alphas_cumprod = alphas_cumprod.double()

    def noise(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """E[ε | x_t] for rows `x_t` at timesteps `t`."""
        ab = self.alphas_cumprod[t][:, None]
        rotated = x_t.double() @ self.vectors
        scaled = rotated / (ab * self.values[None, :] + (1 - ab))
        return ((1 - ab).sqrt() * (scaled @ self.vectors.T)).to(x_t.dtype)


SHARE_FLOOR = 1e-6
"""Smallest prior share: a category the (noisy) counts put at zero stays reachable, at
log(1e-6) ≈ −14, if the data teaches the denoiser otherwise."""


def category_log_prior(shares: list[np.ndarray], width: int) -> torch.Tensor:
    """Log shares of each categorical column, padded to `width` categories with −inf."""
    out = torch.full((len(shares), width), -torch.inf, dtype=torch.float64)
    for j, p in enumerate(shares):
        p = np.maximum(np.asarray(p, dtype=np.float64), SHARE_FLOOR)
        out[j, : len(p)] = torch.from_numpy(np.log(p / p.sum()))
    return out
