"""`ImageGenerator` against the best raw diffusers loop written plainly, on the same images.

For each family a pipeline with random weights is built from its real configuration
(`bench/gpu_configs.py`: SD-1.5, SDXL base 1.0, FLUX.1-dev with 2 + 4 of its 19 + 38 blocks
and 2 of T5-XXL's 24 layers; speed does not depend on the weights), directly on the GPU in
bf16, and saved once with `save_pretrained` (safetensors, bf16). Then the same prompts and
seeds are generated at the family's native resolution (512, 1024, 1024):

(a) raw: `DiffusionPipeline.from_pretrained` in bf16, SDPA attention (diffusers' default),
    `compile_repeated_blocks(fullgraph=True)` of the denoiser, a loop over `pipe(...)`;
(b) synthset: `ImageGenerator` with `dtype: bfloat16` and `speed: {attention: native,
    compile: true}`, the generator settings that ask for the same.

Each side is warmed up with one batch (compilation happens there), then timed on all the
images; peak GPU memory (`torch.cuda.max_memory_allocated`) is counted from its load on.
Prints family, resolution, steps, batch, images/s of both, their ratio (synthset / raw,
bar ≥ 0.95) and peak memory, the elapsed time per family, and writes the table as JSON
(`--json`, default `bench/results/gpu_throughput.json`).

On one H200 the whole real-size run is meant to take well under 8 minutes (build, save and
two loads per family included); `--families` runs a subset, `--images`, `--steps` and
`--batch-size` override every family's defaults. Without CUDA it runs on the CPU in
float32 (slow: use a small `--resolution`, `--steps 1`, `--images 1` to check the path).

`--smoke` (what CI runs) uses the tiny offline pipelines of `synthset.generators.tiny` at
32×32 on whatever device there is.

    python bench/gpu_throughput.py                      # real size, all families, on CUDA
    python bench/gpu_throughput.py --families sdxl --images 8
    python bench/gpu_throughput.py --smoke [--images 8] [--steps 2]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench import gpu_configs  # noqa: E402
from synthset.generators import tiny  # noqa: E402
from synthset.generators.pipeline import ImageGenerator  # noqa: E402
from synthset.manifest import GenerationRequest, GeneratorConfig  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PROMPTS = (
    "a red seven painted on a white wall",
    "a photo of a cat sleeping on a blue sofa",
    "a watercolour landscape with a lighthouse at dusk",
    "a portrait of an old man in a green coat",
)


@dataclass(frozen=True)
class Run:
    """How a family is measured: denoising steps, batch size, timed images, guidance."""

    steps: int
    batch: int
    images: int
    guidance: float


RUNS = {
    "sd": Run(steps=25, batch=8, images=64, guidance=7.5),
    "sdxl": Run(steps=30, batch=4, images=16, guidance=5.0),
    "flux": Run(steps=28, batch=4, images=16, guidance=3.5),
}
"""Real-size defaults: common step counts (Flux's pipeline default is 28), batches that keep
an H200 busy, and image counts that keep the whole run under 8 minutes."""

SMOKE = {
    "sd": tiny.save_tiny_sd_pipeline,
    "sdxl": tiny.save_tiny_sdxl_pipeline,
    "flux": tiny.save_tiny_flux_pipeline,
}


@dataclass
class Row:
    family: str
    pipeline: str
    resolution: int
    steps: int
    batch: int
    images: int
    raw_images_per_s: float
    synthset_images_per_s: float
    ratio: float
    raw_peak_gib: float | None
    synthset_peak_gib: float | None
    max_pixel_diff: int
    build_s: float
    raw_setup_s: float
    synthset_setup_s: float
    elapsed_s: float
    parameters: dict[str, int]


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _tokenizer(kind: str) -> Any:
    from transformers import CLIPTokenizer

    if kind == "t5":
        return tiny.build_t5_tokenizer(max_length=512)
    with tempfile.TemporaryDirectory() as tmp:
        pad = "!" if kind == "clip!" else "<|endoftext|>"
        return CLIPTokenizer.from_pretrained(tiny.write_clip_tokenizer(tmp, pad_token=pad))


def build_pipeline(family: str, device: str | torch.device, dtype: torch.dtype) -> Any:
    """The family's pipeline with random weights, each model constructed on `device` in
    `dtype` (no float32 copy on the host; on `meta` nothing is allocated)."""
    import diffusers

    spec = gpu_configs.FAMILIES[family]
    tokenizers = {name: _tokenizer(kind) for name, kind in spec.tokenizers.items()}
    parts: dict[str, Any] = dict(tokenizers)
    for name, component in spec.components.items():
        if name == "scheduler":
            parts[name] = gpu_configs.instantiate(component)
            continue
        overrides = {}
        if component.cls == "T5EncoderModel":
            overrides["vocab_size"] = len(tokenizers["tokenizer_2"])
        with torch.device(device), _default_dtype(dtype):
            parts[name] = gpu_configs.instantiate(component, **overrides).to(dtype).eval()
    return getattr(diffusers, spec.pipeline)(**parts, **spec.extra)


def save_real_pipeline(family: str, folder: Path, device: str) -> tuple[Path, dict[str, int]]:
    """Build the family's pipeline on `device` in bf16 and save it (safetensors, bf16); returns
    the folder and each model's parameter count."""
    pipe = build_pipeline(family, device, torch.bfloat16)
    counts = {
        name: sum(p.numel() for p in module.parameters())
        for name, module in pipe.components.items()
        if isinstance(module, torch.nn.Module)
    }
    pipe.save_pretrained(folder, safe_serialization=True)
    del pipe
    _release()
    return folder, counts


def _release() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _requests(n: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            sample_id=f"b{i}", item_index=0, index=i, seed=i, prompt=PROMPTS[i % len(PROMPTS)]
        )
        for i in range(n)
    ]


