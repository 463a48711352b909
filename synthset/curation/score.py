"""Score a generated shard: decode every image once and add the columns curation decides on.

Next to a shard's `rows.parquet` this writes `embeddings.npy` (float16, one row per scored
image, zeros where an image could not be decoded) and then `scores.parquet` (one row per
generated image): `decode_error` (None when the image decoded), `clip_score`, `pixel_hash`,
`phash`, the statistics of `synthset.curation.stats` and the zero-shot `clip_tags` with
`clip_tag_scores`. Each file is written under a temporary name and renamed, `scores.parquet`
last, so it marks a complete scoring; its schema metadata records the scorer, and a shard
scored by the same scorer is skipped on a resumed run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from synthset.atomic import atomic_path
from synthset.curation.clip import ClipScorer
from synthset.curation.config import CurationConfig
from synthset.curation.plugins import base as plugins
from synthset.curation.plugins.base import ImageBatch
from synthset.curation.stats import STAT_COLUMNS, image_stats, phash, pixel_hash
from synthset.curation.tagging import ZeroShotTagger
from synthset.shards import read_shard_rows

SCORES = "scores.parquet"
EMBEDDINGS = "embeddings.npy"
_SCORER_KEY = b"synthset.scorer"


@dataclass(frozen=True)
class ScoreReport:
    """What scoring a shard did; `skipped` when it was already scored by this scorer."""

    scored: int
    unreadable: int
    seconds: float
    skipped: bool = False


def scorer_identity(scorer: ClipScorer, config: CurationConfig) -> dict[str, Any]:
    """Everything that changes the score columns: the CLIP weights, the tag settings and the
    manifest's scorers."""
    identity = {"clip": scorer.identity, "tags": config.tags.model_dump()}
    if config.scorers:
        identity["scorers"] = [plugins.scorer(spec).identity() for spec in config.scorers]
    return identity


def _plugin_scores(
    config: CurationConfig, images: list[Image.Image], prompts: list[str], embeddings: np.ndarray
) -> dict[str, list[Any]]:
    """The manifest's scorers over the decoded images, in batches of the CLIP batch size."""
    out: dict[str, list[Any]] = {}
    size = config.clip.batch_size
    for spec in config.scorers:
        scorer = plugins.scorer(spec)
        for start in range(0, len(images), size):
            batch = ImageBatch(
                images[start : start + size],
                prompts[start : start + size],
                embeddings[start : start + size],
            )
            got = scorer.score(batch)
            for column in scorer.columns:
                values = list(got[column])
                if len(values) != len(batch.images):
                    raise ValueError(
                        f"scorer {spec['kind']!r} gave {len(values)} values of {column!r} "
                        f"for {len(batch.images)} images"
                    )
                out.setdefault(column, []).extend(values)
    return out


def scored_by(folder: Path) -> dict[str, Any] | None:
    """The scorer identity a shard was scored with, or None if it is not scored."""
    import pyarrow.parquet as pq

    path = folder / SCORES
    if not path.is_file() or not (folder / EMBEDDINGS).is_file():
        return None
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[_SCORER_KEY]) if _SCORER_KEY in meta else None


