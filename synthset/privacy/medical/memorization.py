"""The memorization gate: every synthetic image is compared with its nearest training images,
and a near-copy of one is rejected with a reason.

Diffusion models memorize (Carlini et al. 2023 extracted training images from them; Dar et al.
2024 found up to 41.7% of CT training images memorized), so no synthetic image goes out
without this check. Three checks per image, any one rejects it:

- **Pixel ratio** (Carlini et al.'s calibrated ℓ2): in pixel space, the distance to the
  nearest training image divided by the mean distance to the `k` nearest (the nearest
  included, so the ratio lies in [0, 1]). A copy sits far closer to its source than to
  anything else (ratio near 0); a novel image sits about as close to its nearest as to its
  k-th (ratio near 1). A ratio, not a distance, so one threshold fits any image size,
  contrast and data set density. The distance is minimised over shifts of the synthetic
  image by up to `max_shift` pixels each way (the edge repeated into the uncovered border),
  so a copy moved by a pixel or two is as close as an exact one; this multiplies the search
  by (2·max_shift + 1)², and `max_shift = 0` is Carlini's plain ℓ2.
- **Embedding ratio**: the same ratio in a space that forgives what a plain pixel distance
  does not: each image blurred and area-averaged to `embed_size` × `embed_size`, then
  centred and scaled to unit length. A noised copy, or one with its brightness or contrast
  changed, stays next to its source there. This space was chosen over the
  embedded CLIP (`synthset/curation/clip.py`): that model was trained on coloured digits and
  knows nothing of anatomy, and it would load torch and a model for what a 64-number
  summary does in microseconds; any other encoder can be passed as `embed` (images → vectors).
- **SSIM** (scikit-image's `structural_similarity`) between the synthetic image and each
  candidate training image (the `candidates` nearest in each space), after aligning them
  by the integer shift within `max_shift` pixels that minimises their squared difference
  (compared over their overlap): a shifted copy is caught by structure, not only by
  distance.

Nearest neighbours are exact (FAISS `IndexFlatL2`). Thresholds are a pydantic config
(`MemorizationConfig`; None switches a check off) evaluated per image by the shared gate
machinery (`synthset.privacy.gate`: `Threshold` rows, one reason per failed check); the
release-level check (`max_rejected_share`: a model that reproduces more than that share of
its samples is blocked, whatever the filter removed) is a row of the same kind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from synthset.privacy.gate import GateResult, Threshold, apply_thresholds

IMAGE_CHECKS = (
    Threshold("ratio_threshold", "pixel_ratio", ">="),
    Threshold("embedding_ratio_threshold", "embedding_ratio", ">="),
    Threshold("ssim_threshold", "ssim", "<="),
)
RELEASE_CHECKS = (Threshold("max_rejected_share", "rejected_share", "<="),)
MATCH_PRIORITY = ("ssim", "pixel_ratio", "embedding_ratio")
"""Which failed check names the training image a rejected one copies: an aligned structural
match is the most specific evidence, the embedding's neighbour the least."""
EMBEDDING = "blurred {0}×{0} area average, centred, unit length"


class MemorizationConfig(BaseModel):
    """Thresholds and search settings of the memorization gate; a threshold of None is no
    check."""

    model_config = ConfigDict(extra="forbid")

    ratio_threshold: float | None = Field(
        default=0.5,
        gt=0,
        le=1,
        description="pixel space: nearest ÷ mean of the k nearest below it rejects",
    )
    embedding_ratio_threshold: float | None = Field(
        default=0.5,
        gt=0,
        le=1,
        description="embedding space: nearest ÷ mean of the k nearest below it rejects",
    )
    ssim_threshold: float | None = Field(
        default=0.95, gt=-1, le=1, description="SSIM with an aligned candidate above it rejects"
    )
    k: int = Field(default=5, ge=2, description="neighbours the ratio's mean is taken over")
    candidates: int = Field(default=2, ge=1, description="nearest per space compared by SSIM")
    max_shift: int = Field(default=2, ge=0, description="pixels of shift tried in SSIM alignment")
    embed_size: int = Field(default=8, ge=2, description="side of the embedding's average grid")
    max_rejected_share: float | None = Field(
        default=0.05, ge=0, le=1, description="share of rejected images above it blocks"
    )
    closest_pairs: int = Field(default=16, ge=0, description="pairs kept for the report")


