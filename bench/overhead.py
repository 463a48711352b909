"""Orchestration overhead of `synthset run` against a plain diffusers loop, measured in one run.

Both sides are whole commands in fresh processes (imports, model load, generation, output):
the plain loop loads the same pipeline with `DiffusionPipeline.from_pretrained`, sets the same
scheduler, generates the same prompts with the same per-image seeds and batch size, and writes
every image as a PNG and a `metadata.parquet` (what any useful loop must do); `synthset run`
additionally plans, writes shards, publishes the version and records it in MLflow, against the
Prefect and MLflow servers of `make servers`. Curation is switched off: it scores the images
and may top up counts with more generations, work the plain loop does not do. Prints both wall
times and their ratio (target: ≤ 1.10 at N=1,024 on the default model at its default settings).

    python bench/overhead.py [--images 1024] [--steps 12] [--guidance 4] [--repeats 1]
                             [--runner prefect|local]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from synthset import servers
from synthset.manifest import GeneratorConfig, load_manifest
from synthset.models.text2img import DEFAULT_GUIDANCE, DEFAULT_STEPS
from synthset.plan import make_plan

PROMPTS = [
    "a handwritten zero",
    "a red one on a white background",
    "the digit 2",
    "a blue three on a yellow background",
    "a handwritten four",
    "the number five",
    "a green six on a black background",
    "a handwritten seven",
    "the digit 8",
    "a white nine on a blue background",
]

PLAIN_LOOP = r"""
import json, sys, time
from pathlib import Path
import pandas as pd
import torch
from diffusers import DiffusionPipeline
from synthset.generators.builtin import resolve_model
from synthset.generators.schedulers import make_scheduler
spec = json.loads(sys.argv[1])
torch.manual_seed(0)
pipe = DiffusionPipeline.from_pretrained(resolve_model(spec["model"]), dtype=torch.float32)
if spec["scheduler"]:
    pipe.scheduler = make_scheduler(spec["scheduler"], pipe.scheduler.config)
pipe.set_progress_bar_config(disable=True)
reqs, bs, n = spec["requests"], spec["batch_size"], 0
out_dir = Path(spec["out"])
(out_dir / "images").mkdir(parents=True)
rows = []
for i in range(0, len(reqs), bs):
    batch = reqs[i:i + bs]
    with torch.inference_mode():
        out = pipe(prompt=[r["prompt"] for r in batch],
                   generator=[torch.Generator("cpu").manual_seed(r["seed"]) for r in batch],
                   num_inference_steps=spec["steps"], guidance_scale=spec["guidance"],
                   output_type="pil").images
    for r, image in zip(batch, out):
        name = f"images/{n:08d}.png"
        image.save(out_dir / name)
        rows.append({**r, "file_name": name})
        n += 1
pd.DataFrame(rows).to_parquet(out_dir / "metadata.parquet")
print(n)
"""


def _manifest(folder: Path, images: int, generator: dict) -> Path:
    per_prompt, extra = divmod(images, len(PROMPTS))
    items = [
        {"prompt": p, "count": per_prompt + (i < extra), "seed": 1000 * i}
        for i, p in enumerate(PROMPTS)
        if per_prompt + (i < extra)
    ]
    path = folder / "bench.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "dataset": "bench-overhead",
                "generator": generator,
                "shard_size": 64,
                "items": items,
                "curation": {"enabled": False},
            }
        )
    )
    return path


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(
            f"command failed ({proc.returncode}): {' '.join(cmd[:3])} ...\n{proc.stderr[-2000:]}"
        )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--model", default=GeneratorConfig().model)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--runner", default="prefect", choices=["prefect", "local"])
    args = parser.parse_args()

    os.environ.setdefault("PREFECT_API_URL", servers.DEFAULT_PREFECT_API_URL)
    os.environ.setdefault("MLFLOW_TRACKING_URI", servers.DEFAULT_MLFLOW_URL)
    for service in servers.services():
        servers.start(service)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        defaults = GeneratorConfig(
            model=args.model,
            batch_size=args.batch_size,
            steps=args.steps,
            guidance_scale=args.guidance,
            scheduler=args.scheduler,
        )
        generator = defaults.model_dump(exclude_defaults=False, exclude={"height", "width"})
        manifest_path = _manifest(folder, args.images, generator)
        plan = make_plan(load_manifest(manifest_path), folder / "unused")
        spec = {
            "model": defaults.model,
            "scheduler": defaults.scheduler,
            "steps": defaults.steps,
            "guidance": defaults.guidance_scale,
            "batch_size": defaults.batch_size,
            "requests": [{"prompt": r.prompt, "seed": r.seed} for r in plan.requests],
        }
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        plain, synthset_run = [], []
        for repeat in range(args.repeats):
            spec["out"] = str(folder / f"plain-{repeat}")
            plain.append(_timed([sys.executable, "-c", PLAIN_LOOP, json.dumps(spec)], env))
            run_env = {**env, "SYNTHSET_DATASETS": str(folder / f"datasets-{repeat}")}
            synthset_run.append(
                _timed(
                    [
                        str(Path(sys.executable).parent / "synthset"),
                        "run",
                        str(manifest_path),
                        "--quiet",
                        "--runner",
                        args.runner,
                    ],
                    run_env,
                )
            )
    best_plain, best_run = min(plain), min(synthset_run)
    print(
        f"images: {args.images}, model: {args.model}, steps: {defaults.steps}, "
        f"batch size: {args.batch_size}, repeats: {args.repeats} (best of), "
        f"runner: {args.runner}"
    )
    print(f"plain diffusers loop: {best_plain:8.2f} s  ({args.images / best_plain:.2f} images/s)")
    print(f"synthset run:         {best_run:8.2f} s  ({args.images / best_run:.2f} images/s)")
    print(f"ratio synthset/plain: {best_run / best_plain:8.3f}  (target ≤ 1.10)")


if __name__ == "__main__":
    main()
