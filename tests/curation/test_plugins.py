"""Scorers and filters as one class each: registered kinds, and a newcomer's own `module:Class`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from synthset.cli import main
from synthset.curation.config import CurationConfig
from synthset.curation.plugins.base import Filter, ImageBatch, Scorer
from synthset.curation.plugins.colourfulness import colourfulness
from synthset.curation.score import read_scores
from tests.conftest import write_manifest
from tests.curation.conftest import curate_images, reasons

SETUPS: list[int] = []


class RedShare(Scorer):
    """A newcomer's scorer: the share of the image's intensity in the red channel."""

    kind = "red-share"
    columns = ("red_share", "saw_embedding")

    def setup(self) -> None:
        SETUPS.append(1)

    def score(self, batch: ImageBatch) -> dict[str, Sequence[Any]]:
        rgb = [np.asarray(image, dtype=float) for image in batch.images]
        share = [a[..., 0].sum() / max(a.sum(), 1.0) for a in rgb]
        norms = np.linalg.norm(batch.embeddings, axis=1)
        return {"red_share": share, "saw_embedding": list(np.isclose(norms, 1.0, atol=1e-2))}


class PromptMentionsRed(Filter):
    """A newcomer's filter: images of prompts saying "red" must be mostly red."""

    kind = "red-prompts-are-red"
    reason = "not_red_enough"

    def needs(self) -> tuple[str, ...]:
        return ("red_share",)

    def reject(self, rows):
        says_red = rows["prompt"].str.contains("red").to_numpy()
        bad = says_red & (rows["red_share"].to_numpy(dtype=float) < 0.4)
        return bad, [f"red share {v:.2f} < 0.4" for v in rows["red_share"][bad]]


def _solid(rgb: tuple[int, int, int]) -> Image.Image:
    image = np.zeros((32, 32, 3), np.uint8)
    image[8:24, 8:24] = rgb
    image[:8] = 255
    return Image.fromarray(image)


def test_colourfulness_follows_hasler_and_suesstrunk():
    grey = Image.new("RGB", (8, 8), (90, 90, 90))
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    half = np.zeros((8, 8, 3), np.uint8)
    half[:, :4] = (255, 0, 0)
    half[:, 4:] = (0, 255, 0)

    assert colourfulness(grey) == 0.0
    assert colourfulness(red) == pytest.approx(0.3 * np.hypot(255, 127.5))
    rg_sd, yb_mean = 255.0, 127.5
    assert colourfulness(Image.fromarray(half)) == pytest.approx(rg_sd + 0.3 * yb_mean)


def test_built_in_and_newcomer_plugins_score_and_reject_with_reasons(scorer, tmp_path):
    module = "tests.curation.test_plugins"
    config = CurationConfig(
        scorers=[{"kind": "colourfulness"}, {"kind": f"{module}:RedShare"}],
        filters=[
            {"kind": "range", "column": "colourfulness", "min": 20},
            {"kind": f"{module}:PromptMentionsRed"},
        ],
    )
    images = [_solid((250, 10, 10)), _solid((128, 128, 128)), _solid((10, 10, 250))]
    prompts = ["a red square", "a grey square", "a red square"]

    curation = curate_images(tmp_path / "s", scorer, config, images, prompts, items=[0, 1, 2])

    assert reasons(curation) == {"s000": None, "s001": "out_of_range", "s002": "not_red_enough"}
    rows = curation.rows.set_index("sample_id")
    assert rows.loc["s001", "detail"].startswith("colourfulness 0 < 20")
    assert rows.loc["s002", "detail"].startswith("red share 0.")
    scores, _ = read_scores(tmp_path / "s")
    assert scores["saw_embedding"].tolist() == [True, True, True]
    assert scores["colourfulness"].iloc[0] > 20 > scores["colourfulness"].iloc[1]
    assert len(SETUPS) == 1


@pytest.mark.parametrize(
    ("curation", "message"),
    [
        ("filters: [{kind: range, column: colourfulness, min: 3}]", "which no scorer makes"),
        ("scorers: [{kind: nope}]", "entry 0: unknown kind 'nope'; known: colourfulness"),
        ("filters: [{kind: range, column: contrast}]", "give min, max or both"),
        ("scorers: [{kind: 'os:path'}]", "'os:path' is not a Scorer subclass"),
        ("scorers: [{kind: colourfulness, weights: x}]", "colourfulness: weights: unknown field"),
    ],
)
def test_a_bad_plugin_entry_is_one_line_naming_it(curation, message, capsys):
    text = f"dataset: p\ncuration:\n  {curation}\nitems: [{{prompt: a}}]\n"
    path = write_manifest(Path.cwd(), text)

    assert main(["validate", str(path)]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "curation" in err[0]
