"""The digit judge: the packaged one is accurate on held-out digits; training and saving work."""

import numpy as np

from synthset.models.digits import load_split, paint, upscale
from synthset.models.judge import (
    Judge,
    judge_accuracy,
    load_judge,
    save_judge,
    stroke_map,
    train_judge,
)


def test_packaged_judge_is_accurate_on_held_out_digits():
    assert judge_accuracy(load_judge(), split="test", copies=1) >= 0.97


def test_judge_is_colour_blind():
    alpha = upscale(load_split("test").images[:50])
    judge = load_judge()
    white_on_black = np.stack([paint(a, "white", "black") for a in alpha])
    red_on_yellow = np.stack([paint(a, "red", "yellow") for a in alpha])

    np.testing.assert_allclose(stroke_map(white_on_black), stroke_map(red_on_yellow), atol=0.02)
    assert (judge.predict(white_on_black) == judge.predict(red_on_yellow)).mean() >= 0.96


def test_a_trained_judge_round_trips_through_safetensors(tmp_path):
    model = train_judge(seed=0, epochs=1)
    folder = save_judge(model, tmp_path / "judge")
    images = np.stack([paint(a, "blue", "white") for a in upscale(load_split("test").images[:20])])

    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    np.testing.assert_array_equal(load_judge(folder).predict(images), Judge(model).predict(images))
