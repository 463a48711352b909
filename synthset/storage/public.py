"""What a published version says about where things came from, without machine paths.

A manifest holds absolute paths once loaded (model folders, LoRAs, condition images, items
files). They name a user's machine (`/home/alice/...`) and mean nothing elsewhere, so the
version's `manifest.yaml`, its card and its MLflow record name condition images by where the
version stores them (`conditions/<sha256>.png`) and any other local path by its last part.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def public(value: Any, renamed: Mapping[str, str] | None = None) -> Any:
    """`value` (nested dicts, lists, strings) with every absolute path replaced by what
    `renamed` maps it to, else by its last part."""
    if isinstance(value, dict):
        return {k: public(v, renamed) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [public(v, renamed) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return (renamed or {}).get(value) or os.path.basename(value.rstrip("/")) or value
    return value
