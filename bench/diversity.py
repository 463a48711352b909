"""Diversity-preserving sampling on the default model, before and after (issue 14, part 3).

For each setting (generator options over the manifest's, `diversity` off first), makes
`--images` images of every prompt of a manifest (default `examples/quickstart.yaml`: its seeds,
negative prompts, model and sampling settings; "a red three on a white background", the prompt
the default model collapses on, is one of them) with synthset's `ImageGenerator`, and measures
per prompt and overall:

- **dup**: the share of the raw generations synthset's own dedup rejects, the manifest's
  `curation.dedup` tiers (the quickstart: exact ▸ perceptual) run on each prompt's images;
- **adh**: prompt adherence, the share the hidden digit judge reads as the prompt's digit
  (`metadata.digit`);
- **FD** (`synthset.quality.fidelity`) in the image features of the manifest's CLIP (the
  embedded one): overall against the built-in reference `synthset/digits` (the held-out
  scikit-learn digits the models never saw, rendered like their training data), and, per
  prompt and pooled, against *matched* real digits: the held-out digits of the prompt's digit
  painted in the colours it names (random palette colours when it names none). The floors are
  FDs of real images against other real ones at the same n (`fd_floor`; per prompt, one half
  of the matched digits against the other): what a generator drawing from the real images
  would score. Compare FDs of equal n only.

Seconds are wall time of generation on this machine.

    python bench/diversity.py [--images 64] [--setting NAME=JSON ...] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthset.quality.fidelity import fd_floor, frechet_distance

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "examples" / "quickstart.yaml"
INTERVAL = {"guidance_scale": 7.0, "diversity": {"guidance_interval": [3.5, 5.0]}}
"""Guidance 7 at σ in (3.5, 5.0]: at 12 DPM-Solver++ steps, the 4th alone (σ 4.08)."""
SETTINGS: dict[str, dict[str, Any]] = {
    "off": {},
    "interval": INTERVAL,
    "cads": {"diversity": {"cads": {"tau1": 0.6, "tau2": 0.9, "noise_scale": 0.25, "psi": 1.0}}},
    "both": {
        "guidance_scale": 7.0,
        "diversity": {
            "guidance_interval": [3.5, 5.0],
            "cads": {"tau1": 0.8, "tau2": 1.0, "noise_scale": 0.05, "psi": 1.0},
        },
    },
}
"""The settings compared by default, as generator options over the manifest's (which has
`diversity` removed); `--setting NAME=JSON` adds or replaces one."""


@dataclass
class Prompt:
    """A manifest item as the bench measures it."""

    prompt: str
    digit: int
    ink: str | None
    bg: str | None


@dataclass
class Measured:
    """One setting's images and figures."""

    name: str
    options: dict[str, Any]
    seconds: float
    per_prompt: pd.DataFrame
    overall: dict[str, float]


def prompts_of(manifest: Any) -> list[Prompt]:
    """Each item's digit (`metadata.digit`) and the ink and background colours it names."""
    from synthset.models.digits import COLOURS

    names = "|".join(COLOURS)
    out = []
    for item in manifest.items:
        match = re.search(rf"\b({names})\b.* on (?:a )?({names})\b", item.prompt)
        ink, bg = match.groups() if match else (None, None)
        out.append(Prompt(item.prompt, int(item.metadata["digit"]), ink, bg))
    return out


def matched_real(prompts: list[Prompt], seed: int = 0) -> list[np.ndarray]:
    """Per prompt, the held-out real digits of its digit painted as it asks (uint8 N×32×32×3)."""
    from synthset.models.digits import load_split, paint, random_colours, upscale

    split = load_split("test")
    alpha = upscale(split.images)
    rng = np.random.default_rng(seed)
    out = []
    for p in prompts:
        chosen = alpha[split.labels == p.digit]
        colours = [(p.ink, p.bg) if p.ink else random_colours(rng) for _ in chosen]
        painted = [paint(a, ink, bg) for a, (ink, bg) in zip(chosen, colours, strict=True)]
        out.append(np.stack(painted))
    return out