@dataclass(frozen=True)
class Setting:
    """What both sides generate with."""

    steps: int
    guidance: float
    size: int
    batch: int
    device: str
    dtype: torch.dtype
    compile: bool


def _timed(run: Callable[[list[GenerationRequest]], list[Any]], n: int, batch: int):
    """Seconds for n images after a warm-up batch, and the images."""
    run(_requests(batch))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    images = run(_requests(n))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, images


def raw_loop(folder: Path, n: int, s: Setting) -> tuple[float, list[Any]]:
    """Seconds for n images by a plain loop over the pipeline, and the images."""
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(folder, dtype=s.dtype).to(s.device)
    pipe.set_progress_bar_config(disable=True)
    if s.compile:
        denoiser = getattr(pipe, "unet", None) or pipe.transformer
        denoiser.compile_repeated_blocks(fullgraph=True)

    def run(requests: list[GenerationRequest]) -> list[Any]:
        images = []
        for start in range(0, len(requests), s.batch):
            batch = requests[start : start + s.batch]
            with torch.inference_mode():
                images += pipe(
                    prompt=[r.prompt for r in batch],
                    negative_prompt=[r.negative_prompt for r in batch],
                    generator=[torch.Generator("cpu").manual_seed(r.seed) for r in batch],
                    num_inference_steps=s.steps,
                    guidance_scale=s.guidance,
                    height=s.size,
                    width=s.size,
                    output_type="pil",
                ).images
        return images

    return _timed(run, n, s.batch)


def synthset_loop(folder: Path, n: int, s: Setting) -> tuple[float, list[Any]]:
    """Seconds for the same images through `ImageGenerator`, and the images."""
    from synthset.generators import pipeline as generators

    config = GeneratorConfig(
        model=str(folder),
        steps=s.steps,
        guidance_scale=s.guidance,
        height=s.size,
        width=s.size,
        batch_size=s.batch,
        device=s.device,
        dtype=str(s.dtype).removeprefix("torch."),
        speed={"attention": "native", "compile": True} if s.compile else {},
    )
    generator = ImageGenerator(config)

    def run(requests: list[GenerationRequest]) -> list[Any]:
        results = generator.generate(requests)
        if failed := next((r.error for r in results if r.error), None):
            raise RuntimeError(failed)
        return [r.image for r in results]

    try:
        return _timed(run, n, s.batch)
    finally:
        generators._cached.cache_clear()


@dataclass
class Measured:
    seconds: float
    images: list[Any]
    peak_gib: float | None
    setup_s: float
    """Load, compilation and the warm-up batch."""


def _measure(loop: Callable, folder: Path, n: int, s: Setting) -> Measured:
    """The loop's timed seconds, images, peak GPU memory (GiB) from its load on and setup time;
    afterwards its pipeline and compiled code are gone, so the next one starts from the same
    state."""
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    seconds, images = loop(folder, n, s)
    setup = time.perf_counter() - start - seconds
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    torch._dynamo.reset()
    _release()
    return Measured(seconds, images, peak, setup)


def _pixel_diff(a: Any, b: Any) -> int:
    import numpy as np

    return int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())


