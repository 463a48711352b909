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
    def to_torch(
        cls,
        folder: Path,
        transform: Callable[[Image.Image], Any] | None,
        condition_transform: Callable[[Image.Image], Any] | None = None,
    ) -> Any:
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
    def to_torch(
        cls,
        folder: Path,
        transform: Callable[[Image.Image], Any] | None,
        condition_transform: Callable[[Image.Image], Any] | None = None,
    ) -> Any:
        return ImageDataset(cls.to_pandas(folder), transform, folder, condition_transform)

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


def _to_tensor(image: Image.Image, mode: str = "RGB") -> Any:
    import torch

    array = np.asarray(image.convert(mode), dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _plain(value: Any, floats: bool) -> Any:
    """A cell as plain Python: numpy scalars as numbers, arrays as lists, missing as None (NaN
    too, unless the column holds floats)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if (
        value is pd.NA
        or value is pd.NaT
        or (not floats and isinstance(value, float) and value != value)
    ):
        return None
    return value


CONDITIONS = {"condition_image": "RGB", "condition_mask": "L", "condition_control": "RGB"}
"""Condition columns a torch sample loads as images, and the mode each is read in."""


class ImageDataset:
    """Images as CHW float tensors in [0, 1] (or `transform(image)`), with their metadata row.

    Condition images (img2img, inpainting, ControlNet) are loaded too, as tensors (RGB; the
    mask as one channel) or `condition_transform(image)`, and are None where a row has none.
    Batch with `collate_fn=ImageDataset.collate`.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        transform: Callable[[Image.Image], Any] | None = None,
        folder: Path | None = None,
        condition_transform: Callable[[Image.Image], Any] | None = None,
    ):
        self.frame = frame.reset_index(drop=True)
        self.transform = transform or _to_tensor
        self.folder = folder
        self.condition_transform = condition_transform
        self.floats = {c for c in self.frame.columns if pd.api.types.is_float_dtype(self.frame[c])}

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = {k: _plain(v, k in self.floats) for k, v in self.frame.iloc[i].items()}
        row["tags"] = list(row["tags"] or [])
        with Image.open(row["image_path"]) as image:
            row["image"] = self.transform(image)
        for column, mode in CONDITIONS.items():
            name = row.get(column)
            if column in row and self.folder is not None:
                row[column] = self._condition(name, mode) if isinstance(name, str) else None
        return row

    def _condition(self, name: str, mode: str) -> Any:
        with Image.open(Path(self.folder or ".") / name) as image:
            if self.condition_transform is not None:
                return self.condition_transform(image)
            return _to_tensor(image, mode)

    @staticmethod
    def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        """One batch: images stacked; each condition stacked with zeros where a row has none,
        next to a `has_<condition>` bool tensor (None when no row has one; a list when the
        images differ in size); numbers and booleans as tensors when every row has one (int64,
        float32, bool); everything else (text, tags, lists, missing values) as lists."""
        import torch

        out: dict[str, Any] = {}
        for key in batch[0]:
            values = [item[key] for item in batch]
            if key in CONDITIONS:
                out[f"has_{key}"] = torch.tensor([v is not None for v in values])
                out[key] = _stack_present(values)
            elif key == "image":
                out[key] = _stack_present(values)
            else:
                out[key] = _as_tensor(values)
        return out


def _stack_present(values: list[Any]) -> Any:
    """Tensors of one shape stacked, zeros where a value is None; else the list."""
    import torch

    present = [v for v in values if v is not None]
    if not present:
        return None
    first = present[0]
    if not all(isinstance(v, torch.Tensor) and v.shape == first.shape for v in present):
        return values
    return torch.stack([torch.zeros_like(first) if v is None else v for v in values])


def _as_tensor(values: list[Any]) -> Any:
    import torch

    if all(isinstance(v, bool) for v in values):
        return torch.tensor(values, dtype=torch.bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return torch.tensor(values, dtype=torch.int64)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return torch.tensor(values, dtype=torch.float32)
    return values
