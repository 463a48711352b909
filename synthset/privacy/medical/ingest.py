"""Reading private images: a folder of DICOM files, or of PNG or NPY images, with an optional
labels file, into float32 arrays (N, size, size) in [0, 1], integer labels and per-image
metadata that is safe to publish.

- **Which files.** Every file under the folder, in sorted order of its relative path, that
  ends in `.dcm`/`.dicom` or starts with the DICOM preamble (`DICM` at byte 128), `.png` or
  `.npy`; hidden files and others are skipped. A folder with none is refused.
- **DICOM.** Read with pydicom (value validation off and its warnings silenced: both quote
  values), refused when it cannot be read, has no pixel data, several frames, or is flagged
  BurnedInAnnotation = YES (unless `allow_burned_in`); de-identified (`deid.Deidentifier`)
  before its pixels are decoded. Intensities: the modality LUT (rescale slope and intercept),
  then the first VOI window ([centre − width/2, centre + width/2] → [0, 1]) when the file has
  one, else the image's own minimum and maximum; MONOCHROME1 is inverted; colour becomes
  luminance (ITU-R BT.601).
- **PNG and NPY.** 8- and 16-bit integers are divided by their type's maximum, floats within
  [0, 1] are kept, other values are scaled by the image's minimum and maximum; colour becomes
  luminance. NaN or infinite values are refused.
- **Size.** An image that is not `size` × `size` is padded to a square with its darkest
  value (the aspect ratio is kept) and resampled (scikit-image, anti-aliased); images of
  mixed sizes all end up at `size`.
- **Labels.** A CSV (or JSONL/Parquet) table with columns `file` and `label`; `file` is the
  image's path relative to the folder, or its bare name when that is unique. Every image needs
  exactly one row and every row an image. Labels become class indices; `classes` holds the
  values (integers when all labels are integers, else strings), sorted.
- **Metadata.** Only what identifies nobody: the image's position, its label, format,
  modality, photometric interpretation, bits stored, original rows and columns, the
  burned-in flag, a keyed pseudonym of the patient (`patient_key`: keeps a patient's images on
  one side of a split; the key is random per ingest) and how many attributes
  de-identification removed, emptied or replaced. File names are not in it: a name may carry
  a patient's name; `Ingested.sources` keeps them for local use only.

Every problem is one `InputError` line naming the file and what is wrong; none quotes a value
from a DICOM header.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthset.errors import InputError
from synthset.inputs.rows import columns, rows
from synthset.privacy.medical import missing_extra
from synthset.privacy.medical.deid import Deidentifier, burned_in, quiet_reading

try:
    import pydicom
    from pydicom import uid
    from pydicom.dataset import FileMetaDataset
    from pydicom.errors import InvalidDicomError
    from pydicom.multival import MultiValue
    from pydicom.pixels import apply_color_lut, apply_modality_lut
except ImportError as exc:  # pragma: no cover
    raise missing_extra("pydicom") from exc

log = logging.getLogger(__name__)

SUFFIXES = {".dcm": "dicom", ".dicom": "dicom", ".png": "png", ".npy": "npy"}
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
LUMA = np.array([0.299, 0.587, 0.114])
METADATA_COLUMNS = [
    "index",
    "label",
    "format",
    "modality",
    "photometric",
    "bits_stored",
    "original_rows",
    "original_columns",
    "burned_in_annotation",
    "patient_key",
    "deid_removed",
    "deid_emptied",
    "deid_replaced",
    "deid_uids",
    "deid_private",
]


@dataclass
class Ingested:
    """Images (N, size, size) float32 in [0, 1]; labels as class indices (None without a
    labels file) with their `classes`; `metadata`, one row per image, safe to publish;
    `sources`, the files' paths relative to the folder: local only, never to be published."""

    images: np.ndarray
    labels: np.ndarray | None
    classes: list[Any] | None
    metadata: pd.DataFrame
    sources: list[str] = field(repr=False)

    def __len__(self) -> int:
        return len(self.images)

    def summary(self) -> dict[str, Any]:
        """Counts for a report: images per format and per burned-in flag, attributes handled."""
        meta = self.metadata
        deid = {c.removeprefix("deid_"): int(meta[c].sum()) for c in METADATA_COLUMNS[-5:]}
        return {
            "images": len(self),
            "size": int(self.images.shape[-1]) if len(self) else None,
            "formats": meta["format"].value_counts().to_dict(),
            "classes": None if self.classes is None else [str(c) for c in self.classes],
            "per_class": None
            if self.labels is None
            else np.bincount(self.labels, minlength=len(self.classes)).tolist(),
            "burned_in_annotation": meta["burned_in_annotation"].value_counts().to_dict(),
            "patients": int(meta["patient_key"].nunique()),
            "deidentified_attributes": deid,
        }


