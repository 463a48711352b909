"""Pull a dataset version from MLflow into a local folder, verified, and hand it to pandas,
torch or Hugging Face datasets."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from synthset.atomic import atomic_path
from synthset.errors import DigestMismatch, SynthsetError
from synthset.layout import cache_dir
from synthset.storage.formats import ImageDataset, VersionFormat, format_of, version_digest
from synthset.storage.transfer import unpack
from synthset.storage.versioning import ARTIFACT_PATH, VersionInfo, _client, resolve_version


@dataclass(frozen=True)
class PulledDataset:
    """A verified local copy of one dataset version."""

    name: str
    version: int
    digest: str
    path: Path

    @property
    def format(self) -> type[VersionFormat]:
        found = format_of(self.path)
        if found is None:
            raise SynthsetError(f"{self.path} holds no known version format")
        return found

    @property
    def kind(self) -> str:
        """`images` or `table` (a synthetic table): the version's format (`storage.formats`)."""
        return self.format.kind

    def to_pandas(self) -> pd.DataFrame:
        """The metadata table, with `image_path` holding each image's absolute path; for a
        tabular version, the synthetic table."""
        return self.format.to_pandas(self.path)

    def embeddings(self) -> np.ndarray:
        """The float16 CLIP image embeddings, one row per `to_pandas()` row, same order.

        They come from `index/` of a curated version; `curation.json` names the CLIP model.
        """
        folder = self.path / "index"
        if not (folder / "embeddings.npy").is_file():
            raise SynthsetError(
                f"{self.name}@v{self.version} has no embeddings: it was published without "
                "curation (curation.enabled: false)"
            )
        ids = pd.read_parquet(folder / "ids.parquet")["sample_id"]
        position = pd.Series(np.arange(len(ids)), index=ids.to_numpy())
        order = position.loc[pd.read_parquet(self.path / "metadata.parquet")["sample_id"]]
        return np.load(folder / "embeddings.npy")[order.to_numpy()]

    def to_torch(
        self,
        transform: Callable[[Image.Image], Any] | None = None,
        condition_transform: Callable[[Image.Image], Any] | None = None,
    ) -> ImageDataset:
        """A `torch.utils.data.Dataset` of `{"image": tensor, **metadata}` dicts: label
        columns as their values, condition images as tensors (None where a row has none);
        batch it with `collate_fn=ImageDataset.collate`."""
        return self.format.to_torch(self.path, transform, condition_transform)

    def to_hf(self) -> Any:
        """The version as a Hugging Face `datasets.Dataset` (imagefolder with metadata)."""
        return self.format.to_hf(self.path)


def _is_verified(folder: Path, digest: str) -> bool:
    return format_of(folder) is not None and version_digest(folder) == digest


def _download(info: VersionInfo, dest: Path, tracking_uri: str | None) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with atomic_path(dest, folder=True) as tmp:
        _client(tracking_uri).download_artifacts(info.run_id, ARTIFACT_PATH, str(tmp))
        for child in (tmp / ARTIFACT_PATH).iterdir():
            os.replace(child, tmp / child.name)
        (tmp / ARTIFACT_PATH).rmdir()
        unpack(tmp)
        got = version_digest(tmp)
        if got != info.digest:
            raise DigestMismatch(
                f"{info.name}@v{info.version}: downloaded files hash to {got}, "
                f"but the version's digest is {info.digest}; nothing was kept"
            )


def pull(
    name: str,
    version: str | int | None = None,
    *,
    tracking_uri: str | None = None,
    to: str | Path | None = None,
) -> PulledDataset:
    """Fetch `name` at a version number or alias (default `latest`) and verify its digest.

    Files go to `to` (which must be empty or absent, or already hold this version) or to the
    cache folder. A verified local copy is reused; a copy whose digest does not match the
    recorded one raises `DigestMismatch` and is not kept.
    """
    info = resolve_version(name, version, tracking_uri)
    dest = Path(to) if to else cache_dir() / "datasets" / name / f"v{info.version}"
    dest = dest.resolve()
    if not _is_verified(dest, info.digest):
        if to is None:
            shutil.rmtree(dest, ignore_errors=True)
        if dest.exists() and any(dest.iterdir()):
            raise SynthsetError(
                f"{dest} is not empty and does not hold {name}@v{info.version}; "
                "pull into an empty or new folder"
            )
        _download(info, dest, tracking_uri)
    return PulledDataset(name, info.version, info.digest, dest)