def _decode(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


class _Batch:
    """Decoded images waiting for one `encode` call; images the model's preprocessing
    rejects are set aside with their error."""

    def __init__(self, scorer: ClipScorer, size: int):
        self.scorer, self.size = scorer, size
        self.images: list[Image.Image] = []
        self.positions: list[int] = []
        self.embeddings: dict[int, np.ndarray] = {}
        self.errors: dict[int, str] = {}

    def add(self, position: int, image: Image.Image) -> None:
        self.images.append(image)
        self.positions.append(position)
        if len(self.images) >= self.size:
            self.flush()

    def flush(self) -> None:
        import torch

        if not self.images:
            return
        try:
            batch = self.scorer.preprocess_batch(self.images)
            positions = self.positions
        except Exception:  # find the images at fault, keep the others
            tensors, positions = [], []
            for position, image in zip(self.positions, self.images, strict=True):
                try:
                    tensors.append(self.scorer.preprocess(image))
                    positions.append(position)
                except Exception as exc:
                    self.errors[position] = f"{type(exc).__name__}: {exc}"
            batch = torch.stack(tensors) if tensors else None
        if batch is not None:
            self.embeddings.update(zip(positions, self.scorer.encode(batch), strict=True))
        self.images, self.positions = [], []


def _score_rows(
    folder: Path, rows: pd.DataFrame, scorer: ClipScorer, config: CurationConfig
) -> tuple[pd.DataFrame, np.ndarray]:
    batch = _Batch(scorer, config.clip.batch_size)
    records: list[dict[str, Any]] = []
    decoded: dict[int, Image.Image] = {}
    for position, (sample_id, file_name) in enumerate(
        zip(rows["sample_id"], rows["file_name"], strict=True)
    ):
        record: dict[str, Any] = {"sample_id": sample_id, "decode_error": None}
        try:
            image = _decode(folder / file_name)
        except Exception as exc:  # any decoder failure is this sample's, not the run's
            record["decode_error"] = f"{type(exc).__name__}: {exc}"
        else:
            record |= {"pixel_hash": pixel_hash(image), "phash": phash(image)}
            record |= image_stats(image, config.blank_contrast)
            batch.add(position, image)
            if config.scorers:
                decoded[position] = image
        records.append(record)
    batch.flush()
    for position, error in batch.errors.items():
        records[position] = {"sample_id": records[position]["sample_id"], "decode_error": error}
    dim = scorer.dim
    embeddings = np.zeros((len(records), dim), dtype=np.float32)
    readable = sorted(batch.embeddings)
    for position in readable:
        embeddings[position] = batch.embeddings[position]
    frame = pd.DataFrame.from_records(
        records, columns=["sample_id", "decode_error", "pixel_hash", "phash", *STAT_COLUMNS]
    )
    clip_score = np.full(len(frame), np.nan, dtype=np.float32)
    tag_words: list[list[str]] = [[] for _ in range(len(frame))]
    tag_scores: list[list[float]] = [[] for _ in range(len(frame))]
    if readable:
        prompts = rows["prompt"].to_numpy()[readable].tolist()
        clip_score[readable] = scorer.clip_scores(embeddings[readable], prompts)
        tags = config.tags
        tagger = ZeroShotTagger(scorer, tags.vocabulary, tags.template, tags.top_k)
        for position, words, scores in zip(
            readable, *tagger.tag(embeddings[readable]), strict=True
        ):
            tag_words[position], tag_scores[position] = words, scores
    frame["clip_score"] = clip_score
    frame["clip_tags"] = tag_words
    frame["clip_tag_scores"] = tag_scores
    if config.scorers:
        prompts = rows["prompt"].to_numpy()[readable].tolist()
        images = [decoded[p] for p in readable]
        for column, values in _plugin_scores(config, images, prompts, embeddings[readable]).items():
            full: list[Any] = [None] * len(frame)
            for position, value in zip(readable, values, strict=True):
                full[position] = value
            frame[column] = full
    return frame, embeddings


def score_shard(folder: Path, scorer: ClipScorer, config: CurationConfig) -> ScoreReport:
    """Score the generated images of a shard in staging (unless this scorer already did).

    An image that cannot be decoded (corrupt, truncated, missing) gets a `decode_error`
    and no scores; it is rejected as `unreadable` later, and the run goes on.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    identity = scorer_identity(scorer, config)
    if scored_by(folder) == identity:
        return ScoreReport(0, 0, 0.0, skipped=True)
    start = time.perf_counter()
    rows = read_shard_rows(folder)
    rows = rows[rows["status"] == "ok"].reset_index(drop=True)
    frame, embeddings = _score_rows(folder, rows, scorer, config)
    with atomic_path(folder / EMBEDDINGS) as tmp, tmp.open("wb") as f:
        np.save(f, embeddings.astype(np.float16))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _SCORER_KEY: json.dumps(identity, sort_keys=True)}
    )
    with atomic_path(folder / SCORES) as tmp:
        pq.write_table(table, tmp)
    unreadable = int(frame["decode_error"].notna().sum())
    return ScoreReport(len(frame) - unreadable, unreadable, time.perf_counter() - start)


def read_scores(folder: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A scored shard's score rows and their float16 embeddings (same order)."""
    return pd.read_parquet(folder / SCORES), np.load(folder / EMBEDDINGS)
