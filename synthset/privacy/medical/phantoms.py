"""Demo and test data: randomized phantoms, with or without a lesion, and DICOM files of them
that carry fake PHI in every attribute of the de-identification profile.

No pip package ships a medical image set, so the data is made. A third of the phantoms are
scikit-image's Shepp–Logan phantom with its regions' intensities jittered, rotated, scaled
and moved; the rest are random "tissue": a body ellipse with random organ ellipses inside.
Label 1 adds a lesion, a small bright disc inside the body; label 0 has none. Every image
is drawn from its own generator seeded by (seed, index), so `make_phantoms(10)` is the start
of `make_phantoms(20)`, and another seed gives genuinely different phantoms.

`write_dicoms` stores them as CT images (12-bit, rescaled, windowed so that ingest reads the
same values back) and plants a distinct fake value in every attribute of Table E.1-1 that a
file can hold (`fake_header`), in private tags, in a nested sequence and, on request, the
BurnedInAnnotation = YES flag. `phi_values` lists what was planted, for `deid.contains_phi`.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from synthset.privacy.medical import missing_extra
from synthset.privacy.medical.deid import profile_rules

try:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
except ImportError as exc:  # pragma: no cover
    raise missing_extra("pydicom") from exc

SHEPP_SHARE = 1 / 3
NOISE = 0.01
_SUPERSAMPLE = 4
STORED_MAX = 4095
INTERCEPT = -1024
PRIVATE_CREATOR = "SYNTHSET FAKE PHI"
LABELS_CSV = "labels.csv"


# --- images ----------------------------------------------------------------------------------


def make_phantoms(n: int, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` phantoms as float32 (n, size, size) in [0, 1] and their labels (int64 0/1: lesion)."""
    if n < 0 or size < 8:
        raise ValueError(f"need n >= 0 and size >= 8 (got n={n}, size={size})")
    images = np.zeros((n, size, size), np.float32)
    labels = np.zeros(n, np.int64)
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        labels[i] = rng.integers(2)
        images[i] = _phantom(rng, size, bool(labels[i]))
    return images, labels


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    fine = size * _SUPERSAMPLE
    axis = (np.arange(fine) + 0.5) / fine * 2 - 1
    return np.meshgrid(axis, axis)


def _ellipse(x, y, cx, cy, a, b, theta) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    u, v = (x - cx) * c + (y - cy) * s, -(x - cx) * s + (y - cy) * c
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def _phantom(rng: np.random.Generator, size: int, lesion: bool) -> np.ndarray:
    x, y = _grid(size)
    if rng.random() < SHEPP_SHARE:
        fine, body = _shepp(rng, size * _SUPERSAMPLE)
    else:
        fine, body = _tissue(rng, x, y)
    if lesion:
        inside = np.argwhere(body)
        cy, cx = inside[rng.integers(len(inside))]
        r = rng.uniform(0.12, 0.2)
        fine = fine + rng.uniform(0.35, 0.5) * _ellipse(x, y, x[0, cx], y[cy, 0], r, r, 0.0)
    image = fine.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))
    image = image + rng.normal(0, NOISE, image.shape)
    return np.clip(image, 0, 1).astype(np.float32)


def _tissue(rng: np.random.Generator, x, y) -> tuple[np.ndarray, np.ndarray]:
    bx, by = rng.uniform(-0.08, 0.08, 2)
    ba, bb, bt = rng.uniform(0.6, 0.85), rng.uniform(0.5, 0.8), rng.uniform(0, np.pi)
    body = _ellipse(x, y, bx, by, ba, bb, bt)
    image = rng.uniform(0.25, 0.45) * body
    for _ in range(rng.integers(3, 8)):
        radius, angle = 0.6 * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        cx, cy = bx + radius * ba * np.cos(angle), by + radius * bb * np.sin(angle)
        organ = _ellipse(x, y, cx, cy, *rng.uniform(0.08, 0.3, 2), rng.uniform(0, np.pi))
        image = image + rng.uniform(-0.2, 0.2) * (organ & body)
    core = _ellipse(x, y, bx, by, 0.6 * ba, 0.6 * bb, bt)
    return np.clip(image, 0, 1), core


