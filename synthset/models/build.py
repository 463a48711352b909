"""`synthset models build-default`: train every embedded default model from scratch, seeded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

WEIGHTS = Path(__file__).parent / "weights"


def build_default(out: Path = WEIGHTS, seed: int = 0, threads: int = 2) -> dict[str, Any]:
    """Train the judge, the tiny CLIP and `synthset/tiny-digits` (whose text encoder is the CLIP's
    text tower) into `out`; return timings and training metrics.

    With the default `out` the packaged weights are replaced, which is how they were made.
    """
    import torch

    from synthset.models import clip, judge, text2img

    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    judge.save_judge(judge.train_judge(seed=seed), out / "judge")
    t_judge = time.perf_counter()
    clip_metrics = clip.build_clip(out / "tiny-clip.safetensors", seed=seed, threads=threads)
    t_clip = time.perf_counter()
    sd_metrics = text2img.build_text2img(
        out / "tiny-digits",
        clip_checkpoint=out / "tiny-clip.safetensors",
        seed=seed,
        threads=threads,
    )
    t_sd = time.perf_counter()
    return {
        "seconds_judge": t_judge - started,
        "seconds_clip": t_clip - t_judge,
        "seconds_text2img": t_sd - t_clip,
        "seconds_total": t_sd - started,
        "clip": clip_metrics,
        "text2img": {k: v for k, v in sd_metrics.items() if k != "config"},
    }
