"""DDPM training on private images: checkpoints that diffusers loads, training that resumes
from a checkpoint to the same weights, DP-SGD within its (ε, δ) with everything that read
the images in one ledger, public pretraining named, and the `unet2d` generator kind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from synthset.errors import SynthsetError
from synthset.privacy.medical.config import GenerateConfig, TrainConfig
from synthset.privacy.medical.generate import allocate, generate, generator_config
from synthset.privacy.medical.phantoms import make_phantoms
from synthset.privacy.medical.train import STATE, build_unet, train

TINY = {"channels": [8, 16], "batch_size": 8, "timesteps": 50, "threads": 1}


@pytest.fixture(scope="module")
def data():
    images, labels = make_phantoms(16, size=16, seed=3)
    return images, labels


class Stop(Exception):
    pass


def _stop_at(message: str):
    def log(line: str) -> None:
        if line.startswith(message):
            raise Stop(line)

    return log


def test_the_unet_has_no_batchnorm_and_opacus_accepts_it():
    from opacus.validators import ModuleValidator

    unet = build_unet(TrainConfig(**TINY), 16, classes=2)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in unet.modules())
    assert ModuleValidator.validate(unet, strict=False) == []
    assert unet.config.num_class_embeds == 3


def test_checkpoint_is_a_diffusers_folder(data, tmp_path):
    from diffusers import DDPMScheduler, UNet2DModel

    images, labels = data
    model = train(images, labels, [0, 1], TrainConfig(**TINY, epochs=2), tmp_path / "ckpt")
    folder = model.folder
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    assert UNet2DModel.from_pretrained(folder / "unet").config.sample_size == 16
    assert DDPMScheduler.from_pretrained(folder / "scheduler").config.num_train_timesteps == 50
    assert model.history["epochs"] == 2 and model.history["steps"] == 4
    assert model.ledger is None and model.privacy() is None
    assert model.shares == pytest.approx(np.bincount(labels, minlength=2) / len(labels))


def test_training_resumes_from_its_checkpoint_to_the_same_weights(data, tmp_path):
    images, labels = data
    config = TrainConfig(**TINY, epochs=3, checkpoint_every=1)
    whole = train(images, labels, [0, 1], config, tmp_path / "whole")
    with pytest.raises(Stop):
        train(images, labels, [0, 1], config, tmp_path / "cut", _stop_at("epoch 2/3"))
    saved = json.loads((tmp_path / "cut" / STATE / "state.json").read_text())
    assert saved["progress"]["epoch"] == 1
    lines: list[str] = []
    resumed = train(images, labels, [0, 1], config, tmp_path / "cut", lines.append)
    assert lines[0] == "resuming from epoch 1 (2 steps)"
    assert resumed.history["epochs"] == 3 and resumed.history["steps"] == 6
    for part in ("unet/diffusion_pytorch_model.safetensors", f"{STATE}/raw.safetensors"):
        a, b = load_file(str(whole.folder / part)), load_file(str(resumed.folder / part))
        assert all(torch.equal(a[k], b[k]) for k in a), part


def test_a_checkpoint_of_other_images_is_not_resumed(data, tmp_path):
    images, labels = data
    config = TrainConfig(**TINY, epochs=1)
    train(images, labels, [0, 1], config, tmp_path / "ckpt")
    with pytest.raises(SynthsetError, match="other images or settings"):
        train(images[::-1].copy(), labels, [0, 1], config, tmp_path / "ckpt")


def test_dp_training_reports_epsilon_within_target_and_resumes(data, tmp_path):
    images, labels = data
    config = TrainConfig(**TINY, epochs=2, epsilon=10.0, delta=1e-5, checkpoint_every=1, draws=2)
    with pytest.raises(Stop):
        train(images, labels, [0, 1], config, tmp_path / "dp", _stop_at("epoch 2/2"))
    model = train(images, labels, [0, 1], config, tmp_path / "dp")
    privacy = model.privacy()
    assert privacy["spent"]["epsilon"] <= 10.0 + 1e-6
    assert privacy["spent"]["epsilon"] > 5.0
    names = [m["name"] for m in privacy["mechanisms"]]
    assert names == ["class shares", "dp-sgd"]
    sgd = privacy["mechanisms"][1]
    assert sgd["steps"] == 4 and sgd["sample_rate"] == pytest.approx(0.5)
    assert sgd["noise_multiplier"] == pytest.approx(model.history["noise_multiplier"])
    assert sum(model.shares) == pytest.approx(1.0)
    half = json.loads((tmp_path / "dp" / STATE / "state.json").read_text())
    assert half["spent_so_far"]["spent"]["epsilon"] <= privacy["spent"]["epsilon"]


def test_public_pretraining_is_named(data, tmp_path):
    images, labels = data
    pretrain = {"source": "digits", "epochs": 1}
    model = train(
        images, labels, [0, 1], TrainConfig(**TINY, epochs=1, pretrain=pretrain), tmp_path / "p"
    )
    assert "digits" in model.public and model.history["seconds_pretrain"] > 0
    state = json.loads((tmp_path / "p" / STATE / "state.json").read_text())
    assert state["progress"]["pretrained"] and "digits" in state["public"]


def test_labels_are_allocated_by_share():
    labels = allocate(10, [0.3, 0.7])
    assert np.bincount(labels).tolist() == [3, 7]
    assert allocate(4, []).tolist() == [-1] * 4


@pytest.mark.parametrize("scheduler", ["ddpm", "ddim", "dpmpp"])
def test_unet2d_generator_makes_the_same_image_in_any_batch(data, tmp_path, scheduler):
    from synthset.generators.base import generator_for

    images, labels = data
    model = train(images, labels, [0, 1], TrainConfig(**TINY, epochs=1), tmp_path / "g")
    gen = GenerateConfig(count=4, scheduler=scheduler, steps=4)
    together = generate(model, gen.model_copy(update={"batch_size": 4}), "cpu")
    alone = generate(model, gen.model_copy(update={"batch_size": 1}), "cpu")
    assert np.abs(together.images - alone.images).max() <= 1 / 255 + 1e-6
    assert together.rows["sample_id"].is_unique
    assert set(together.rows["label"]) == {0, 1}
    generator = generator_for(generator_config(model, gen, "cpu"))
    assert generator.kind == "unet2d" and generator.settings()["model"] == "g"
    assert together.pngs[0].mode == "L" and together.pngs[0].size == (16, 16)


def test_a_manifest_can_name_a_trained_checkpoint_as_unet2d(data, tmp_path):
    import pandas as pd

    from tests.conftest import generate_and_publish

    images, labels = data
    model = train(images, labels, [0, 1], TrainConfig(**TINY, epochs=1), tmp_path / "ckpt")
    _, _, published = generate_and_publish(
        f"""
