"""Extension points of curation: a `Scorer` adds columns to every image's scores, a `Filter`
rejects rows with a reason. Each is one small class registered under a `kind`; the manifest
names it (`curation.scorers`, `curation.filters`) with its options, or names any importable
class as `module:Class`, so a new scorer or filter touches no synthset file.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from synthset.errors import describe_validation, format_loc
from synthset.registry import import_class


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ImageBatch:
    """What a scorer sees: decoded RGB images, their prompts and unit CLIP embeddings."""

    images: Sequence[Any]
    prompts: Sequence[str]
    embeddings: np.ndarray


class Scorer:
    """Adds `columns` to `scores.parquet`. `setup` loads models; it runs once per worker
    process (instances are cached per process), never per shard."""

    kind: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: BaseModel):
        self.options = options

    def identity(self) -> dict[str, Any]:
        """What changes the scores: shards scored under another identity are scored again."""
        return {"kind": self.kind, **self.options.model_dump(mode="json")}

    def setup(self) -> None:
        """Load weights or models (once per process)."""

    def score(self, batch: ImageBatch) -> dict[str, Sequence[Any]]:
        """One value per image for every name in `columns`."""
        raise NotImplementedError


class Filter:
    """Rejects rows with `reason`; runs after the built-in thresholds, before dedup, on the
    rows still kept."""

    kind: ClassVar[str]
    reason: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: BaseModel):
        self.options = options

    def needs(self) -> tuple[str, ...]:
        """Score columns this filter reads (checked against what the scorers make)."""
        return ()

    def reject(self, rows: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        """A boolean mask over `rows` and one detail line per rejected row."""
        raise NotImplementedError


SCORERS: dict[str, type[Scorer]] = {}
FILTERS: dict[str, type[Filter]] = {}
C = TypeVar("C", bound=type)


def register(cls: C) -> C:
    """Class decorator: make a `Scorer` or `Filter` available by its `kind`."""
    registry: dict[str, Any] = SCORERS if issubclass(cls, Scorer) else FILTERS
    registry[cls.kind] = cls
    return cls


def _resolve(kind: str, registry: dict[str, Any], base: type) -> Any:
    if ":" not in kind:
        import synthset.curation.plugins  # noqa: F401  (registers the built-in kinds)

        if kind not in registry:
            known = ", ".join(sorted(registry)) or "none"
            raise ValueError(f"unknown kind {kind!r}; known: {known}, or module:Class")
        return registry[kind]
    return import_class(kind, base)


def parse(spec: Any, base: type[Scorer] | type[Filter]) -> dict[str, Any]:
    """A manifest entry `{kind: ..., option: ...}` checked against its class's options."""
    if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
        raise ValueError("each entry is a mapping with a 'kind'")
    registry = SCORERS if base is Scorer else FILTERS
    cls = _resolve(spec["kind"], registry, base)
    options = {k: v for k, v in spec.items() if k != "kind"}
    try:
        parsed = cls.Options.model_validate(options)
    except ValidationError as exc:
        loc, message = describe_validation(exc, lambda _: list(cls.Options.model_fields))
        raise ValueError(f"{spec['kind']}: {format_loc(loc) or 'options'}: {message}") from None
    return {"kind": spec["kind"], **parsed.model_dump(mode="json")}


def scorer_class(spec: dict[str, Any]) -> type[Scorer]:
    """The class of a parsed scorer spec (its `columns`, without setting it up)."""
    return _resolve(spec["kind"], SCORERS, Scorer)


def _build(spec: dict[str, Any], base: type) -> Any:
    cls = _resolve(spec["kind"], SCORERS if base is Scorer else FILTERS, base)
    return cls(cls.Options.model_validate({k: v for k, v in spec.items() if k != "kind"}))


@functools.lru_cache(maxsize=16)
def _scorer(spec_json: str) -> Scorer:
    scorer = _build(json.loads(spec_json), Scorer)
    scorer.setup()
    return scorer


def scorer(spec: dict[str, Any]) -> Scorer:
    """The process's scorer for a parsed spec, set up once."""
    return _scorer(json.dumps(spec, sort_keys=True))


def build_filter(spec: dict[str, Any]) -> Filter:
    """A filter from a parsed spec."""
    return _build(spec, Filter)
