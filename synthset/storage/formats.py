"""Version formats: how a version folder is recognised, hashed and handed to pandas, torch and
Hugging Face datasets. One small class per format, registered by `kind`; `format_of` finds a
folder's format, so pulling and verifying never branch on the kind themselves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from PIL import Image

from synthset.errors import SynthsetError
from synthset.storage.digest import TABLE_FILE, content_digest, tree_digest

METADATA = "metadata.parquet"


class VersionFormat:
    """What a kind of version folder holds and how it is read."""

    kind: ClassVar[str]

    @staticmethod
    def matches(folder: Path) -> bool:
        raise NotImplementedError

    @staticmethod
    def digest(folder: Path) -> str:
        raise NotImplementedError

    @staticmethod
    def to_pandas(folder: Path) -> pd.DataFrame:
        raise NotImplementedError

    @classmethod
    def to_torch(cls, folder: Path, transform: Callable[[Image.Image], Any] | None) -> Any:
        raise SynthsetError(f"a {cls.kind} version has no torch view; use to_pandas()")

    @classmethod
    def to_hf(cls, folder: Path) -> Any:
        import datasets

        return datasets.Dataset.from_pandas(cls.to_pandas(folder), preserve_index=False)


FORMATS: dict[str, type[VersionFormat]] = {}


def register(cls: type[VersionFormat]) -> type[VersionFormat]:
    FORMATS[cls.kind] = cls
    return cls


def format_of(folder: str | Path) -> type[VersionFormat] | None:
    """The format whose files `folder` holds, or None."""
    return next((f for f in FORMATS.values() if f.matches(Path(folder))), None)


def version_digest(folder: str | Path) -> str:
    """Recompute the digest of a version folder the way its format defines it (images and
    metadata; every file of a table)."""
    found = format_of(folder)
    if found is None:
        raise FileNotFoundError(f"{folder} holds no dataset version")
    return found.digest(Path(folder))


@register
class ImageFolder(VersionFormat):
    """`images/` and `metadata.parquet` (one row per image, `file_name` relative), the layout
    Hugging Face's `imagefolder` loads."""

    kind = "images"

    @staticmethod
    def matches(folder: Path) -> bool:
        return (folder / METADATA).is_file()

    @staticmethod
    def digest(folder: Path) -> str:
        return content_digest(folder, pd.read_parquet(folder / METADATA))

    @staticmethod
    def to_pandas(folder: Path) -> pd.DataFrame:
        frame = pd.read_parquet(folder / METADATA)
        frame.insert(2, "image_path", [str(folder / f) for f in frame["file_name"]])
        return frame

    @classmethod
    def to_torch(cls, folder: Path, transform: Callable[[Image.Image], Any] | None) -> Any:
        return ImageDataset(cls.to_pandas(folder), transform)

    @classmethod
    def to_hf(cls, folder: Path) -> Any:
        import datasets

        return datasets.load_dataset("imagefolder", data_dir=str(folder), split="train")


@register
class Table(VersionFormat):
    """A synthetic table, `data.parquet`, with its schema, privacy record and card."""

    kind = "table"

    @staticmethod
    def matches(folder: Path) -> bool:
        return (folder / TABLE_FILE).is_file() and not (folder / METADATA).is_file()

    @staticmethod
    def digest(folder: Path) -> str:
        return tree_digest(folder)

    @staticmethod
    def to_pandas(folder: Path) -> pd.DataFrame:
        return pd.read_parquet(folder / TABLE_FILE)


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