def load_images(
    path: str | Path,
    size: int,
    labels_csv: str | Path | None = None,
    allow_burned_in: bool = False,
    key: bytes | None = None,
) -> Ingested:
    """Read, de-identify and resample every image under `path` (a folder, or one file)."""
    root = Path(path)
    if size < 8:
        raise InputError(str(root), f"size must be at least 8 pixels (got {size})")
    if not root.exists():
        raise InputError(str(root), "no such file or folder")
    skip = {Path(labels_csv).resolve()} if labels_csv is not None else set()
    found = find_images(root, skip)
    deidentify = Deidentifier(key=key, allow_burned_in=allow_burned_in)
    images, records, sources = [], [], []
    for index, (file, kind) in enumerate(found):
        name = file.relative_to(root).as_posix() if file != root else file.name
        shown = str(root / name) if file != root else str(root)
        if kind == "dicom":
            pixels, record = read_dicom(file, shown, deidentify)
        else:
            pixels, record = (read_png if kind == "png" else read_npy)(file, shown)
        record = {"index": index, "format": kind, **record}
        record["original_rows"], record["original_columns"] = pixels.shape
        images.append(resample(pixels, size))
        records.append(record)
        sources.append(name)
    labels = classes = None
    if labels_csv is not None:
        labels, classes = read_labels(Path(labels_csv), sources, str(root))
    metadata = pd.DataFrame.from_records(records).reindex(columns=METADATA_COLUMNS)
    metadata["label"] = None if classes is None else [classes[i] for i in labels]
    for column in METADATA_COLUMNS[-5:]:
        metadata[column] = metadata[column].fillna(0).astype("int64")
    log.info(
        "read %d images (%s) at %d×%d",
        len(images),
        metadata["format"].value_counts().to_dict(),
        size,
        size,
    )
    return Ingested(np.stack(images).astype(np.float32), labels, classes, metadata, sources)


def find_images(root: Path, skip: set[Path] | None = None) -> list[tuple[Path, str]]:
    """The image files under `root` and their kind (`dicom`, `png`, `npy`), sorted."""
    skip = skip or set()
    if root.is_file():
        kind = _kind(root)
        if kind is None:
            raise InputError(str(root), "not a DICOM, PNG or NPY image")
        return [(root, kind)]
    out = []
    for file in sorted(root.rglob("*")):
        relative = file.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or file.resolve() in skip:
            continue
        if file.is_file() and (kind := _kind(file)) is not None:
            out.append((file, kind))
    if not out:
        raise InputError(
            str(root),
            "no images found: expected DICOM files (.dcm, or a DICM preamble), .png or .npy files",
        )
    return out


def _kind(file: Path) -> str | None:
    kind = SUFFIXES.get(file.suffix.lower())
    if kind is None and not file.suffix:
        try:
            with file.open("rb") as stream:
                kind = "dicom" if stream.read(132)[128:] == b"DICM" else None
        except OSError:
            return None
    return kind