@dataclass(frozen=True)
class ClosePair:
    """A synthetic image and the training image it is closest to, for the report."""

    synthetic: int
    training: int
    pixel_distance: float
    pixel_ratio: float
    embedding_ratio: float
    ssim: float
    rejected: bool
    reason: str | None


@dataclass
class MemorizationResult:
    """Per synthetic image: the decision, a reason when rejected, and what it rests on.

    `nearest_pixel`/`nearest_embedding` are training indices; `ssim_training` is the
    candidate with the highest aligned SSIM (`ssim`); `match` is the training image each
    decision points at (that of the failed check first in `MATCH_PRIORITY`, else the nearest
    in pixels).
    """

    config: MemorizationConfig
    embedding: str
    n_training: int
    rejected: np.ndarray
    reasons: list[str | None]
    nearest_pixel: np.ndarray
    pixel_distance: np.ndarray
    pixel_ratio: np.ndarray
    nearest_embedding: np.ndarray
    embedding_distance: np.ndarray
    embedding_ratio: np.ndarray
    ssim: np.ndarray
    ssim_training: np.ndarray
    match: np.ndarray
    gate: GateResult

    @property
    def passed(self) -> bool:
        """Whether the release-level checks pass (rejected images are dropped either way)."""
        return self.gate.passed

    @property
    def kept(self) -> np.ndarray:
        return ~self.rejected

    @property
    def closest_pairs(self) -> list[ClosePair]:
        """The most suspicious images first: rejected ones, then by their lowest ratio."""
        lowest = np.fmin(self.pixel_ratio, self.embedding_ratio)
        order = np.lexsort((np.nan_to_num(lowest, nan=np.inf), ~self.rejected))
        return [self._pair(int(i)) for i in order[: self.config.closest_pairs]]

    def _pair(self, i: int) -> ClosePair:
        return ClosePair(
            i,
            int(self.match[i]),
            float(self.pixel_distance[i]),
            float(self.pixel_ratio[i]),
            float(self.embedding_ratio[i]),
            float(self.ssim[i]),
            bool(self.rejected[i]),
            self.reasons[i],
        )

    def frame(self) -> pd.DataFrame:
        """One row per synthetic image (indices and numbers only: safe to publish)."""
        return pd.DataFrame(
            {
                "synthetic": np.arange(len(self.rejected)),
                "rejected": self.rejected,
                "reason": self.reasons,
                "match": self.match,
                "nearest_pixel": self.nearest_pixel,
                "pixel_distance": self.pixel_distance,
                "pixel_ratio": self.pixel_ratio,
                "nearest_embedding": self.nearest_embedding,
                "embedding_distance": self.embedding_distance,
                "embedding_ratio": self.embedding_ratio,
                "ssim": self.ssim,
                "ssim_training": self.ssim_training,
            }
        )

    def summary(self) -> dict[str, Any]:
        """Summary figures for the report, MLflow and Prefect (plain JSON types)."""
        n = len(self.rejected)
        failed = {c.metric: 0 for c in IMAGE_CHECKS}
        for reason in self.reasons:
            for metric in failed:
                failed[metric] += bool(reason and f"{metric} = " in reason)
        return {
            "synthetic": n,
            "training": self.n_training,
            "rejected": int(self.rejected.sum()),
            "rejected_share": float(self.rejected.mean()) if n else 0.0,
            "rejected_by_check": failed,
            "pixel_ratio": _quantiles(self.pixel_ratio, (0, 0.05, 0.5)),
            "embedding_ratio": _quantiles(self.embedding_ratio, (0, 0.05, 0.5)),
            "ssim": _quantiles(self.ssim, (0.5, 0.95, 1)),
            "embedding": self.embedding,
            "config": self.config.model_dump(),
            "passed": self.passed,
            "gate": self.gate.to_dict(),
        }


def _quantiles(values: np.ndarray, qs: tuple[float, ...]) -> dict[str, float | None]:
    finite = values[np.isfinite(values)]
    names = {0: "min", 1: "max"}
    return {
        names.get(q, f"p{round(q * 100)}"): (float(np.quantile(finite, q)) if len(finite) else None)
        for q in qs
    }


