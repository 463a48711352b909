"""Planted memorization: a DDPM trained on 8 phantoms, each its own class (a label unique to
one image, as a unique caption is in Carlini et al. 2023), until it reproduces them; every
sample that is a copy of a training image is rejected by the gate, naming that image, and
the release is blocked."""

from __future__ import annotations

import numpy as np
import pytest

from synthset.privacy.medical.config import GenerateConfig, MedicalConfig, TrainConfig
from synthset.privacy.medical.generate import generate
from synthset.privacy.medical.memorization import check_with_config
from synthset.privacy.medical.phantoms import make_phantoms
from synthset.privacy.medical.release import decide
from synthset.privacy.medical.train import train

COPY_RMSE = 0.05
"""A sample within 5% of the intensity range (RMSE) of a training image is a copy of it."""


@pytest.mark.slow
def test_every_reproduced_training_image_is_rejected(tmp_path):
    images, _ = make_phantoms(8, size=16, seed=5)
    config = TrainConfig(
        channels=[16, 32],
        batch_size=8,
        lr=5e-3,
        ema=0.99,
        timesteps=100,
        prediction="epsilon",
        min_snr=None,
        label_dropout=0.0,
        epochs=2000,
        checkpoint_every=10_000,
        threads=1,
    )
    model = train(images, np.arange(8), list(range(8)), config, tmp_path / "memorized")
    synthetic = generate(
        model, GenerateConfig(count=32, scheduler="ddim", steps=50, guidance=1.0), "cpu"
    )
    rmse = np.sqrt(((synthetic.images[:, None] - images[None]) ** 2).mean(axis=(2, 3)))
    copies = np.flatnonzero(rmse.min(axis=1) <= COPY_RMSE)
    assert len(copies) >= 8, f"the model reproduced only {len(copies)} of 32 samples"

    release = MedicalConfig(dataset="planted", data="unused")
    memo = check_with_config(synthetic.images, images, release.gate)
    assert memo.rejected[copies].all(), "a reproduced training image passed the gate"
    for i in copies:
        source = int(rmse[i].argmin())
        assert f"near copy of training image {source}" in memo.reasons[i]
    assert not memo.passed
    gate = decide(release, memo, None)
    assert not gate.passed
    assert any("rejected_share" in reason for reason in gate.reasons)
