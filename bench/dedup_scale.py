"""Semantic dedup at scale: 1,000,000 random 512-d unit vectors with planted near-duplicates.

Random vectors are the hard case for an IVF index (no cluster structure: a vector and its
near-copy often fall into different cells), and at cosine ≥ 0.95 no two of them are alike by
chance, so the planted pairs are the whole truth. The run measures, on the same machine:

1. the reference: exact flat search (`IndexFlatIP` range search) on a 100,000-vector subset,
   and synthset's automatic choice on that subset, with its recall against the exact pairs;
2. synthset's semantic dedup (`synthset.curation.dedup.semantic_duplicates`, the function
   `curate` runs: index built automatically, pairs found, survivors chosen) on all vectors:
   wall time, recall and precision of the planted pairs, and the flat search's time
   extrapolated to the full set (quadratic) as the ratio.

Bars: ≤ 60 s on 2 cores, recall ≥ 0.98, precision ≥ 0.99.

    taskset -c 0,1 python bench/dedup_scale.py [--n 1000000] [--dim 512] [--pairs 10000]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from synthset.curation.dedup import semantic_duplicates
from synthset.curation.index import NPROBE, cell_count, choose_kind, self_pairs

BLOCK = 100_000


def planted_vectors(
    n: int, dim: int, pairs: int, low: float, high: float, seed: int = 0
) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Unit vectors; `pairs` near-copies planted within 100k blocks (cosine in [low, high])."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    truth = set()
    blocks = max(1, n // BLOCK)
    per_block = pairs // blocks
    for b in range(blocks):
        start, stop = b * BLOCK, min(n, (b + 1) * BLOCK)
        chosen = start + rng.choice(stop - start, 2 * per_block, replace=False)
        source, copy = chosen[:per_block], chosen[per_block:]
        cos = rng.uniform(low, high, per_block).astype(np.float32)[:, None]
        noise = rng.standard_normal((per_block, dim), dtype=np.float32)
        noise -= (noise * x[source]).sum(axis=1, keepdims=True) * x[source]
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        x[copy] = cos * x[source] + np.sqrt(1 - cos**2) * noise
        truth |= {(int(min(a, c)), int(max(a, c))) for a, c in zip(source, copy, strict=True)}
    return x, truth


def found_pairs(dup_of: np.ndarray) -> set[tuple[int, int]]:
    rows = np.flatnonzero(dup_of >= 0)
    return {(int(min(r, d)), int(max(r, d))) for r, d in zip(rows, dup_of[rows], strict=True)}


def score(found: set, truth: set) -> tuple[float, float]:
    hit = len(found & truth)
    return hit / max(len(truth), 1), hit / max(len(found), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--subset", type=int, default=BLOCK)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--low", type=float, default=0.96, help="lowest planted cosine")
    parser.add_argument("--high", type=float, default=0.995, help="highest planted cosine")
    args = parser.parse_args()

    import faiss

    threads = len(os.sched_getaffinity(0))
    faiss.omp_set_num_threads(threads)
    t = time.perf_counter()
    x, truth = planted_vectors(args.n, args.dim, args.pairs, args.low, args.high)
    print(
        f"{args.n:,} random {args.dim}-d unit vectors, {len(truth):,} planted near-duplicate "
        f"pairs (cosine {args.low}-{args.high}), threshold {args.threshold}; {threads} cores "
        f"(generated in {time.perf_counter() - t:.1f} s)"
    )
    rng = np.random.default_rng(1)

    sub = x[: args.subset]
    sub_truth = {p for p in truth if p[1] < args.subset}
    t = time.perf_counter()
    exact = self_pairs(sub, args.threshold, kind="flat")
    flat_s = time.perf_counter() - t
    exact_set = set(zip(exact.left.tolist(), exact.right.tolist(), strict=True))
    kind = choose_kind(len(sub))
    t = time.perf_counter()
    dup_of, _ = semantic_duplicates(sub, rng.permutation(len(sub)), args.threshold)
    auto_s = time.perf_counter() - t
    r_exact, _ = score(found_pairs(dup_of), exact_set)
    r_sub, p_sub = score(found_pairs(dup_of), sub_truth)
    print(
        f"reference, {len(sub):,}-vector subset: exact flat search {flat_s:.1f} s, "
        f"{len(exact_set):,} pairs (planted: {len(sub_truth):,}, all found: "
        f"{exact_set == sub_truth})"
    )
    print(
        f"synthset ({kind}) on the subset: {auto_s:.1f} s ({flat_s / auto_s:.1f}× faster), "
        f"recall vs exact {r_exact:.4f}, recall {r_sub:.4f}, precision {p_sub:.4f}"
    )

    kind = choose_kind(len(x))
    t = time.perf_counter()
    dup_of, _ = semantic_duplicates(x, rng.permutation(len(x)), args.threshold)
    seconds = time.perf_counter() - t
    recall, precision = score(found_pairs(dup_of), truth)
    extrapolated = flat_s * (len(x) / len(sub)) ** 2
    print(
        f"synthset ({kind}, {cell_count(len(x))} cells, nprobe {NPROBE}) on {len(x):,}: "
        f"{seconds:.1f} s [bar ≤ 60 s: {'ok' if seconds <= 60 else 'MISSED'}], "
        f"recall {recall:.4f} [≥ 0.98: {'ok' if recall >= 0.98 else 'MISSED'}], "
        f"precision {precision:.4f} [≥ 0.99: {'ok' if precision >= 0.99 else 'MISSED'}]"
    )
    print(
        f"flat search extrapolated to {len(x):,}: {extrapolated:.0f} s; "
        f"ratio flat/synthset = {extrapolated / seconds:.1f}"
    )


if __name__ == "__main__":
    main()