def check_memorization(
    synthetic: np.ndarray,
    training: np.ndarray,
    ratio_threshold: float | None = 0.5,
    ssim_threshold: float | None = 0.95,
    k: int = 5,
    embed: Callable[[np.ndarray], np.ndarray] | None = None,
    **options: Any,
) -> MemorizationResult:
    """Check every image of `synthetic` (N, H, W) against `training` (M, H, W), both in
    [0, 1]. `options` are the other fields of `MemorizationConfig`; `embed` replaces the
    built-in embedding (images → float vectors, one row per image)."""
    config = MemorizationConfig(
        ratio_threshold=ratio_threshold, ssim_threshold=ssim_threshold, k=k, **options
    )
    return check_with_config(synthetic, training, config, embed)


def check_with_config(
    synthetic: np.ndarray,
    training: np.ndarray,
    config: MemorizationConfig,
    embed: Callable[[np.ndarray], np.ndarray] | None = None,
) -> MemorizationResult:
    """`check_memorization` with a ready config (as a release config holds it)."""
    synthetic, training = _checked(synthetic, "synthetic"), _checked(training, "training")
    if synthetic.shape[1:] != training.shape[1:]:
        raise ValueError(
            f"synthetic images are {synthetic.shape[1:]} and training images "
            f"{training.shape[1:]}: resample one set to the other's size"
        )
    if len(training) < 2:
        raise ValueError("the memorization gate needs at least 2 training images")
    k = min(config.k, len(training))
    p_index, p_dist, p_ratio = shifted_neighbours(synthetic, training, k, config.max_shift)
    if embed is None:
        emb_s, emb_t = (
            embedding(synthetic, config.embed_size),
            embedding(training, config.embed_size),
        )
        described = EMBEDDING.format(config.embed_size)
    else:
        emb_s, emb_t = np.asarray(embed(synthetic)), np.asarray(embed(training))
        described = f"custom: {getattr(embed, '__name__', type(embed).__name__)}"
    e_index, e_dist, e_ratio = _ratios(emb_s, emb_t, k)
    wanted = min(config.candidates, k)
    best_ssim = np.full(len(synthetic), np.nan)
    best_at = np.full(len(synthetic), -1, np.int64)
    if config.ssim_threshold is not None:
        for i in range(len(synthetic)):
            pool = np.unique(np.concatenate([p_index[i, :wanted], e_index[i, :wanted]]))
            scores = [aligned_ssim(synthetic[i], training[j], config.max_shift) for j in pool]
            best = int(np.argmax(scores))
            best_ssim[i], best_at[i] = scores[best], pool[best]
    rejected = np.zeros(len(synthetic), bool)
    reasons: list[str | None] = []
    match = p_index[:, 0].copy()
    for i in range(len(synthetic)):
        values = {"pixel_ratio": p_ratio[i], "embedding_ratio": e_ratio[i], "ssim": best_ssim[i]}
        at = {
            "pixel_ratio": int(p_index[i, 0]),
            "embedding_ratio": int(e_index[i, 0]),
            "ssim": int(best_at[i]),
        }
        details = {m: f"training image {j}" for m, j in at.items()}
        verdict = apply_thresholds(values, config, IMAGE_CHECKS, details)
        if verdict.passed:
            reasons.append(None)
            continue
        failed = {c["metric"] for c in verdict.checks if c["status"] == "fail"}
        first = next(m for m in MATCH_PRIORITY if m in failed)
        rejected[i], match[i] = True, at[first]
        reasons.append(f"near copy of training image {at[first]}: " + "; ".join(verdict.reasons))
    share = float(rejected.mean()) if len(rejected) else 0.0
    gate = apply_thresholds(
        {"rejected_share": share},
        config,
        RELEASE_CHECKS,
        {"rejected_share": f"{int(rejected.sum())} of {len(rejected)} synthetic images"},
    )
    return MemorizationResult(
        config,
        described,
        len(training),
        rejected,
        reasons,
        p_index[:, 0],
        p_dist[:, 0],
        p_ratio,
        e_index[:, 0],
        e_dist[:, 0],
        e_ratio,
        best_ssim,
        best_at,
        match,
        gate,
    )


def _checked(images: np.ndarray, name: str) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"{name} images must be an array (N, H, W), got shape {images.shape}")
    if not np.isfinite(images).all():
        raise ValueError(f"{name} images hold NaN or infinite values")
    return images