def _first_line(exc: BaseException) -> str:
    """The start of an exception's message: its first line, and the next when the first ends
    in a colon (pydicom lists the missing decoders there), cut at 200 characters."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0] + (f" {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else "")
    return text if len(text) <= 200 else text[:199] + "…"


# --- DICOM -----------------------------------------------------------------------------------


def read_dicom(file: Path, shown: str, deidentify: Deidentifier) -> tuple[np.ndarray, dict]:
    """One DICOM file: its pixels in [0, 1] (2-D) and its safe metadata, de-identified."""
    with quiet_reading():
        ds = _dcmread(file, shown)
        if not any(k in ds for k in PIXEL_KEYWORDS):
            raise InputError(shown, "DICOM file without pixel data (no PixelData element)")
        patient = deidentify.patient_key(ds)
        report = deidentify(ds, shown)
        frames = _int(ds.get("NumberOfFrames"), 1)
        if frames > 1:
            raise InputError(
                shown, f"{frames} frames: only single-frame images are read (one per file)"
            )
        pixels = _dicom_pixels(ds, shown)
    record = {
        "modality": _text(ds.get("Modality")),
        "photometric": _text(ds.get("PhotometricInterpretation")),
        "bits_stored": _int(ds.get("BitsStored"), None),
        "burned_in_annotation": _burned_in_label(ds),
        "patient_key": patient,
        **{f"deid_{k}": v for k, v in report.to_dict().items()},
    }
    return pixels, record


def _dcmread(file: Path, shown: str) -> Any:
    """The dataset of `file`; one without the DICM preamble is read as a bare dataset (old
    files) only when it holds elements of a DICOM header (group 0008)."""
    try:
        try:
            return pydicom.dcmread(file)
        except InvalidDicomError:
            ds = pydicom.dcmread(file, force=True)
            if len(ds.group_dataset(0x0008)):
                return _with_transfer_syntax(ds)
    except Exception as exc:
        raise InputError(shown, f"unreadable DICOM: {_first_line(exc)}") from None
    raise InputError(shown, "unreadable DICOM: no 'DICM' preamble and no DICOM header")


def _with_transfer_syntax(ds: Any) -> Any:
    """A bare dataset with the transfer syntax it was read in, so its pixels can be decoded."""
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = (
            uid.ImplicitVRLittleEndian
            if implicit
            else uid.ExplicitVRLittleEndian
            if little
            else uid.ExplicitVRBigEndian
        )
    ds.file_meta = meta
    return ds


def _dicom_pixels(ds: Any, shown: str) -> np.ndarray:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        raw = ds.pixel_array
    except Exception as exc:
        named = f" ({syntax.name})" if syntax is not None else ""
        message = f"pixel data cannot be decoded{named}: {_first_line(exc)}"
        raise InputError(shown, message) from None
    photometric = _text(ds.get("PhotometricInterpretation")) or ""
    if photometric == "PALETTE COLOR":
        raw = apply_color_lut(raw, ds)
    if raw.ndim == 3:
        return _scale_by_range(_luminance(raw, shown))
    if raw.ndim != 2:
        raise InputError(shown, f"pixel array of shape {raw.shape}: expected one 2-D image")
    values = apply_modality_lut(raw, ds).astype(np.float64)
    window = _window(ds)
    if window is not None:
        low, width = window
        image = np.clip((values - low) / width, 0, 1)
    else:
        image = _scale_by_range(values)
    return 1 - image if photometric == "MONOCHROME1" else image


def _window(ds: Any) -> tuple[float, float] | None:
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if centre is None or width is None:
        return None
    try:
        centre, width = (
            float(v[0] if isinstance(v, MultiValue | list) else v) for v in (centre, width)
        )
    except (TypeError, ValueError, IndexError):
        return None
    if not np.isfinite(centre) or not np.isfinite(width) or width <= 0:
        return None
    return centre - width / 2, width


def _text(value: Any) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value).strip()


def _int(value: Any, default: int | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _burned_in_label(ds: Any) -> str:
    flag = burned_in(ds)
    return "YES (allowed)" if flag == "YES" else flag


# --- PNG and NPY -----------------------------------------------------------------------------


def read_png(file: Path, shown: str) -> tuple[np.ndarray, dict]:
    """One PNG file as a 2-D image in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I;16L", "I", "F", "L", "1"):
                array = np.array(image)
            else:
                array = np.array(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(shown, f"unreadable PNG: {_first_line(exc)}") from None
    return _to_unit(array, shown), {}


def read_npy(file: Path, shown: str) -> tuple[np.ndarray, dict]:
    """One NPY file (H, W) or (H, W, 1|3|4) as a 2-D image in [0, 1]."""
    try:
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(shown, f"unreadable NPY: {_first_line(exc)}") from None
    if not isinstance(array, np.ndarray):
        raise InputError(shown, "unreadable NPY: not a single array")
    return _to_unit(array, shown), {}


def _to_unit(array: np.ndarray, shown: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        if array.shape[-1] == 1:
            array = array[..., 0]
        else:
            scale = np.iinfo(array.dtype).max if array.dtype.kind in "ui" else 1.0
            array = _luminance(array, shown) / scale
    if array.ndim != 2 or min(array.shape) < 1:
        raise InputError(
            shown, f"array of shape {array.shape}: expected one image, (H, W) or (H, W, 1|3|4)"
        )
    if array.dtype.kind == "b":
        return array.astype(np.float64)
    if array.dtype.kind not in "uif":
        raise InputError(shown, f"pixels of type {array.dtype}: expected integers or floats")
    if array.dtype in (np.uint8, np.uint16):
        return array.astype(np.float64) / np.iinfo(array.dtype).max
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise InputError(shown, "NaN or infinite pixel values")
    if values.min() >= 0 and values.max() <= 1:
        return values
    return _scale_by_range(values)


def _luminance(array: np.ndarray, shown: str) -> np.ndarray:
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise InputError(shown, f"colour pixels of shape {array.shape}: expected (H, W, 3|4)")
    return array[..., :3].astype(np.float64) @ LUMA


def _scale_by_range(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values, dtype=np.float64)
    return (values - low) / (high - low)


# --- size and labels -------------------------------------------------------------------------


def resample(image: np.ndarray, size: int) -> np.ndarray:
    """`image` padded to a square with its darkest value, then resampled to `size` × `size`."""
    if image.shape == (size, size):
        return image.astype(np.float32)
    from skimage.transform import resize

    rows, cols = image.shape
    side = max(rows, cols)
    top, left = (side - rows) // 2, (side - cols) // 2
    square = np.full((side, side), image.min(), np.float64)
    square[top : top + rows, left : left + cols] = image
    out = resize(square, (size, size), order=1, anti_aliasing=side > size, preserve_range=True)
    return np.clip(out, 0, 1).astype(np.float32)


def read_labels(table: Path, sources: list[str], folder: str) -> tuple[np.ndarray, list[Any]]:
    """Class indices of `sources` (paths relative to `folder`) from a labels table."""
    file = str(table)
    if not table.is_file():
        raise InputError(file, "labels file not found")
    names = columns(table, file)
    if table.suffix.lower() != ".jsonl" and not {"file", "label"} <= set(names):
        raise InputError(
            file, f"needs columns 'file' and 'label' (found: {', '.join(map(str, names))})"
        )
    given: dict[str, tuple[str, Any]] = {}
    for where, row in rows(table, file):
        name, label = row.get("file"), row.get("label")
        if name is None or str(name).strip() == "":
            raise InputError(file, "no file name", where=where, field="file")
        if label is None or (isinstance(label, float) and np.isnan(label)) or str(label) == "":
            raise InputError(file, "no label", where=where, field="label")
        name = str(name).strip().replace("\\", "/")
        if name in given:
            raise InputError(file, f"{name!r} is labelled twice", where=where, field="file")
        given[name] = (where, label)
    bare: dict[str, list[str]] = {}
    for source in sources:
        bare.setdefault(source.rsplit("/", 1)[-1], []).append(source)
    values, used = [], set()
    for source in sources:
        base = source.rsplit("/", 1)[-1]
        key = source if source in given else base if len(bare[base]) == 1 else None
        if key is None or key not in given:
            raise InputError(file, f"no label for image {source!r} (column 'file')")
        used.add(key)
        values.append(given[key][1])
    extra = [name for name in given if name not in used]
    if extra:
        where = given[extra[0]][0]
        raise InputError(
            file,
            f"{extra[0]!r} is not an image under {folder}"
            + (f" (and {len(extra) - 1} more rows)" if len(extra) > 1 else ""),
            where=where,
            field="file",
        )
    return _classes(values)


def _classes(values: list[Any]) -> tuple[np.ndarray, list[Any]]:
    try:
        numbers = [int(str(v).strip()) for v in values]
        if all(float(str(v).strip()) == n for v, n in zip(values, numbers, strict=True)):
            values = numbers
        else:
            values = [str(v).strip() for v in values]
    except ValueError:
        values = [str(v).strip() for v in values]
    classes = sorted(set(values))
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[v] for v in values], np.int64), classes
