"""The quality bars of the embedded default models, measured in one place.

Used by `synthset models build-default` (to print what it built) and `bench/default_quality.py`.
Generated images come from synthset's own `ImageGenerator`; prompt adherence is read by the
judge, never by CLIP, so the CLIP-filter bar measures CLIP against an independent reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

BARS: dict[str, tuple[str, float]] = {
    "judge_accuracy": (">=", 0.97),
    "adherence": (">=", 0.90),
    "clip_zero_shot_accuracy": (">=", 0.90),
    "clip_auc_generated": (">=", 0.95),
    "clip_filter_gain_points": (">=", 3.0),
    "clip_filter_discarded": ("<=", 0.20),
    "colour_correctness": (">=", 0.90),
    "images_per_s": (">=", 5.0),
}


def clip_filter(scores: np.ndarray, correct: np.ndarray, discard: float = 0.2) -> dict[str, float]:
    """Keep images whose CLIP score is above the `discard` quantile; adherence kept vs all."""
    threshold = float(np.quantile(scores, discard))
    kept = scores > threshold
    return {
        "clip_filter_threshold": threshold,
        "clip_filter_discarded": float(1 - kept.mean()),
        "adherence_all": float(correct.mean()),
        "adherence_kept": float(correct[kept].mean()),
        "clip_filter_gain_points": 100 * float(correct[kept].mean() - correct.mean()),
    }


def measure(
    weights: Path | None = None, n: int = 300, seed: int = 0, speed_images: int = 256
) -> dict[str, Any]:
    """Every bar of the default models on `n` seeded prompts (all ten digits, plain and colour).

    `weights` is a folder laid out like the package's (`tiny-digits/`, `judge/`,
    `tiny-clip.safetensors`); None measures the packaged models.
    """
    from synthset.models import clip, evaluate, judge, text2img

    model = str(weights / "tiny-digits") if weights else "synthset/tiny-digits"
    reader = judge.load_judge(weights / "judge" if weights else None)
    model_clip, preprocess, tokenizer = clip.load_clip(
        pretrained=weights / "tiny-clip.safetensors" if weights else None
    )
    steps, guidance = text2img.DEFAULT_STEPS, text2img.DEFAULT_GUIDANCE
    specs = evaluate.prompt_plan(n, seed=seed)
    images = evaluate.generate(model, specs, steps, guidance, seed=seed)
    digits_read = reader.predict(images)
    correct = digits_read == np.array([s.digit for s in specs])
    prompts = [s.prompt for s in specs]
    wrong = [other_digit_prompt(s, seed + i) for i, s in enumerate(specs)]
    scores = clip.clip_score(model_clip, preprocess, tokenizer, list(images), prompts)
    metrics: dict[str, Any] = {
        "judge_accuracy": judge.judge_accuracy(reader),
        "adherence": float(correct.mean()),
        "colour_correctness": evaluate.colour_correctness(images, specs),
        "clip_zero_shot_accuracy": clip.evaluate_clip(model_clip, preprocess, tokenizer)[
            "zero_shot_accuracy"
        ],
        "clip_auc_generated": clip.matched_vs_mismatched_auc(
            model_clip, preprocess, tokenizer, list(images), prompts, wrong
        ),
        **clip_filter(scores, correct),
        "mean_clip_score": float(scores.mean()),
        "steps": steps,
        "guidance": guidance,
        "scheduler": text2img.DEFAULT_SCHEDULER,
        "images": n,
    }
    if speed_images:
        metrics["images_per_s"] = evaluate.images_per_second(model, steps, guidance, n=speed_images)
    return metrics


def other_digit_prompt(spec: Any, seed: int) -> str:
    """`spec`'s prompt naming another digit (which one depends on `seed`), colours unchanged."""
    from synthset.models.digits import DIGIT_WORDS

    other = (spec.digit + 1 + seed % 9) % 10
    return spec.prompt.replace(DIGIT_WORDS[spec.digit], DIGIT_WORDS[other]).replace(
        f"digit {spec.digit}", f"digit {other}"
    )


def report(metrics: dict[str, Any]) -> str:
    """A table of every bar: measured value, bar, and whether it holds."""
    lines = [f"{'measure':<26} {'value':>9}  {'bar':<8} ok"]
    for name, (op, bar) in BARS.items():
        value = metrics.get(name)
        if value is None:
            lines.append(f"{name:<26} {'n/a':>9}  {op} {bar:<5}  -")
            continue
        ok = value >= bar if op == ">=" else value <= bar
        lines.append(f"{name:<26} {value:>9.3f}  {op} {bar:<5}  {'yes' if ok else 'NO'}")
    extra = ("adherence_all", "adherence_kept", "clip_filter_threshold", "mean_clip_score")
    lines += [f"{name:<26} {metrics[name]:>9.3f}" for name in extra if name in metrics]
    return "\n".join(lines)
