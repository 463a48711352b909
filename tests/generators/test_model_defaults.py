"""A model folder's recommended settings fill what a manifest leaves out; a model that cannot be
found is one line from `validate`, before anything runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from synthset.cli import main
from synthset.layout import PACKAGED_MODELS
from synthset.manifest import GeneratorConfig
from tests.conftest import write_manifest


def test_the_default_model_brings_its_recommended_steps_and_guidance():
    config = GeneratorConfig()

    assert (config.steps, config.guidance_scale) == (12, 4.0)
    assert GeneratorConfig(steps=30, guidance_scale=2.0).steps == 30


def test_a_local_folder_recommends_and_a_plain_one_falls_back(tiny_model, tmp_path):
    folder = Path(shutil.copytree(tiny_model, tmp_path / "model"))
    (folder / "synthset_defaults.json").write_text(
        json.dumps({"steps": 7, "guidance_scale": 1.5, "scheduler": "euler"})
    )

    recommended = GeneratorConfig(model=str(folder))
    plain = GeneratorConfig(model=tiny_model)

    assert (recommended.steps, recommended.guidance_scale, recommended.scheduler) == (
        7,
        1.5,
        "euler",
    )
    assert (plain.steps, plain.guidance_scale, plain.scheduler) == (20, 7.5, None)
    assert recommended.identity()["steps"] == 7
    assert (PACKAGED_MODELS["synthset/tiny-digits"] / "synthset_defaults.json").is_file()


@pytest.mark.parametrize(
    ("generator", "message"),
    [
        ("{model: someorg/not-cached}", "is not in the Hugging Face cache and HF_HUB_OFFLINE"),
        ("{scheduler: ddim, scheduler_options: {karras: 1}}", "'karras' is not an option of DDIM"),
    ],
)
def test_validate_names_a_model_or_option_that_cannot_work(generator, message, capsys):
    text = f"dataset: v\ngenerator: {generator}\nitems: [{{prompt: a}}]\n"
    path = write_manifest(Path.cwd(), text)

    assert main(["validate", str(path)]) == 2

    (line,) = capsys.readouterr().err.strip().splitlines()
    assert message in line
