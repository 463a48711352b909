"""Push and pull of a version's images through a real MLflow server: one request per file
(the path before tar shards) against `synthset.storage.transfer`'s shards, in one run.

Starts a private `mlflow server` (SQLite, proxied artifacts) on a free port, writes a
version folder of N random 64×64 PNGs with its `metadata.parquet`, then times, for each
path, the upload as an MLflow run's `dataset/` artifacts and the download back into an
imagefolder layout (the sharded path unpacks its tars). Prints images/s and the ratios.

    python bench/transfer.py [--images 10000] [--workers 8]
"""

from __future__ import annotations

import argparse
import os
import posixpath
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synthset import servers  # noqa: E402
from synthset.storage.transfer import unpack  # noqa: E402
from synthset.storage.versioning import ARTIFACT_PATH, _upload_folder  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_version(folder: Path, n: int) -> None:
    """N distinct 64×64 PNGs (smooth noise, about the size of a small generated image)."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    names = []
    for i in range(n):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((64, 64), Image.BILINEAR)
        names.append(f"images/{i:08x}.png")
        image.save(folder / names[-1])
    pd.DataFrame({"sample_id": [f"{i:08x}" for i in range(n)], "file_name": names}).to_parquet(
        folder / "metadata.parquet"
    )


def push_per_file(client, run_id: str, folder: Path, workers: int) -> None:
    """Every file as its own artifact, `workers` at a time (synthset's path before shards)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    targets = [posixpath.join(ARTIFACT_PATH, *p.relative_to(folder).parent.parts) for p in files]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda f, t: client.log_artifact(run_id, str(f), t), files, targets))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="synthset-transfer-"))
    os.environ["SYNTHSET_STATE"] = str(work / "state")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    url = f"http://127.0.0.1:{_free_port()}"
    service = servers.Service("mlflow", url, url + "/health", url)
    print(f"mlflow server at {url}: {servers.start(service)}", flush=True)
    try:
        from mlflow import MlflowClient

        client = MlflowClient(url)
        make_version(work / "v1", args.images)
        size = sum(p.stat().st_size for p in (work / "v1" / "images").iterdir())
        print(f"{args.images} images, {size / 2**20:.1f} MiB", flush=True)
        exp = client.create_experiment("transfer-bench")
        old, new = client.create_run(exp).info.run_id, client.create_run(exp).info.run_id
        rows = []
        push_old = timed(lambda: push_per_file(client, old, work / "v1", args.workers))
        push_new = timed(lambda: _upload_folder(client, new, work / "v1", args.workers))
        pull_old = timed(lambda: client.download_artifacts(old, ARTIFACT_PATH, str(work / "a")))

        def pull_sharded() -> None:
            client.download_artifacts(new, ARTIFACT_PATH, str(work / "b"))
            unpack(work / "b" / ARTIFACT_PATH)

        pull_new = timed(pull_sharded)
        a = sorted(p.name for p in (work / "a" / ARTIFACT_PATH / "images").iterdir())
        b = sorted(p.name for p in (work / "b" / ARTIFACT_PATH / "images").iterdir())
        assert a == b and len(a) == args.images
        for name, old_s, new_s in (("push", push_old, push_new), ("pull", pull_old, pull_new)):
            rows.append(
                f"{name:<5} per-file {args.images / old_s:8.0f} img/s ({old_s:6.1f} s)   "
                f"shards {args.images / new_s:8.0f} img/s ({new_s:6.1f} s)   "
                f"speed-up {old_s / new_s:5.1f}x"
            )
        print("\n".join(rows))
    finally:
        print(f"mlflow server: {servers.stop(service)}")


if __name__ == "__main__":
    main()
