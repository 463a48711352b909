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
from synthset.storage.digest import TABLE_FILE, is_table_version, version_digest
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
    def kind(self) -> str:
        """`images` or `table` (a synthetic table)."""
        return "table" if is_table_version(self.path) else "images"

    def to_pandas(self) -> pd.DataFrame:
        """The metadata table, with `image_path` holding each image's absolute path; for a
        tabular version, the synthetic table."""
        if self.kind == "table":
            return pd.read_parquet(self.path / TABLE_FILE)
        frame = pd.read_parquet(self.path / "metadata.parquet")
        frame.insert(2, "image_path", [str(self.path / f) for f in frame["file_name"]])
        return frame

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

    def to_torch(self, transform: Callable[[Image.Image], Any] | None = None) -> ImageDataset:
        """A `torch.utils.data.Dataset` of `{"image": tensor, **metadata}` dicts."""
        if self.kind == "table":
            raise SynthsetError(f"{self.name}@v{self.version} is a table; use to_pandas()")
        return ImageDataset(self.to_pandas(), transform)

    def to_hf(self) -> Any:
        """The version as a Hugging Face `datasets.Dataset` (imagefolder with metadata)."""
        import datasets

        if self.kind == "table":
            return datasets.Dataset.from_pandas(self.to_pandas(), preserve_index=False)
        return datasets.load_dataset("imagefolder", data_dir=str(self.path), split="train")


def _to_tensor(image: Image.Image) -> Any:
    import torch

    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


class ImageDataset:
    """Images as CHW float tensors in [0, 1] (or `transform(image)`), with their metadata row.

    Tags are lists of varying length, so batch with `collate_fn=ImageDataset.collate`.
    """

    def __init__(self, frame: pd.DataFrame, transform: Callable[[Image.Image], Any] | None = None):
        self.frame = frame.reset_index(drop=True)
        self.transform = transform or _to_tensor

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.frame.iloc[i].to_dict()
        row["tags"] = list(row["tags"])
        with Image.open(row["image_path"]) as image:
            row["image"] = self.transform(image)
        return row

    @staticmethod
    def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        """Stack images into one tensor; keep every other field as a list."""
        import torch

        out = {key: [item[key] for item in batch] for key in batch[0]}
        out["image"] = torch.stack(out["image"])
        return out


def _is_verified(folder: Path, digest: str) -> bool:
    has_data = (folder / "metadata.parquet").is_file() or is_table_version(folder)
    return has_data and version_digest(folder) == digest


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
