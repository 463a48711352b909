"""`ImageGenerator` against the best raw diffusers loop written plainly, on the same images.

For each family (SD, SDXL, Flux) a pipeline with random weights is saved once; then the same
N prompts and seeds are generated (a) by a raw loop over `pipe(...)` with the best settings
(bf16, SDPA, `torch.compile` of the denoiser on CUDA; float32 on CPU) and (b) by synthset's
`ImageGenerator` with the matching `generator.speed` options. Prints images/s, peak GPU
memory and the ratio (target ≥ 0.95 on a GPU). Speed does not depend on the weights.

`--smoke` (what CI runs) uses the tiny offline pipelines of `synthset.generators.tiny` at
32×32; without it the pipelines are the tiny architectures too: real-size configurations
(SD-1.5, SDXL, reduced Flux) are not built here yet, so figures without `--smoke` are only
meaningful as a relative measure of synthset's overhead.

    python bench/gpu_throughput.py --smoke [--images 8] [--steps 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from synthset.generators import tiny  # noqa: E402
from synthset.generators.pipeline import ImageGenerator  # noqa: E402
from synthset.manifest import GenerationRequest, GeneratorConfig  # noqa: E402

FAMILIES = {
    "sd": tiny.save_tiny_sd_pipeline,
    "sdxl": tiny.save_tiny_sdxl_pipeline,
    "flux": tiny.save_tiny_flux_pipeline,
}


def _requests(n: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(sample_id=f"b{i}", item_index=0, index=i, seed=i, prompt="a red seven")
        for i in range(n)
    ]


def raw_loop(folder: Path, n: int, steps: int, size: int, batch: int, cuda: bool) -> float:
    """Seconds for n images by a plain loop over the pipeline (after one warm-up batch)."""
    from diffusers import DiffusionPipeline

    dtype = torch.bfloat16 if cuda else torch.float32
    pipe = DiffusionPipeline.from_pretrained(folder, dtype=dtype).to("cuda" if cuda else "cpu")
    pipe.set_progress_bar_config(disable=True)
    if cuda:
        denoiser = getattr(pipe, "unet", None) or pipe.transformer
        denoiser.compile_repeated_blocks(fullgraph=True)

    def run(count: int) -> None:
        for start in range(0, count, batch):
            seeds = range(start, min(start + batch, count))
            generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
            with torch.inference_mode():
                pipe(
                    prompt=["a red seven"] * len(generators),
                    generator=generators,
                    num_inference_steps=steps,
                    height=size,
                    width=size,
                    output_type="pil",
                )

    run(batch)
    t = time.perf_counter()
    run(n)
    return time.perf_counter() - t


def synthset_loop(folder: Path, n: int, steps: int, size: int, batch: int, cuda: bool) -> float:
    """Seconds for the same images through `ImageGenerator` (after one warm-up batch)."""
    speed = {"attention": "native", "compile": True} if cuda else {}
    config = GeneratorConfig(
        model=str(folder),
        steps=steps,
        height=size,
        width=size,
        batch_size=batch,
        device="cuda" if cuda else "cpu",
        dtype="bfloat16" if cuda else "float32",
        speed=speed,
    )
    generator = ImageGenerator(config)
    generator.generate(_requests(batch))
    t = time.perf_counter()
    results = generator.generate(_requests(n))
    seconds = time.perf_counter() - t
    if any(r.error for r in results):
        raise RuntimeError(next(r.error for r in results if r.error))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    size = 32
    print(f"device: {'cuda' if cuda else 'cpu'}; {args.images} images, {args.steps} steps")
    print(f"{'family':<6} {'raw img/s':>10} {'synthset img/s':>15} {'ratio':>6} {'peak GiB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families.split(","):
            folder = FAMILIES[family](Path(tmp) / family)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            raw = raw_loop(folder, args.images, args.steps, size, args.batch_size, cuda)
            ours = synthset_loop(folder, args.images, args.steps, size, args.batch_size, cuda)
            peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
            print(
                f"{family:<6} {args.images / raw:10.2f} {args.images / ours:15.2f} "
                f"{raw / ours:6.3f} {peak:9.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