def measure_family(family: str, args: argparse.Namespace, tmp: Path) -> Row:
    start = time.perf_counter()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if args.smoke:
        run = Run(args.steps or 2, args.batch_size or 4, args.images or 8, 7.5)
        folder, counts = SMOKE[family](tmp / family), {}
        size = args.resolution or 32
    else:
        defaults = RUNS[family]
        run = Run(
            args.steps or defaults.steps,
            args.batch_size or defaults.batch,
            args.images or defaults.images,
            defaults.guidance,
        )
        folder, counts = save_real_pipeline(family, tmp / family, device)
        size = args.resolution or gpu_configs.FAMILIES[family].resolution
    build_s = time.perf_counter() - start
    n = -(-run.images // run.batch) * run.batch
    setting = Setting(
        steps=run.steps,
        guidance=run.guidance,
        size=size,
        batch=run.batch,
        device=device,
        dtype=torch.bfloat16 if cuda else torch.float32,
        compile=cuda and not args.no_compile,
    )
    raw = _measure(raw_loop, folder, n, setting)
    ours = _measure(synthset_loop, folder, n, setting)
    return Row(
        family=family,
        pipeline=gpu_configs.FAMILIES[family].pipeline,
        resolution=size,
        steps=run.steps,
        batch=run.batch,
        images=n,
        raw_images_per_s=n / raw.seconds,
        synthset_images_per_s=n / ours.seconds,
        ratio=raw.seconds / ours.seconds,
        raw_peak_gib=raw.peak_gib,
        synthset_peak_gib=ours.peak_gib,
        max_pixel_diff=_pixel_diff(raw.images[0], ours.images[0]),
        build_s=build_s,
        raw_setup_s=raw.setup_s,
        synthset_setup_s=ours.setup_s,
        elapsed_s=time.perf_counter() - start,
        parameters=counts,
    )


HEADER = (
    f"{'family':<6} {'res':>5} {'steps':>5} {'batch':>5} {'raw img/s':>10} "
    f"{'synthset img/s':>15} {'ratio':>6} {'raw GiB':>8} {'ours GiB':>8}"
)


def _gib(value: float | None) -> str:
    return f"{value:8.2f}" if value is not None else f"{'-':>8}"


def format_row(r: Row) -> str:
    return (
        f"{r.family:<6} {r.resolution:>5} {r.steps:>5} {r.batch:>5} {r.raw_images_per_s:10.3f} "
        f"{r.synthset_images_per_s:15.3f} {r.ratio:6.3f} {_gib(r.raw_peak_gib)} "
        f"{_gib(r.synthset_peak_gib)}"
    )


def _quiet() -> None:
    import diffusers
    import transformers

    for library in (diffusers, transformers):
        library.utils.logging.disable_progress_bar()
        library.utils.logging.set_verbosity_error()


def _environment() -> dict[str, Any]:
    import diffusers
    import transformers

    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny pipelines at 32×32 (CI)")
    parser.add_argument("--families", default=",".join(RUNS), help="comma-separated subset")
    parser.add_argument("--images", type=int, help="timed images per family")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--resolution", type=int, help="instead of each family's native size")
    parser.add_argument("--no-compile", action="store_true", help="neither side compiles")
    parser.add_argument("--json", type=Path, help="default bench/results/gpu_throughput.json")
    args = parser.parse_args(argv)
    _quiet()
    families = args.families.split(",")
    if unknown := [f for f in families if f not in RUNS]:
        parser.error(f"unknown families {unknown}; allowed: {', '.join(RUNS)}")
    name = "gpu_throughput_smoke.json" if args.smoke else "gpu_throughput.json"
    out = args.json or RESULTS / name
    environment = _environment()
    print(f"device: {environment['device']}; {'smoke' if args.smoke else 'real-size'} pipelines")
    print(HEADER, flush=True)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in families:
            try:
                row = measure_family(family, args, Path(tmp))
            except Exception as exc:  # one family's failure still reports the others
                traceback.print_exc()
                rows.append({"family": family, "error": f"{type(exc).__name__}: {exc}"})
                print(f"{family}: FAILED {type(exc).__name__}: {exc}", flush=True)
            else:
                rows.append(asdict(row))
                print(format_row(row))
                print(
                    f"  {family}: build and save {row.build_s:.0f} s, setup (load, compile, "
                    f"warm-up) raw {row.raw_setup_s:.0f} s / synthset {row.synthset_setup_s:.0f} "
                    f"s; family {row.elapsed_s:.0f} s",
                    flush=True,
                )
            shutil.rmtree(Path(tmp) / family, ignore_errors=True)
            report = {**environment, "smoke": args.smoke, "rows": rows}
            _write(out, report | {"total_s": time.perf_counter() - started})
    print(f"total {time.perf_counter() - started:.0f} s; wrote {out}")
    if any("error" in row for row in rows):
        sys.exit(1)


def _write(out: Path, report: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