def duplicate_rate(images: list[Any], scores: np.ndarray, ids: list[str], curation: Any) -> float:
    """Share of `images` the manifest's exact and perceptual dedup tiers reject among them."""
    from synthset.curation.decisions import Decisions
    from synthset.curation.dedup import rank_order
    from synthset.curation.prior import PriorVersions
    from synthset.curation.stats import phash, pixel_hash
    from synthset.curation.tiers import TIERS

    rows = pd.DataFrame(
        {"pixel_hash": [pixel_hash(im) for im in images], "phash": [phash(im) for im in images]}
    )
    decisions = Decisions(len(images), np.asarray(ids, dtype=object))
    rank = rank_order(scores, ids)
    for tier in TIERS.values():
        if tier.kind != "semantic" and tier.enabled(curation.dedup):
            tier.run(decisions, rows, np.zeros((len(images), 0)), rank, PriorVersions(), curation)
    return float(pd.notna(decisions.columns["reject_reason"]).mean())


def generate(
    manifest: Any, options: dict[str, Any], n: int, seed_offset: int = 0
) -> tuple[list, float]:
    """`n` images of every item (the manifest's seeds, moved by `seed_offset`) with the
    generator `options` over the manifest's, in item order, and the seconds taken."""
    from synthset.generators.pipeline import ImageGenerator
    from synthset.manifest import expand

    config = manifest.generator.model_copy(update={"device": "cpu"})
    config = type(config).model_validate({**config.model_dump(), **options})
    items = [
        item.model_copy(update={"count": n, "seed": (item.seed or 0) + seed_offset})
        for item in manifest.items
    ]
    requests = expand(manifest.model_copy(update={"items": items, "generator": config}))
    generator = ImageGenerator(config)
    started = time.perf_counter()
    results = generator.generate(requests)
    seconds = time.perf_counter() - started
    failed = [r.error for r in results if r.error]
    if failed:
        raise RuntimeError(f"{len(failed)} images failed, first: {failed[0]}")
    return results, seconds


def measure(
    manifest: Any,
    name: str,
    options: dict[str, Any],
    n: int,
    context: dict[str, Any],
    seed_offset: int = 0,
) -> Measured:
    results, seconds = generate(manifest, options, n, seed_offset)
    scorer, judge, curation = context["scorer"], context["judge"], manifest.curation
    rows, fakes = [], []
    for i, p in enumerate(context["prompts"]):
        mine = [r for r in results if r.request.item_index == i]
        images = [r.image.convert("RGB") for r in mine]
        pixels = np.stack([np.asarray(im) for im in images])
        features = scorer.embed_images(images)
        scores = scorer.clip_scores(features, [p.prompt] * len(images))
        ids = [r.request.sample_id for r in mine]
        real = context["matched"][i]
        rows.append(
            {
                "prompt": p.prompt,
                "dup": duplicate_rate(images, scores, ids, curation),
                "adh": float((judge.predict(pixels) == p.digit).mean()),
                "fd_matched": frechet_distance(features, real),
                "clip": float(scores.mean()),
            }
        )
        fakes.append(features)
    per_prompt = pd.DataFrame(rows)
    pooled = np.concatenate(fakes)
    overall = {
        "dup": float(per_prompt["dup"].mean()),
        "dup_max": float(per_prompt["dup"].max()),
        "adh": float(per_prompt["adh"].mean()),
        "adh_min": float(per_prompt["adh"].min()),
        "fd_digits": frechet_distance(pooled, context["digits"]),
        "fd_matched": frechet_distance(pooled, np.concatenate(context["matched"])),
        "clip": float(per_prompt["clip"].mean()),
    }
    return Measured(name, options, seconds, per_prompt, overall)


