"""Generator kinds: a newcomer's generator is one class named in the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from synthset.cli import main
from synthset.generators.base import Generator
from synthset.generators.pipeline import GenerationResult
from synthset.pipeline import run_dataset
from synthset.runners.local import LocalRunner
from tests.conftest import write_manifest

COLOURS = {"red": (220, 20, 20), "blue": (20, 20, 220)}


class Swatch(Generator):
    """Swatches of the colour named in the prompt beside a white band, shaded by the seed."""

    kind = "swatch"

    def generate(self, requests):
        results = []
        for r in requests:
            colour = next((c for name, c in COLOURS.items() if name in r.prompt), None)
            if colour is None:
                results.append(GenerationResult(r, error=f"ValueError: no colour in {r.prompt!r}"))
                continue
            shade = np.array(colour) * (0.5 + 0.5 * (r.seed % 7) / 6)
            pixels = np.full((16, 16, 3), 255, np.uint8)
            pixels[:, :10] = shade.astype(np.uint8)
            results.append(GenerationResult(r, image=Image.fromarray(pixels)))
        return results

    def settings(self):
        return {**super().settings(), "width": 16, "height": 16}


def test_a_generator_kind_named_in_the_manifest_makes_the_dataset(tracking_uri, tmp_path):
    path = write_manifest(
        tmp_path,
        """
dataset: swatches
generator: {kind: "tests.generators.test_kinds:Swatch"}
curation: {attempt_budget: 1, dedup: {perceptual: false}}
items:
  - {prompt: a red swatch, count: 3, seed: 1}
  - {prompt: a blue swatch, count: 2, seed: 1}
  - {prompt: a green swatch, count: 1, seed: 1}
""",
    )

    result = run_dataset(path, LocalRunner(), tracking_uri=tracking_uri)

    meta = pd.read_parquet(result.published.path / "metadata.parquet")
    assert sorted(meta["prompt"].value_counts().items()) == [
        ("a blue swatch", 2),
        ("a red swatch", 3),
    ]
    assert set(meta["generator"]) == {"swatch"} and set(meta["width"]) == {16}
    rejected = pd.read_parquet(result.published.path / "rejected.parquet")
    assert set(rejected["reject_reason"]) == {"generation_failed"}
    assert "no colour" in rejected["detail"].iloc[0]


def test_an_unknown_generator_kind_is_one_line(capsys):
    path = write_manifest(
        Path.cwd(), "dataset: x\ngenerator: {kind: dall-e}\nitems: [{prompt: a}]\n"
    )

    assert main(["validate", str(path)]) == 2

    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "generator.kind 'dall-e' is unknown; known: diffusers, unet2d, or module:Class" in line
