"""Built-in models: names a manifest can use that resolve to a local folder, built on first use.

`synthset/tiny-random` is a randomly initialised tiny Stable Diffusion pipeline: it exercises
every code path of a real model on a CPU in seconds. It is built once per machine into the
cache folder and then loaded with `from_pretrained(folder)` like any downloaded model.
`synthset/tiny-digits` is the trained default model whose weights ship inside the package
(`synthset models build-default` retrains it); its name resolves to that folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from synthset.atomic import atomic_path
from synthset.generators.tiny import save_tiny_sd_pipeline
from synthset.layout import cache_dir

BUILTIN_MODELS: dict[str, Callable[[Path], Path]] = {
    "synthset/tiny-random": save_tiny_sd_pipeline,
}
PACKAGED_MODELS: dict[str, Path] = {
    "synthset/tiny-digits": Path(__file__).parents[1] / "models" / "weights" / "tiny-digits",
}


def resolve_model(name: str) -> str:
    """A built-in name becomes its folder (built atomically if missing); others pass through."""
    if name in PACKAGED_MODELS:
        return str(PACKAGED_MODELS[name])
    build = BUILTIN_MODELS.get(name)
    if build is None:
        return name
    folder = cache_dir() / "models" / name.replace("/", "--")
    if not (folder / "model_index.json").is_file():
        with atomic_path(folder, folder=True, keep_existing=True) as tmp:
            build(tmp)
    return str(folder)