dataset: lesions
generator: {{kind: unet2d, model: {model.folder}, scheduler: ddim, steps: 3}}
items:
  - {{prompt: lesion, count: 3, seed: 1, metadata: {{label: 1}}}}
  - {{prompt: no lesion, count: 2, seed: 2, metadata: {{label: 0}}}}
"""
    )
    rows = pd.read_parquet(published.path / "metadata.parquet")
    assert sorted(rows["label"].tolist()) == [0, 0, 1, 1, 1]
    assert (rows["generator"] == "unet2d").all() and (rows["model"] == "ckpt").all()


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_noise_multiplicity_gives_one_gradient_per_image():
    from opacus import GradSampleModule

    from synthset.privacy.medical.train import _average_draws

    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 1)
    module = GradSampleModule(torch.nn.Sequential(layer))
    x = torch.randn(2, 3)
    draws = torch.randn(4, 3)  # two draws for each of two images
    inputs = x.repeat_interleave(2, dim=0) + draws
    module(inputs).pow(2).mean().backward()
    _average_draws(module._module, 2)
    grads = layer.weight.grad_sample
    assert grads.shape == (2, 1, 3)
    for image in range(2):
        rows = inputs[2 * image : 2 * image + 2]
        expected = (2 * (rows @ layer.weight.T + layer.bias) * rows).mean(dim=0)
        assert torch.allclose(grads[image, 0], expected.detach(), atol=1e-5)


@pytest.mark.slow
def test_bench_quick_run_prints_its_table(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[3] / "bench" / "medical.py"
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(bench), "--quick", "--only", "no DP", "--jobs", "1"]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TSTR acc" in done.stdout
    (row,) = json.loads(out.read_text())
    assert row["setting"] == "no DP" and 0 <= row["gate_pass_rate"] <= 1
    assert row["seconds_train"] > 0 and row["trtr_accuracy"] > 0
