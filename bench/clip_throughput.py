"""CLIP scoring throughput: synthset's scorer against a plain open_clip `encode_image` loop.

Both sides take the same in-memory PIL images, the same model, preprocessing and batch size:

- plain: `model.encode_image(torch.stack([preprocess(im) for im in batch]))` under
  `torch.no_grad()`, batch after batch (the loop of open_clip's README);
- synthset: `ClipScorer.embed_images` and `clip_scores` (normalised embeddings and CLIPScore
  against each image's prompt), what `score_shard` runs per batch.

The two alternate `--repeats` times and the best round of each is kept. Also printed, for
information and without a bar: `score_shard` on the same images written as a shard (decoding
PNGs, pixel hash, pHash, statistics and CLIP score), whose extra work is not CLIP's.
Bar: synthset/plain ≥ 0.95.

    taskset -c 0,1 python bench/clip_throughput.py [--images 2048] [--batch-size 64]
        [--model synthset-tiny-clip] [--pretrained PATH|TAG] [--random-weights]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

from synthset.curation.clip import ClipScorer, load_scorer
from synthset.curation.config import CurationConfig


def plain_loop(model: Any, preprocess: Any, images: list[Image.Image], batch_size: int) -> float:
    """Seconds for open_clip's own loop over `images`."""
    import torch

    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        batch = torch.stack([preprocess(im) for im in images[i : i + batch_size]])
        with torch.no_grad():
            model.encode_image(batch)
    return time.perf_counter() - start


def scorer_loop(
    scorer: ClipScorer, images: list[Image.Image], prompts: list[str], batch_size: int
) -> float:
    """Seconds for synthset's scorer: embeddings and CLIPScores of `images`."""
    start = time.perf_counter()
    embeddings = scorer.embed_images(images, batch_size)
    scorer.clip_scores(embeddings, prompts)
    return time.perf_counter() - start


def shard_loop(scorer: ClipScorer, images: list[Image.Image], prompts: list[str]) -> float:
    """Seconds for `score_shard` on the images written as a staging shard."""
    from synthset.curation.score import score_shard
    from synthset.generators.pipeline import GenerationResult
    from synthset.manifest import GenerationRequest
    from synthset.shards import write_shard

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "shard"
        results = []
        for n, (image, prompt) in enumerate(zip(images, prompts, strict=True)):
            request = GenerationRequest(
                sample_id=f"s{n}", item_index=0, index=n, seed=n, prompt=prompt
            )
            results.append(GenerationResult(request, image=image))
        write_shard(folder, results, {})
        start = time.perf_counter()
        score_shard(folder, scorer, CurationConfig())
        return time.perf_counter() - start


def test_images(n: int, size: int) -> tuple[list[Image.Image], list[str]]:
    """Held-out coloured digits (resized to the model's input size) with their prompts."""
    from synthset.models.clip import held_out_digits
    from synthset.models.digits import DIGIT_WORDS

    arrays, labels, _, _ = held_out_digits(copies=max(1, -(-n // 360)))
    images = [Image.fromarray(a) for a in arrays[:n]]
    if size != images[0].width:
        images = [im.resize((size, size), Image.Resampling.BICUBIC) for im in images]
    return images, [f"a handwritten {DIGIT_WORDS[k]}" for k in labels[:n]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model", default="synthset-tiny-clip")
    parser.add_argument("--pretrained", default=None)
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="no weights (speed does not depend on them), e.g. for ViT-B-32 offline",
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import open_clip
    import torch

    from synthset.models.clip import register

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    if args.random_weights:
        register()
        model, _, preprocess = open_clip.create_model_and_transforms(args.model)
        model.eval()
        identity = {"model": args.model, "pretrained": None}
        scorer = ClipScorer(model, preprocess, open_clip.get_tokenizer(args.model), identity)
    else:
        scorer = load_scorer(args.model, args.pretrained, "cpu")
        model, preprocess = scorer.model, scorer.preprocess
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple | list) else size
    images, prompts = test_images(args.images, size)
    scorer_loop(scorer, images[: args.batch_size], prompts[: args.batch_size], args.batch_size)
    plain_loop(model, preprocess, images[: args.batch_size], args.batch_size)

    plain, ours = [], []
    for _ in range(args.repeats):
        plain.append(plain_loop(model, preprocess, images, args.batch_size))
        ours.append(scorer_loop(scorer, images, prompts, args.batch_size))
    plain_ips, ours_ips = len(images) / min(plain), len(images) / min(ours)
    ratio = ours_ips / plain_ips
    print(
        f"{args.model} ({'random weights' if args.random_weights else 'weights loaded'}), "
        f"{len(images)} images of {size}×{size}, batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}"
    )
    print(f"plain open_clip encode_image loop: {plain_ips:8.1f} images/s")
    print(f"synthset ClipScorer (embed + score): {ours_ips:8.1f} images/s")
    print(f"ratio synthset/plain = {ratio:.3f} [bar ≥ 0.95: {'ok' if ratio >= 0.95 else 'MISSED'}]")
    shard_ips = len(images) / shard_loop(scorer, images, prompts)
    print(
        f"for information, score_shard from PNG files (decode, hashes, stats, CLIP): "
        f"{shard_ips:.1f} images/s ({shard_ips / plain_ips:.2f} of plain)"
    )


if __name__ == "__main__":
    main()