def floors(context: dict[str, Any], n: int) -> dict[str, float]:
    """What real images score: FDs of real against real at the bench's n, and the duplicate
    rate of each prompt's matched real digits (the worst prompt)."""
    rng = np.random.default_rng(0)
    per_prompt = []
    for real in context["matched"]:
        shuffled = real[rng.permutation(len(real))]
        per_prompt.append(frechet_distance(shuffled[: len(real) // 2], shuffled[len(real) // 2 :]))
    digits = fd_floor(context["digits"], n)
    return {
        "fd_digits": digits["fd"] if digits else float("nan"),
        "fd_digits_n": digits["images"] if digits else 0,
        "fd_matched": float(np.mean(per_prompt)),
        "dup_real": max(context["real_dup"]),
    }


def table(measured: list[Measured], floor: dict[str, float], n: int) -> str:
    """The before/after table: per prompt, then overall, one column group per setting."""
    names = [m.name for m in measured]
    head = f"{'prompt':38s}" + "".join(f" | {name:^22s}" for name in names)
    sub = f"{'':38s}" + " | dup%   adh%  FDmatch" * len(names)
    title = f"{n} raw images per prompt; dup = exact ▸ perceptual dedup within a prompt"
    lines = [title, head, sub]
    for i, prompt in enumerate(measured[0].per_prompt["prompt"]):
        cells = [m.per_prompt.iloc[i] for m in measured]
        lines.append(
            f"{prompt[:38]:38s}"
            + "".join(
                f" | {100 * c['dup']:5.1f} {100 * c['adh']:6.1f} {c['fd_matched']:7.3f}"
                for c in cells
            )
        )
    lines.append("")
    rows = [
        ("duplicate rate, mean over prompts %", "dup", 100),
        ("duplicate rate, worst prompt %", "dup_max", 100),
        ("judge adherence %", "adh", 100),
        ("judge adherence, worst prompt %", "adh_min", 100),
        ("FD to synthset/digits (all held-out)", "fd_digits", 1),
        ("FD to matched real digits (pooled)", "fd_matched", 1),
        ("mean CLIP score", "clip", 1),
    ]
    lines.append(f"{'overall':38s}" + "".join(f" | {name:^22s}" for name in names))
    for label, key, scale in rows:
        cells = "".join(f" | {scale * m.overall[key]:^22.3f}" for m in measured)
        lines.append(f"{label:38s}{cells}")
    cells = "".join(f" | {m.seconds:^22.1f}" for m in measured)
    lines.append(f"{'generation seconds':38s}{cells}")
    lines.append(
        f"real digits: FD synthset/digits vs itself {floor['fd_digits']:.3f} "
        f"({floor['fd_digits_n']} held apart); matched, half vs half per prompt "
        f"{floor['fd_matched']:.3f}; duplicate rate of matched real digits, worst prompt "
        f"{100 * floor['dup_real']:.1f}%"
    )
    for m in measured:
        options = json.dumps(m.options) if m.options else "as the manifest"
        lines.append(f"{m.name}: generator {options}")
    return "\n".join(lines)


def context_for(manifest: Any) -> dict[str, Any]:
    """What every setting is measured with: CLIP, judge, prompts and real features."""
    from PIL import Image

    from synthset.curation.clip import scorer_for
    from synthset.models.judge import load_judge
    from synthset.quality.config import BUILTIN_DIGITS
    from synthset.quality.features import FeatureSpace
    from synthset.quality.reference import resolve_reference

    scorer = scorer_for(manifest.curation.clip)
    prompts = prompts_of(manifest)
    matched = [[Image.fromarray(a) for a in real] for real in matched_real(prompts)]
    return {
        "scorer": scorer,
        "judge": load_judge(),
        "prompts": prompts,
        "matched": [scorer.embed_images(real) for real in matched],
        "real_dup": [
            duplicate_rate(
                real, np.zeros(len(real)), [str(i) for i in range(len(real))], manifest.curation
            )
            for real in matched
        ],
        "digits": resolve_reference(BUILTIN_DIGITS).features(FeatureSpace(manifest.curation.clip)),
    }


def parse_settings(extra: list[str], only: list[str]) -> dict[str, dict[str, Any]]:
    settings = dict(SETTINGS)
    for spec in extra:
        name, _, text = spec.partition("=")
        settings[name] = json.loads(text) if text else {}
    if only:
        missing = [name for name in only if name not in settings]
        if missing:
            sys.exit(f"unknown setting {missing[0]!r}; known: {', '.join(settings)}")
        settings = {name: settings[name] for name in only}
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--images", type=int, default=64, help="images per prompt")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=JSON")
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--seed-offset", type=int, default=0, help="added to every item's seed")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    from synthset.manifest import load_manifest

    manifest = load_manifest(args.manifest)
    manifest.generator = manifest.generator.model_copy(update={"diversity": None})
    context = context_for(manifest)
    measured = []
    for name, options in parse_settings(args.setting, args.only).items():
        measured.append(measure(manifest, name, options, args.images, context, args.seed_offset))
        print(f"measured {name}", file=sys.stderr, flush=True)
    print(table(measured, floors(context, len(manifest.items) * args.images), args.images))
    if args.seed_offset:
        print(f"seeds: the manifest's + {args.seed_offset}")
    if args.json:
        figures = [
            {
                "name": m.name,
                "options": m.options,
                "seconds": m.seconds,
                "overall": m.overall,
                "per_prompt": m.per_prompt.to_dict("records"),
            }
            for m in measured
        ]
        summary = {"images": args.images, "seed_offset": args.seed_offset, "settings": figures}
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
