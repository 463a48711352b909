"""Built-in models: names a manifest can use that resolve to a local folder, built on first use.

`synthset/tiny-random` is a randomly initialised tiny Stable Diffusion pipeline: it exercises
every code path of a real model on a CPU in seconds. It is built once per machine into the
cache folder and then loaded with `from_pretrained(folder)` like any downloaded model.
`synthset/tiny-digits` is the trained default model whose weights ship inside the package
(`synthset models build-default` retrains it); its name resolves to that folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from synthset.atomic import atomic_path
from synthset.errors import SynthsetError
from synthset.generators.tiny import save_tiny_sd_pipeline
from synthset.layout import PACKAGED_MODELS, cache_dir
from synthset.manifest import folder_identity

BUILTIN_MODELS: dict[str, Callable[[Path], Path]] = {
    "synthset/tiny-random": save_tiny_sd_pipeline,
}


def _looks_like_a_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists()


def require_model(name: str, revision: str | None = None) -> Path | None:
    """The model's local folder (None for a Hub id that will be downloaded), or a
    `SynthsetError` saying why it cannot be found; nothing is downloaded or retried."""
    if name in PACKAGED_MODELS or name in BUILTIN_MODELS:
        return Path(resolve_model(name))
    if _looks_like_a_path(name):
        folder = Path(name).expanduser()
        if not (folder / "model_index.json").is_file():
            raise SynthsetError(
                f"generator.model {name!r}: no diffusers model there (no model_index.json)"
            )
        return folder
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "model_index.json", revision=revision)
    if isinstance(cached, str):
        return Path(cached).parent
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise SynthsetError(
            f"generator.model {name!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is "
            "set; download it first (huggingface-cli download) or give a local folder"
        )
    return None


def model_fingerprint(name: str, revision: str | None = None) -> str:
    """What exactly a version was made with: a local folder by its configs and weight sizes,
    a Hub model by the commit its cached snapshot resolved to."""
    try:
        folder = require_model(name, revision)
    except SynthsetError:
        folder = None
    if folder is None:
        return f"hub:{name}@{revision or 'unresolved'}"
    if "snapshots" in folder.parts:
        return f"hub:{name}@{folder.name}"
    return folder_identity(folder)


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
