"""Built-in models: names a manifest can use that resolve to a local folder, built on first use.

`synthset/tiny-random` is a randomly initialised tiny Stable Diffusion pipeline: it exercises
every code path of a real model on a CPU in seconds. It is built once per machine into the
cache folder and then loaded with `from_pretrained(folder)` like any downloaded model.
`synthset/tiny-digits` is the trained default model whose weights ship inside the package
(`synthset models build-default` retrains it); its name resolves to that folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from synthset.generators.tiny import save_tiny_sd_pipeline

BUILTIN_MODELS: dict[str, Callable[[Path], Path]] = {
    "synthset/tiny-random": save_tiny_sd_pipeline,
}
PACKAGED_MODELS: dict[str, Path] = {
    "synthset/tiny-digits": Path(__file__).parents[1] / "models" / "weights" / "tiny-digits",
}


def cache_dir() -> Path:
    """Where built-in models are kept: `$SYNTHSET_CACHE`, else `~/.cache/synthset`."""
    return Path(os.environ.get("SYNTHSET_CACHE", Path.home() / ".cache" / "synthset"))


def resolve_model(name: str) -> str:
    """A built-in name becomes its folder (built atomically if missing); others pass through."""
    if name in PACKAGED_MODELS:
        return str(PACKAGED_MODELS[name])
    build = BUILTIN_MODELS.get(name)
    if build is None:
        return name
    folder = cache_dir() / "models" / name.replace("/", "--")
    if not (folder / "model_index.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
        try:
            build(tmp)
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "model_index.json").is_file():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(folder)
