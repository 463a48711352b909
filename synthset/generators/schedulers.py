"""Scheduler names a manifest may use, mapped to diffusers scheduler classes."""

from __future__ import annotations

from typing import Any

from synthset.manifest import SCHEDULERS


def make_scheduler(name: str, config: Any, names: dict[str, str] = SCHEDULERS) -> Any:
    """Build scheduler `name` (a key of `names`) from another scheduler's config (diffusers'
    `from_config` swap)."""
    import diffusers

    try:
        cls = getattr(diffusers, names[name])
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; allowed: {', '.join(names)}") from None
    return cls.from_config(config)
