"""Shards built from chosen images (no diffusion), scored by the real embedded CLIP."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthset.curation.clip import ClipScorer, scorer_for
from synthset.curation.config import ClipConfig, CurationConfig
from synthset.curation.curate import Curation, curate, load_pool
from synthset.curation.prior import PriorVersions
from synthset.curation.score import score_shard
from synthset.generators.pipeline import GenerationResult
from synthset.manifest import GenerationRequest
from synthset.shards import write_shard


@pytest.fixture(scope="session")
def scorer() -> ClipScorer:
    return scorer_for(ClipConfig())


@pytest.fixture(scope="session")
def digit_images() -> tuple[list[Image.Image], np.ndarray]:
    """Held-out real digits, randomly coloured, 32×32 RGB, and their labels."""
    from synthset.models.clip import held_out_digits

    images, labels, _, _ = held_out_digits(copies=1)
    return [Image.fromarray(a) for a in images], labels


def prompt_of(label: int) -> str:
    from synthset.models.digits import DIGIT_WORDS

    return f"a handwritten {DIGIT_WORDS[label]}"


def write_image_shard(
    folder: Path,
    images: Sequence[Image.Image | None],
    prompts: Sequence[str],
    items: Sequence[int] | None = None,
    ids: Sequence[str] | None = None,
) -> Path:
    """A real shard (rows.parquet, PNGs, marker) of the given images; None is a failed row."""
    items = list(items) if items is not None else [0] * len(images)
    ids = list(ids) if ids is not None else [f"s{n:03d}" for n in range(len(images))]
    seen: dict[int, int] = {}
    results = []
    for sample_id, image, prompt, item in zip(ids, images, prompts, items, strict=True):
        index = seen[item] = seen.get(item, -1) + 1
        request = GenerationRequest(
            sample_id=sample_id, item_index=item, index=index, seed=index, prompt=prompt
        )
        error = None if image is not None else "RuntimeError: the generator failed"
        results.append(GenerationResult(request, image=image, error=error))
    write_shard(folder, results, {"model": "hand-made", "width": 32, "height": 32})
    return folder


def curate_images(
    folder: Path,
    scorer: ClipScorer,
    config: CurationConfig,
    images: Sequence[Image.Image | None],
    prompts: Sequence[str],
    items: Sequence[int] | None = None,
    counts: dict[int, int] | None = None,
    prior: PriorVersions | None = None,
) -> Curation:
    """Write, score and curate one shard of `images`; counts default to everything wanted."""
    write_image_shard(folder, images, prompts, items)
    score_shard(folder, scorer, config)
    items = list(items) if items is not None else [0] * len(images)
    counts = counts or {i: items.count(i) for i in set(items)}
    prompts_of = {i: prompts[items.index(i)] for i in set(items)}
    return curate(load_pool([folder]), config, counts, prompts_of, prior)


def reasons(curation: Curation) -> dict[str, str | None]:
    """sample id → reject reason (None when kept)."""
    rows = curation.rows
    return {
        s: (None if r is None or r != r else r)
        for s, r in zip(rows["sample_id"], rows["reject_reason"], strict=True)
    }
