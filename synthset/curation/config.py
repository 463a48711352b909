"""The `curation` section of a manifest: which scores are computed and what they reject.

Scoring (CLIP embedding and score, pixel hash, pHash, image statistics, zero-shot tags) always
runs when curation is enabled; the filters and dedup tiers below decide what is kept. Defaults
reject only what is certainly unwanted: unreadable and near-blank images, exact pixel copies
and pHash near-copies. Semantic dedup is opt-in because a useful cosine threshold depends on
the CLIP model (see docs/manifest.md).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synthset.curation.plugins import base as plugins

TINY_CLIP = "synthset-tiny-clip"
SCORE_COLUMNS = (
    "clip_score",
    "pixel_hash",
    "phash",
    "width",
    "height",
    "brightness",
    "contrast",
    "sharpness",
    "entropy",
    "blank",
    "clip_tags",
    "clip_tag_scores",
)
"""The columns scoring always adds; scorers named in the manifest add theirs."""
_SCHEMAS = ("hf-hub:", "local-dir:")


def _parsed(specs: Any, base: type) -> list[dict[str, Any]]:
    if not isinstance(specs, list):
        raise ValueError("expected a list of {kind: ..., option: value} entries")
    parsed = []
    for i, spec in enumerate(specs):
        try:
            parsed.append(plugins.parse(spec, base))
        except ValueError as exc:
            raise ValueError(f"entry {i}: {exc}") from None
    return parsed


def open_clip_architectures() -> list[str]:
    """Model names open_clip knows from its bundled configs, read without importing it."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return [TINY_CLIP]
    folder = Path(next(iter(spec.submodule_search_locations))) / "model_configs"
    return sorted([TINY_CLIP, *(p.stem for p in folder.glob("*.json"))])


def is_path_like(value: str) -> bool:
    """A `pretrained` value that names a file rather than an open_clip tag."""
    return value.startswith((".", "/", "~")) or value.endswith(
        (".pt", ".pth", ".bin", ".safetensors")
    )


class ClipConfig(BaseModel):
    """The open_clip model that embeds and scores images."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(TINY_CLIP, min_length=1)
    pretrained: str | None = None
    batch_size: int = Field(64, ge=1, le=4096)
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        if name.startswith(_SCHEMAS) or name in open_clip_architectures():
            return name
        raise ValueError(
            f"{name!r} is not an open_clip model; give an architecture name (ViT-B-32, "
            f"{TINY_CLIP}, ...: open_clip.list_models()), hf-hub:ORG/NAME or local-dir:PATH"
        )

    @model_validator(mode="after")
    def _weights_are_named(self) -> ClipConfig:
        if self.pretrained is None and not (
            self.model == TINY_CLIP or self.model.startswith(_SCHEMAS)
        ):
            raise ValueError(
                f"model {self.model!r} needs weights: set pretrained to an open_clip tag "
                "(open_clip.list_pretrained()) or a checkpoint file"
            )
        return self

    def identity(self) -> dict[str, Any]:
        """What determines the embeddings: model and weights (a file by its name and size)."""
        weights: Any = self.pretrained
        if weights is not None and Path(weights).is_file():
            weights = f"{Path(weights).name}:{Path(weights).stat().st_size}"
        return {"model": self.model, "pretrained": weights}


class DedupConfig(BaseModel):
    """The three dedup tiers, each switchable, and whether they reach into prior versions."""

    model_config = ConfigDict(extra="forbid")

    exact: bool = True
    perceptual: bool = True
    perceptual_distance: int = Field(4, ge=0, le=16)
    semantic: bool = False
    semantic_threshold: float = Field(0.95, gt=0.0, le=1.0)
    semantic_index: Literal["auto", "flat", "ivf"] = "auto"
    prior_versions: Literal["all", "latest", "none"] = "all"


class TaggingConfig(BaseModel):
    """Zero-shot CLIP tags: the `top_k` best words of `vocabulary`, each put in `template`."""

    model_config = ConfigDict(extra="forbid")

    vocabulary: list[str] = Field(default_factory=list)
    top_k: int = Field(3, ge=1, le=100)
    template: str = "{}"

    @field_validator("vocabulary")
    @classmethod
    def _distinct_words(cls, words: list[str]) -> list[str]:
        words = [w.strip() for w in words]
        if any(not w for w in words):
            raise ValueError("vocabulary words must not be empty")
        repeated = sorted({w for w in words if words.count(w) > 1})
        if repeated:
            raise ValueError(f"vocabulary repeats {repeated[0]!r}; list each word once")
        return words

    @field_validator("template")
    @classmethod
    def _one_slot(cls, template: str) -> str:
        if template.count("{}") != 1:
            raise ValueError("template must contain '{}' once, where the word goes")
        return template


class CurationConfig(BaseModel):
    """Scoring, filters, dedup, tagging and the top-up budget of a run."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    clip: ClipConfig = Field(default_factory=ClipConfig)
    min_clip_score: float | None = Field(None, ge=0.0, le=100.0)
    keep_top_fraction: float | None = Field(None, gt=0.0, le=1.0)
    top_fraction_by: Literal["prompt", "global"] = "prompt"
    drop_blank: bool = True
    blank_contrast: float = Field(0.01, ge=0.0, le=0.5)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    tags: TaggingConfig = Field(default_factory=TaggingConfig)
    attempt_budget: float = Field(3.0, ge=1.0, le=100.0)
    scorers: list[dict[str, Any]] = Field(default_factory=list)
    filters: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("scorers", mode="before")
    @classmethod
    def _scorers(cls, specs: Any) -> list[dict[str, Any]]:
        return _parsed(specs, plugins.Scorer)

    @field_validator("filters", mode="before")
    @classmethod
    def _filters(cls, specs: Any) -> list[dict[str, Any]]:
        return _parsed(specs, plugins.Filter)

    def score_columns(self) -> list[str]:
        """The columns scoring adds: the built-in ones and those of the manifest's scorers."""
        made = list(SCORE_COLUMNS)
        for spec in self.scorers:
            made += [c for c in plugins.scorer_class(spec).columns if c not in made]
        return made

    @model_validator(mode="after")
    def _filters_read_what_is_scored(self) -> CurationConfig:
        made = set(self.score_columns())
        for spec in self.filters:
            missing = [c for c in plugins.build_filter(spec).needs() if c not in made]
            if missing:
                raise ValueError(
                    f"filter {spec['kind']!r} reads {missing[0]!r}, which no scorer makes; "
                    f"scored columns: {', '.join(sorted(made))}"
                )
        return self

    def max_attempts(self, count: int) -> int:
        """How many images of an item with this `count` may be generated, top-ups included."""
        if not self.enabled:
            return count
        return max(count, math.floor(self.attempt_budget * count + 1e-9))
