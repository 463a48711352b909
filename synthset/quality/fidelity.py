"""How close generated images are to real ones, measured on features of both sets.

- Fréchet distance (Heusel et al. 2017): between Gaussians fitted to the two sets; clean-fid's
  `frechet_distance` on our means and covariances.
- KID (Bińkowski et al. 2018): the unbiased MMD² with the cubic polynomial kernel, averaged
  over random subsets; clean-fid's `kernel_distance`, its subsets drawn from a fixed seed.
- Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020):
  k-nearest-neighbour balls around real and generated features; `prdc.compute_prdc`.

FD is biased upward at small n, and with fewer images than dimensions the covariance is
singular: compare FDs of equal n only. `fd_floor` is the FD of as many real images, held
apart, against the rest of the reference: what a generator matching the reference exactly
would score at this n. Every figure comes with the number of images it was computed on.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any

import numpy as np

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
PRDC_MAX = 5000
SMALL_SUBSET = 512
"""KID subsets up to this size are multiplied on one BLAS thread: faster than many threads
for small matrices, and unaffected by other processes on a busy machine."""
SEED = 0


@contextlib.contextmanager
def _quiet_seeded(seed: int) -> Iterator[None]:
    """numpy's global generator at `seed` (clean-fid draws KID subsets from it) and stdout
    silenced (clean-fid and prdc print), both restored afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        np.random.set_state(state)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FD between the Gaussians fitted to feature sets `a` and `b` (≥ 2 rows each)."""
    from cleanfid.fid import frechet_distance as fd

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with _quiet_seeded(SEED):
        value = fd(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    return float(max(value, 0.0))


def kernel_distance(a: np.ndarray, b: np.ndarray, seed: int = SEED) -> float:
    """KID between feature sets `a` and `b` (≥ 2 rows each); may be slightly negative when
    the sets are alike, as an unbiased estimate does."""
    from cleanfid.fid import kernel_distance as kid
    from threadpoolctl import threadpool_limits

    small = min(len(a), len(b)) <= SMALL_SUBSET
    with _quiet_seeded(seed), threadpool_limits(1 if small else None):
        return float(kid(np.asarray(a, np.float64), np.asarray(b, np.float64), KID_SUBSETS))


def _subsample(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(x) <= n:
        return x
    return x[np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))]


def prdc(real: np.ndarray, fake: np.ndarray, nearest_k: int = 5) -> dict[str, Any] | None:
    """Precision, recall, density and coverage of `fake` against `real`, with the k used:
    at most `nearest_k`, fewer when a set is too small (each needs k + 2 rows), None when
    one has fewer than 3. Sets larger than `PRDC_MAX` are subsampled (fixed seed)."""
    from prdc import compute_prdc

    real = _subsample(np.asarray(real, np.float32), PRDC_MAX, SEED)
    fake = _subsample(np.asarray(fake, np.float32), PRDC_MAX, SEED + 1)
    k = min(nearest_k, len(real) - 2, len(fake) - 2)
    if k < 1:
        return None
    with _quiet_seeded(SEED):
        values = compute_prdc(real, fake, k)
    out: dict[str, Any] = {name: float(v) for name, v in values.items()}
    return {**out, "k": k, "real_images": len(real), "generated_images": len(fake)}


def fd_floor(reference: np.ndarray, n: int, seed: int = SEED) -> dict[str, Any] | None:
    """FD of `n` reference rows held apart against the other rows (n at most half of them),
    or None when the reference is too small to split."""
    n = min(n, len(reference) // 2)
    if n < 2:
        return None
    order = np.random.default_rng(seed).permutation(len(reference))
    held, rest = reference[order[:n]], reference[order[n:]]
    return {"fd": frechet_distance(held, rest), "images": n, "against": len(rest)}


def fidelity(generated: np.ndarray, reference: np.ndarray, nearest_k: int = 5) -> dict[str, Any]:
    """Every fidelity figure of `generated` against `reference` with the counts behind it;
    figures that need more images than there are are None, with a note saying why."""
    n, m = len(generated), len(reference)
    out: dict[str, Any] = {"generated_images": n, "reference_images": m, "dim": None}
    out["dim"] = int(generated.shape[1]) if generated.ndim == 2 and n else None
    if n < 2 or m < 2:
        out |= {"fd": None, "kid": None, "fd_floor": None, "prdc": None}
        out["note"] = "FD, KID and PRDC need at least 2 generated and 2 reference images"
        return out
    out["fd"] = frechet_distance(generated, reference)
    out["kid"] = kernel_distance(generated, reference)
    out["kid_subsets"] = KID_SUBSETS
    out["kid_subset_size"] = min(n, m, KID_SUBSET_SIZE)
    out["fd_floor"] = fd_floor(reference, n)
    out["prdc"] = prdc(reference, generated, nearest_k)
    dim = out["dim"] or 0
    out["note"] = (
        f"FD on {n} generated and {m} reference images in a {dim}-dimensional space"
        + (" (fewer images than dimensions: a singular covariance)" if min(n, m) <= dim else "")
        + "; FD falls as n grows, so compare it with fd_floor and with FDs of equal n only"
    )
    return out
