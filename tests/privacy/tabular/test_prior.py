"""The Gaussian prior: its closed-form noise prediction is the regression of ε on x_t, an
untrained denoiser on top of it samples the copula, and the DP correlation is a valid
correlation matrix whose rows respect the clipping bound."""

import numpy as np
import pytest
import torch

from synthset.privacy.tabular.diffusion import Denoiser, MixedDiffusion
from synthset.privacy.tabular.prior import (
    GaussianPrior,
    category_log_prior,
    clip_norm,
    clip_rows,
    dp_correlation,
    exact_correlation,
    nearest_correlation,
)

SIGMA = np.array([[1.0, 0.8, -0.3], [0.8, 1.0, 0.0], [-0.3, 0.0, 1.0]])


@pytest.mark.parametrize("step", [50, 300, 700])
def test_noise_prediction_is_the_least_squares_regression_of_the_noise(step):
    diffusion = MixedDiffusion(d_num=3, category_sizes=[], timesteps=1000)
    prior = GaussianPrior(SIGMA, diffusion.alphas_cumprod)
    generator = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.randn(n, 3, generator=generator, dtype=torch.float64) @ torch.from_numpy(
        np.linalg.cholesky(SIGMA).T
    )
    noise = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    t = torch.full((n,), step)
    ab = diffusion.alphas_cumprod[step]
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    fitted = torch.linalg.lstsq(x_t, noise).solution
    predicted = prior.noise(x_t, t)
    closed_form = torch.linalg.lstsq(x_t, predicted).solution
    assert torch.allclose(closed_form, fitted, atol=0.02)


def test_identity_prior_is_the_standard_normal_score():
    diffusion = MixedDiffusion(d_num=2, category_sizes=[], timesteps=100)
    prior = GaussianPrior(np.eye(2), diffusion.alphas_cumprod)
    x_t, t = torch.randn(5, 2), torch.tensor([0, 10, 50, 90, 99])
    expected = (1 - diffusion.alphas_cumprod[t]).sqrt().float()[:, None] * x_t
    assert torch.allclose(prior.noise(x_t, t), expected, atol=1e-6)


@pytest.mark.parametrize(("scheduler", "steps"), [("ddpm", None), ("dpmpp", 50), ("unipc", 25)])
def test_an_untrained_correction_samples_the_copula(scheduler, steps):
    diffusion = MixedDiffusion(d_num=3, category_sizes=[2], timesteps=200)
    diffusion.prior = GaussianPrior(SIGMA, diffusion.alphas_cumprod)
    model = Denoiser(diffusion.d_model, diffusion.d_model, hidden=[16], d_embed=8)
    with torch.no_grad():
        model.mlp[-1].weight[:3].zero_()
        model.mlp[-1].bias[:3].zero_()
    x, _ = diffusion.sample(model, 6000, None, torch.Generator().manual_seed(1), scheduler, steps)
    assert np.abs(np.corrcoef(x.numpy().T) - SIGMA).max() < 0.05
    assert np.abs(x.numpy().std(axis=0) - 1).max() < 0.05


@pytest.mark.parametrize(("scheduler", "steps"), [("ddpm", None), ("dpmpp", 50), ("unipc", 25)])
def test_an_untrained_correction_samples_the_category_shares(scheduler, steps):
    shares = [np.array([0.9, 0.07, 0.03]), np.array([0.2, 0.8])]
    diffusion = MixedDiffusion(d_num=2, category_sizes=[3, 2], timesteps=200)
    diffusion.category_prior = category_log_prior(shares, 3)
    model = Denoiser(diffusion.d_model, diffusion.d_model, hidden=[16], d_embed=8)
    with torch.no_grad():
        model.mlp[-1].weight[2:].zero_()
        model.mlp[-1].bias[2:].zero_()
    generator = torch.Generator().manual_seed(2)
    _, x_cat = diffusion.sample(model, 8000, None, generator, scheduler, steps)
    for j, p in enumerate(shares):
        seen = np.bincount(x_cat[:, j].numpy(), minlength=len(p)) / len(x_cat)
        assert np.abs(seen - p).max() < 0.015


def test_exact_correlation_and_projection():
    rng = np.random.default_rng(0)
    scores = rng.multivariate_normal(np.zeros(3), SIGMA, 20_000)
    assert np.abs(exact_correlation(scores) - SIGMA).max() < 0.03
    broken = np.array([[1.0, 0.99, -0.99], [0.99, 1.0, 0.99], [-0.99, 0.99, 1.0]])
    fixed = nearest_correlation(broken)
    assert np.allclose(np.diag(fixed), 1) and np.linalg.eigvalsh(fixed).min() > 0


def test_dp_correlation_is_a_correlation_near_the_truth_and_noisier_with_more_noise():
    rng = np.random.default_rng(0)
    scores = rng.multivariate_normal(np.zeros(3), SIGMA, 5000)
    errors = {}
    for z in (0.5, 500.0):
        released = dp_correlation(scores, z, np.random.default_rng(1))
        assert np.allclose(np.diag(released), 1) and np.linalg.eigvalsh(released).min() > 0
        errors[z] = np.abs(released - SIGMA).max()
    assert errors[0.5] < 0.06 < errors[500.0]


def test_rows_are_clipped_to_the_bound_that_sets_the_sensitivity():
    scores = np.array([[0.0, 0.0, 0.0], [0.5, -0.5, 1.0], [50.0, -40.0, 30.0]])
    clipped = clip_rows(scores)
    assert np.linalg.norm(clipped, axis=1).max() == pytest.approx(clip_norm(3))
    assert np.array_equal(clipped[:2], scores[:2])
    assert np.allclose(
        clipped[2] / np.linalg.norm(clipped[2]), scores[2] / np.linalg.norm(scores[2])
    )
