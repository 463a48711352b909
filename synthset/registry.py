"""Classes named in a manifest as `module:Class`: imported, and checked to be the kind of
class the extension point takes. Shared by every registry (scorers, filters, generators)."""

from __future__ import annotations

import importlib
from typing import Any


def import_class(name: str, base: type) -> Any:
    """The class `module:Class` names, or a `ValueError` saying why it cannot be used."""
    module, _, attribute = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {name!r}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{name!r} is not a {base.__name__} subclass")
    return cls
