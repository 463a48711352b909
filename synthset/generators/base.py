"""Generator kinds: how a shard's requests become images. One class per kind, named by the
manifest's `generator.kind` (a registered name, or any importable `module:Class`); `diffusers`
(any diffusers pipeline, `synthset.generators.pipeline.ImageGenerator`) is the default;
`unet2d` (`synthset.generators.unet`) samples a pixel-space `UNet2DModel`, plain or
class-conditional.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from synthset.errors import SynthsetError
from synthset.manifest import GenerationRequest, GeneratorConfig, model_label
from synthset.registry import import_class

if TYPE_CHECKING:
    from synthset.generators.pipeline import GenerationResult


class Generator:
    """Makes the images of a list of requests with one configuration; loads what it needs in
    `__init__` (cache models per process: a worker runs many shards)."""

    kind: ClassVar[str]

    def __init__(self, config: GeneratorConfig):
        self.config = config

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """One result per request, in order: an image, or the error that prevented it."""
        raise NotImplementedError

    @classmethod
    def check(cls, config: GeneratorConfig) -> None:
        """Refuse, before any work, settings this kind can never run (a `SynthsetError`)."""

    def settings(self) -> dict[str, Any]:
        """Columns recorded with every image of a shard (model, steps, size, ...)."""
        return {"generator": self.kind, "model": model_label(self.config.model)}


GENERATORS: dict[str, type[Generator]] = {}


def register(cls: type[Generator]) -> type[Generator]:
    """Class decorator: make a generator available as `generator.kind: <kind>`."""
    GENERATORS[cls.kind] = cls
    return cls


def generator_class(kind: str) -> type[Generator]:
    """The class of a registered kind or of a `module:Class` name."""
    if ":" not in kind:
        import synthset.generators.pipeline  # noqa: F401  (registers `diffusers`)
        import synthset.generators.unet  # noqa: F401  (registers `unet2d`)

        if kind not in GENERATORS:
            known = ", ".join(sorted(GENERATORS))
            raise SynthsetError(
                f"generator.kind {kind!r} is unknown; known: {known}, or module:Class"
            )
        return GENERATORS[kind]
    try:
        return import_class(kind, Generator)
    except ValueError as exc:
        raise SynthsetError(f"generator.kind: {exc}") from None


def generator_for(config: GeneratorConfig) -> Generator:
    """The generator of a manifest's `generator` section."""
    return generator_class(config.kind)(config)
