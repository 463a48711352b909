"""Reference sets of real images that a version's fidelity is measured against.

- `synthset/digits`: scikit-learn's held-out digits (the split the default models never saw),
  rendered like their training data: 32×32, a random ink on a random background colour;
- a folder of images, searched recursively, or an imagefolder dataset (a `metadata.csv`,
  `.jsonl` or `.parquet` with `file_name` names its images);
- a dataset version `NAME@VERSION` (or `NAME@ALIAS`), pulled and verified from the registry.

Each has an identity (what determines its images: a folder by its file names, sizes and
modification times, a version by its digest) that keys the cached features; a reference
larger than `MAX_IMAGES` is measured on a fixed random sample of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from synthset.errors import SynthsetError
from synthset.quality.config import BUILTIN_DIGITS
from synthset.quality.features import FeatureSpace, cached_features, version_features

MAX_IMAGES = 10_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
METADATA_FILES = ("metadata.parquet", "metadata.jsonl", "metadata.csv")
DIGITS_SEED = 1


@dataclass(frozen=True)
class Reference:
    """A set of real images: `spec` as the user gave it, its identity and its size."""

    spec: str
    kind: str
    identity: dict[str, Any]
    description: str
    images: int

    def features(self, space: FeatureSpace) -> np.ndarray:
        """Its features in `space`, computed once and cached."""
        return cached_features(
            {"reference": self.identity, "features": space.identity},
            lambda: self._embed(space),
        )

    def _embed(self, space: FeatureSpace) -> np.ndarray:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "kind": self.kind,
            "description": self.description,
            "images": self.images,
            "identity": self.identity,
        }


class DigitsReference(Reference):
    def _embed(self, space: FeatureSpace) -> np.ndarray:
        return space.embed([Image.fromarray(a) for a in digits_images()])


def digits_images() -> np.ndarray:
    """The held-out scikit-learn digits as uint8 (N, 32, 32, 3), coloured like training data."""
    from synthset.models.digits import coloured_dataset, load_split

    images, _, _ = coloured_dataset(load_split("test"), copies=1, seed=DIGITS_SEED)
    return images


def _digits() -> Reference:
    from synthset.models.digits import load_split

    n = len(load_split("test").labels)
    identity = {"kind": "builtin", "name": BUILTIN_DIGITS, "split": "test", "seed": DIGITS_SEED}
    return DigitsReference(
        BUILTIN_DIGITS,
        "builtin",
        identity,
        f"scikit-learn digits, held-out split ({n} images, never seen in training), "
        "32×32 with a random ink and background colour as in training",
        n,
    )


@dataclass(frozen=True)
class FolderReference(Reference):
    root: Path = Path()
    files: tuple[str, ...] = ()

    def _embed(self, space: FeatureSpace) -> np.ndarray:
        return space.embed_files([self.root / f for f in self.files])


def _listed(folder: Path) -> list[str] | None:
    """File names an imagefolder's metadata file lists, or None when there is none."""
    for name in METADATA_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".parquet"):
            frame = pd.read_parquet(path, columns=["file_name"])
        elif name.endswith(".jsonl"):
            frame = pd.read_json(path, lines=True)
        else:
            frame = pd.read_csv(path)
        if "file_name" not in frame:
            raise SynthsetError(f"{path}: an imagefolder's metadata needs a file_name column")
        return sorted(str(f) for f in frame["file_name"].dropna())
    return None


def _folder(spec: str, folder: Path) -> Reference:
    listed = _listed(folder)
    kind = "folder" if listed is None else "imagefolder"
    if listed is None:
        listed = sorted(
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
    missing = [f for f in listed if not (folder / f).is_file()]
    if missing:
        raise SynthsetError(f"reference {spec}: {missing[0]} is listed but not there")
    if not listed:
        raise SynthsetError(f"reference {spec}: no images ({', '.join(IMAGE_SUFFIXES)}) in it")
    total = len(listed)
    if total > MAX_IMAGES:
        keep = np.random.default_rng(0).choice(total, MAX_IMAGES, replace=False)
        listed = [listed[i] for i in sorted(keep)]
    h = hashlib.sha256()
    for name in listed:
        stat = (folder / name).stat()
        h.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    identity = {"kind": kind, "name": folder.name, "files": len(listed), "listing": h.hexdigest()}
    sampled = f" (a fixed sample of {len(listed)} of {total})" if total > len(listed) else ""
    return FolderReference(
        folder.name if Path(spec).is_absolute() else spec,
        kind,
        identity,
        f"{kind} {folder.name}: {total} images{sampled}",
        len(listed),
        folder,
        tuple(listed),
    )


@dataclass(frozen=True)
class VersionReference(Reference):
    folder: Path = Path()

    def _embed(self, space: FeatureSpace) -> np.ndarray:
        metadata = pd.read_parquet(self.folder / "metadata.parquet")
        return version_features(self.folder, metadata, space)


def _version(spec: str, tracking_uri: str | None) -> Reference:
    from synthset.storage.pull import pull
    from synthset.storage.versioning import parse_ref

    name, ref = parse_ref(spec)
    pulled = pull(name, ref, tracking_uri=tracking_uri)
    n = len(pd.read_parquet(pulled.path / "metadata.parquet", columns=["sample_id"]))
    identity = {"kind": "version", "name": name, "version": pulled.version}
    identity["digest"] = pulled.digest
    return VersionReference(
        spec, "version", identity, f"dataset {name}@v{pulled.version} ({n} images)", n, pulled.path
    )


def resolve_reference(spec: str, tracking_uri: str | None = None) -> Reference:
    """The reference `spec` names (see the module docstring); a `SynthsetError` naming it
    when it is none of them or cannot be read."""
    if spec == BUILTIN_DIGITS:
        return _digits()
    path = Path(spec).expanduser()
    if path.is_dir():
        return _folder(spec, path.resolve())
    if "@" in spec and not path.exists():
        return _version(spec, tracking_uri)
    raise SynthsetError(
        f"reference {spec!r} is not {BUILTIN_DIGITS}, a folder of images, an imagefolder "
        "dataset or a version NAME@VERSION"
    )