def embedding(images: np.ndarray, size: int = 8) -> np.ndarray:
    """Each image blurred and area-averaged to `size` × `size`, centred and scaled to unit
    length (float32, one row per image): near for shifted, noised or re-contrasted copies."""
    from skimage.transform import resize

    n, h, w = images.shape
    small = resize(images, (n, size, size), order=1, anti_aliasing=True, preserve_range=True)
    if (h, w) == (size, size):
        from scipy.ndimage import gaussian_filter

        small = gaussian_filter(images, sigma=(0, 0.5, 0.5))
    vectors = small.reshape(n, -1).astype(np.float64)
    vectors -= vectors.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-6)).astype(np.float32)


SMALL_SEARCH = 2_000_000
"""Query × reference pairs below which FAISS searches on one thread: starting its OpenMP
team costs more than a small search, several times more on a busy machine."""


@contextlib.contextmanager
def _threads(pairs: int) -> Iterator[None]:
    import faiss

    before = faiss.omp_get_max_threads()
    if pairs < SMALL_SEARCH:
        faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _flat_index(reference: np.ndarray):
    import faiss

    reference = np.ascontiguousarray(reference.reshape(len(reference), -1), dtype=np.float32)
    index = faiss.IndexFlatL2(reference.shape[1])
    index.add(reference)
    return index


def _ratio(distances: np.ndarray) -> np.ndarray:
    mean = distances.mean(axis=1)
    safe = np.where(mean > 0, mean, 1.0)
    return np.where(mean > 0, distances[:, 0] / safe, 0.0)


def _ratios(queries: np.ndarray, reference: np.ndarray, k: int):
    """(indices, distances, ratio) of the k nearest reference rows of each query row (L2)."""
    flat = np.ascontiguousarray(queries.reshape(len(queries), -1), dtype=np.float32)
    with _threads(len(queries) * len(reference)):
        squared, indices = _flat_index(reference).search(flat, k)
    distances = np.sqrt(np.maximum(squared, 0)).astype(np.float64)
    return indices.astype(np.int64), distances, _ratio(distances)


def shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`images` (N, H, W) moved by (dy, dx) pixels, the uncovered border repeating the edge."""
    if dy == dx == 0:
        return images
    s = max(abs(dy), abs(dx))
    padded = np.pad(images, ((0, 0), (s, s), (s, s)), mode="edge")
    h, w = images.shape[1:]
    return padded[:, s - dy : s - dy + h, s - dx : s - dx + w]


def shifted_neighbours(synthetic: np.ndarray, training: np.ndarray, k: int, max_shift: int):
    """The k nearest training images by pixel distance minimised over shifts of the synthetic
    image of up to `max_shift` pixels each way: (indices, distances, ratio).

    Exact: a training image among the k nearest at its best shift is among the k nearest of
    that shift's own search, so the union of every shift's k nearest holds them all.
    """
    index = _flat_index(training)
    n = len(synthetic)
    found_d, found_i = [], []
    with _threads(n * len(training)):
        for dy in range(-max_shift, max_shift + 1):
            for dx in range(-max_shift, max_shift + 1):
                moved = np.ascontiguousarray(shift(synthetic, dy, dx).reshape(n, -1), np.float32)
                squared, indices = index.search(moved, k)
                found_d.append(squared)
                found_i.append(indices)
    squared, indices = np.concatenate(found_d, axis=1), np.concatenate(found_i, axis=1)
    out_i, out_d = np.empty((n, k), np.int64), np.empty((n, k))
    for row in range(n):
        order = np.argsort(squared[row], kind="stable")
        ids, first = np.unique(indices[row, order], return_index=True)
        best = np.sort(first)[:k]
        out_i[row], out_d[row] = indices[row, order[best]], squared[row, order[best]]
    distances = np.sqrt(np.maximum(out_d, 0))
    return out_i, distances, _ratio(distances)


def aligned_ssim(image: np.ndarray, other: np.ndarray, max_shift: int = 2) -> float:
    """SSIM of `image` and `other` after moving `other` by the integer shift (within
    `max_shift` pixels) that minimises their mean squared difference, over their overlap."""
    from skimage.metrics import structural_similarity

    h, w = image.shape
    best, best_parts = np.inf, (image, other)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            a = image[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
            b = other[max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
            if min(a.shape) < 7:
                continue
            mse = float(np.mean((a - b) ** 2))
            if mse < best:
                best, best_parts = mse, (a, b)
    a, b = best_parts
    window = min(7, *a.shape)
    window -= 1 - window % 2
    return float(structural_similarity(a, b, data_range=1.0, win_size=window))
