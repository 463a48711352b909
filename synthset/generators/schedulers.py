"""Scheduler names a manifest may use, mapped to diffusers scheduler classes, and the swap of a
pipeline's scheduler with the manifest's `scheduler_options`.

A latent pipeline must not clip its samples to [-1, 1]: DDPM and DDIM default to
`clip_sample=True`, so a swap from a config that does not say (DPM-Solver's, for instance)
gets `clip_sample=False` unless the options set it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from synthset.errors import SynthsetError
from synthset.manifest import SCHEDULERS


def _accepted(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}


def check_options(cls: type, options: Mapping[str, Any]) -> None:
    """Refuse options the scheduler class does not take, naming the ones it does."""
    unknown = sorted(set(options) - _accepted(cls))
    if unknown:
        raise SynthsetError(
            f"generator.scheduler_options: {unknown[0]!r} is not an option of {cls.__name__}; "
            f"it takes: {', '.join(sorted(_accepted(cls)))}"
        )


def configure(cls: type, config: Any, options: Mapping[str, Any] | None = None) -> Any:
    """`cls.from_config(config, **options)`, with `clip_sample` off unless said otherwise."""
    options = dict(options or {})
    check_options(cls, options)
    if "clip_sample" in _accepted(cls) and "clip_sample" not in config:
        options.setdefault("clip_sample", False)
    return cls.from_config(config, **options)


def scheduler_class(name: str, names: Mapping[str, str] = SCHEDULERS) -> type:
    import diffusers

    try:
        return getattr(diffusers, names[name])
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; allowed: {', '.join(names)}") from None


def make_scheduler(
    name: str,
    config: Any,
    names: Mapping[str, str] = SCHEDULERS,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Build scheduler `name` (a key of `names`) from another scheduler's config (diffusers'
    `from_config` swap)."""
    return configure(scheduler_class(name, names), config, options)


def swap_scheduler(current: Any, name: str | None, options: Mapping[str, Any]) -> Any:
    """The pipeline's scheduler as the manifest asks: another class by name, or its own class
    with `options`."""
    if name is None:
        return configure(type(current), current.config, options)
    return make_scheduler(name, current.config, options=options)