@functools.cache
def _shepp_base(fine: int) -> np.ndarray:
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    return resize(shepp_logan_phantom(), (fine, fine), order=0, anti_aliasing=False)


def _shepp(rng: np.random.Generator, fine: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage.transform import AffineTransform, warp

    base = _shepp_base(fine)
    levels = np.unique(base)
    jittered = np.clip(levels + rng.uniform(-0.05, 0.05, len(levels)), 0, 1)
    jittered[levels == 0] = 0
    image = jittered[np.searchsorted(levels, base)]
    centre = np.array([fine, fine]) / 2
    scale = rng.uniform(0.75, 1.0)
    move = AffineTransform(translation=-centre)
    turn = AffineTransform(scale=scale, rotation=rng.uniform(-0.45, 0.45))
    back = AffineTransform(translation=centre + rng.uniform(-0.08, 0.08, 2) * fine)
    transform = move + turn + back
    image = warp(image, transform.inverse, order=0, preserve_range=True)
    body = warp((base > 0.15) & (base < 0.5), transform.inverse, order=0, preserve_range=True) > 0.5
    return image, body


# --- DICOM files with fake PHI ----------------------------------------------------------------

_REFERENCE_SEQUENCES = {"X/Z/U*"}
NESTED = "AnatomicRegionSequence"
"""A sequence the profile keeps: PHI is planted inside it to prove cleaning reaches depth."""


def _token(seed: int, index: int, what: str) -> str:
    digest = hashlib.sha256(f"{seed}:{index}:{what}".encode()).digest()
    return base64.b32encode(digest[:5]).decode()


def _number(seed: int, index: int, what: str) -> int:
    return int.from_bytes(hashlib.sha256(f"n:{seed}:{index}:{what}".encode()).digest()[:8])


def _vr(tag: int) -> str | None:
    try:
        vr = pydicom.datadict.dictionary_VR(tag)
    except KeyError:
        return None
    return vr.split(" or ")[0]


def fake_value(vr: str, seed: int, index: int, what: str):
    """A distinct, valid fake value of `vr` for attribute `what` of file `index`."""
    tok, h = _token(seed, index, what), _number(seed, index, what)
    date = f"{1920 + h % 90:04d}{1 + h // 90 % 12:02d}{1 + h // 1080 % 28:02d}"
    time = f"{h // 30240 % 24:02d}{h // 725760 % 60:02d}{h // 43545600 % 60:02d}"
    time += f".{100000 + h // 10**12 % 900000:06d}"
    if vr == "PN":
        return f"FAM{tok}^GIV{tok}"
    if vr in ("LO", "LT", "SH", "ST", "UC", "UT", "CS", "AE"):
        return f"PHI{tok}"
    if vr == "UR":
        return f"http://phi.invalid/{tok}"
    if vr == "DA":
        return date
    if vr == "TM":
        return time
    if vr == "DT":
        return date + time
    if vr == "UI":
        return generate_uid(entropy_srcs=[f"phi:{seed}:{index}:{what}"])
    if vr == "AS":
        return f"{18 + h % 80:03d}Y"
    if vr == "IS":
        return str(10**10 + h % (9 * 10**10))
    if vr == "DS":
        return f"{1000 + h % 9000}.{h // 9000 % 1000:03d}"
    if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
        return 1000 + h % 5000
    if vr in ("FL", "FD"):
        return 1000.5 + h % 5000
    if vr == "AT":
        return 0x00100010
    return f"PHI{tok}".encode().ljust(16, b"\0")


def _sequence(rule_action: str, seed: int, index: int, what: str) -> DicomSequence:
    item = Dataset()
    if rule_action in _REFERENCE_SEQUENCES:
        item.ReferencedSOPClassUID = CTImageStorage
        item.ReferencedSOPInstanceUID = fake_value("UI", seed, index, what + ".ref")
    else:
        item.CodeMeaning = fake_value("LO", seed, index, what + ".item")
    return DicomSequence([item])


def fake_header(index: int, seed: int = 0) -> Dataset:
    """A dataset with a fake value in every attribute of the profile a file can hold (the
    command group 0000 cannot), the 25 of DICOM 2026c that pydicom 3.0's dictionary does not
    know as UN bytes, one of each repeating group, private tags and PHI nested in a kept
    sequence."""
    ds = Dataset()
    for rule in profile_rules():
        tag = rule.tag
        if tag >> 16 in (0x0000, 0x0002):
            continue
        if rule.repeating:
            tag = {0x5000: 0x50002500}.get(rule.tag >> 16, rule.tag)
        vr = _vr(tag)
        what = f"{tag:08X}"
        if vr is None:
            ds.add_new(tag, "UN", fake_value("UN", seed, index, what))
        elif vr == "SQ":
            ds.add_new(tag, "SQ", _sequence(rule.action, seed, index, what))
        else:
            ds.add_new(tag, vr, fake_value(vr, seed, index, what))
    nested = Dataset()
    nested.PatientName = fake_value("PN", seed, index, "nested.name")
    nested.StudyDate = fake_value("DA", seed, index, "nested.date")
    nested.CodeMeaning = "kept"
    block = nested.private_block(0x0011, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", fake_value("LO", seed, index, "nested.private"))
    setattr(ds, NESTED, DicomSequence([nested]))
    block = ds.private_block(0x0009, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", fake_value("LO", seed, index, "private.text"))
    block.add_new(0x02, "OB", fake_value("OB", seed, index, "private.bytes"))
    inner = Dataset()
    inner.PatientName = fake_value("PN", seed, index, "private.sequence")
    block.add_new(0x03, "SQ", DicomSequence([inner]))
    return ds


_NOT_PHI = ("kept", PRIVATE_CREATOR, "1.2.840.10008.")
"""What `fake_header` writes that identifies nobody: the kept code meaning, the private
creator and the standard's own UIDs (SOP classes)."""


def _texts(ds: Dataset) -> list[str]:
    out = []
    for elem in ds.iterall():
        value = elem.value
        if elem.VR == "SQ" or value in (None, "", b""):
            continue
        if isinstance(value, bytes):
            value = value.rstrip(b"\0").decode("latin-1")
        if isinstance(value, str) and not value.startswith(_NOT_PHI):
            out.append(value)
    return out


def phi_values(n: int, seed: int = 0) -> list[str]:
    """Every text value `write_dicoms(..., seed=seed)` plants in its first `n` files (names,
    IDs, dates, times, UIDs, addresses, free text, private and nested values, the SOP
    instance UID of the file meta), for `deid.contains_phi`."""
    out = []
    for i in range(n):
        out += _texts(fake_header(i, seed))
    return list(dict.fromkeys(out))


def to_stored(image: np.ndarray) -> np.ndarray:
    """[0, 1] → the 12-bit stored values `write_dicoms` writes (ingest maps them back)."""
    return np.round(np.clip(image, 0, 1) * STORED_MAX).astype(np.uint16)


def phantom_dataset(image: np.ndarray, index: int, seed: int = 0, burned_in: bool = False):
    """One phantom as a CT image dataset (with file meta) carrying `fake_header`'s PHI."""
    ds = fake_header(index, seed)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BurnedInAnnotation = "YES" if burned_in else "NO"
    ds.PatientIdentityRemoved = "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = str(INTERCEPT), "1", "HU"
    ds.WindowCenter = f"{INTERCEPT + STORED_MAX / 2:g}"
    ds.WindowWidth = str(STORED_MAX)
    ds.PixelData = to_stored(image).tobytes()
    return ds


def write_dicoms(
    folder: str | Path,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    seed: int = 0,
    burned_in: bool | Sequence[bool] = False,
) -> list[Path]:
    """Write `images` as `phantom-NNNN.dcm` under `folder`, with `labels.csv` (file, label)
    beside them; `burned_in` flags all files, or those where it is true, BurnedInAnnotation =
    YES. Returns the DICOM paths in order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    flags = [burned_in] * len(images) if isinstance(burned_in, bool) else list(burned_in)
    if len(flags) != len(images) or len(labels) != len(images):
        raise ValueError("images, labels and burned_in must have one entry per image")
    paths = []
    for i, image in enumerate(images):
        path = folder / f"phantom-{i:04d}.dcm"
        phantom_dataset(image, i, seed, bool(flags[i])).save_as(path, enforce_file_format=True)
        paths.append(path)
    with (folder / LABELS_CSV).open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["file", "label"])
        writer.writerows((p.name, int(label)) for p, label in zip(paths, labels, strict=True))
    return paths
