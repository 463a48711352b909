"""Ingest: DICOM, PNG and NPY folders with a labels table into arrays at one size and
metadata that names nobody; every bad input refused in one line naming the file."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from synthset.errors import InputError
from synthset.privacy.medical import deid, ingest, phantoms

DATA = Path(pydicom.data.__file__).parent / "test_files"


def _copy(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(DATA / name, folder / name)
    return folder


def test_phantom_dicoms_read_back_with_labels(dicom_folder, phantom_set):
    images, labels = phantom_set
    got = ingest.load_images(dicom_folder, 32, labels_csv=dicom_folder / "labels.csv")
    assert got.images.dtype == np.float32 and got.images.shape == images.shape
    assert np.abs(got.images - images).max() <= 0.5 / phantoms.STORED_MAX + 1e-6
    assert got.classes == [0, 1] and got.labels.tolist() == labels.tolist()
    assert got.sources == [f"phantom-{i:04d}.dcm" for i in range(len(images))]
    meta = got.metadata
    assert list(meta.columns) == ingest.METADATA_COLUMNS
    assert meta["modality"].eq("CT").all() and meta["burned_in_annotation"].eq("NO").all()
    assert meta["deid_removed"].gt(400).all() and meta["deid_private"].gt(0).all()
    assert meta["patient_key"].str.match(r"^P[0-9a-f]{12}$").all()
    assert meta["patient_key"].nunique() == len(images)
    summary = got.summary()
    assert summary["per_class"] == np.bincount(labels, minlength=2).tolist()


def test_no_phi_in_metadata_parquet_or_logs(dicom_folder, planted, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    got = ingest.load_images(dicom_folder, 16, labels_csv=dicom_folder / "labels.csv")
    got.metadata.to_parquet(tmp_path / "metadata.parquet")
    (tmp_path / "metadata.csv").write_text(got.metadata.to_csv())
    (tmp_path / "summary.txt").write_text(repr(got.summary()) + repr(got))
    (tmp_path / "run.log").write_text(caplog.text)
    assert deid.scan_for_phi(tmp_path, planted) == {}
    assert deid.contains_phi((dicom_folder / "phantom-0000.dcm").read_bytes(), planted)


def test_burned_in_file_refused_unless_allowed(tmp_path, phantom_set):
    images, labels = phantom_set
    phantoms.write_dicoms(tmp_path, images[:3], labels[:3], burned_in=[False, True, False])
    with pytest.raises(InputError) as caught:
        ingest.load_images(tmp_path, 32)
    message = str(caught.value)
    assert "phantom-0001.dcm: BurnedInAnnotation is YES" in message and "\n" not in message
    got = ingest.load_images(tmp_path, 32, allow_burned_in=True)
    assert got.metadata["burned_in_annotation"].tolist() == ["NO", "YES (allowed)", "NO"]


def test_pydicom_images_of_every_kind(tmp_path):
    names = [
        "CT_small.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_RLE.dcm",
        "JPEG2000.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "examples_palette.dcm",
        "ExplVR_BigEnd.dcm",
    ]
    got = ingest.load_images(_copy(tmp_path, *names), 24)
    assert got.images.shape == (len(names), 24, 24)
    assert got.images.min() >= 0 and got.images.max() <= 1
    assert all(img.std() > 0.01 for img in got.images)
    meta = got.metadata.set_index(np.array(got.sources))
    assert meta.loc["JPEG2000.dcm", ["original_rows", "original_columns"]].tolist() == [1024, 256]
    assert meta.loc["examples_palette.dcm", "photometric"] == "PALETTE COLOR"
    assert meta.loc["CT_small.dcm", "deid_private"] > 0


def test_mixed_formats_and_sizes_end_at_one_size(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 30), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 65536, (20, 20), dtype=np.uint16)).save(tmp_path / "b.png")
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.save(tmp_path / "d.npy", rng.random((32, 32)))
    np.save(tmp_path / "e.npy", np.linspace(-50, 200, 64 * 48).reshape(64, 48))
    (tmp_path / ".hidden.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("skipped")
    got = ingest.load_images(tmp_path, 32)
    assert got.sources == ["a.png", "b.png", "c.png", "d.npy", "e.npy"]
    assert got.images.shape == (5, 32, 32) and got.labels is None
    assert got.metadata["format"].tolist() == ["png"] * 3 + ["npy"] * 2
    assert got.metadata[["original_rows", "original_columns"]].values.tolist()[0] == [40, 30]
    assert np.array_equal(got.images[3], np.load(tmp_path / "d.npy").astype(np.float32))
    assert got.images[4].min() == 0 and got.images[4].max() == pytest.approx(1, abs=0.05)
    padded = got.images[0]
    assert padded[:, :3].max() <= padded.min() + 0.05


def test_labels_by_bare_name_in_subfolders_and_string_classes(tmp_path):
    for folder, value in (("x", 0.2), ("y", 0.8)):
        (tmp_path / "img" / folder).mkdir(parents=True)
        np.save(tmp_path / "img" / folder / f"{folder}1.npy", np.full((8, 8), value))
    np.save(tmp_path / "img" / "x" / "shared.npy", np.zeros((8, 8)))
    np.save(tmp_path / "img" / "y" / "shared.npy", np.ones((8, 8)))
    table = tmp_path / "labels.csv"
    table.write_text(
        "file,label\nx1.npy,tumour\ny1.npy,normal\nx/shared.npy,normal\ny/shared.npy,tumour\n"
    )
    got = ingest.load_images(tmp_path / "img", 8, labels_csv=table)
    assert got.sources == ["x/shared.npy", "x/x1.npy", "y/shared.npy", "y/y1.npy"]
    assert got.classes == ["normal", "tumour"]
    assert got.labels.tolist() == [0, 1, 1, 0]
    assert got.metadata["label"].tolist() == ["normal", "tumour", "tumour", "normal"]


def _bad_folder(tmp_path: Path, case: str) -> tuple[Path, Path | None]:
    folder = tmp_path / "in"
    folder.mkdir()
    labels = None
    ok = np.zeros((8, 8))
    if case == "garbage dicom":
        (folder / "scan.dcm").write_bytes(b"\x00" * 10 + b"not dicom at all")
    elif case == "no pixel data":
        _copy(folder, "rtplan.dcm")
    elif case == "truncated pixels":
        _copy(folder, "MR_truncated.dcm")
    elif case == "multi-frame":
        _copy(folder, "examples_ybr_color.dcm")
    elif case == "no decoder":
        _copy(folder, "JPEGLSNearLossless_08.dcm")
    elif case == "empty folder":
        (folder / "readme.txt").write_text("no images")
    elif case == "object npy":
        np.save(folder / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif case == "3-d npy":
        np.save(folder / "x.npy", np.zeros((2, 8, 8)))
    elif case == "nan npy":
        np.save(folder / "x.npy", np.full((8, 8), np.nan))
    elif case == "corrupt png":
        (folder / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    else:
        np.save(folder / "a.npy", ok)
        np.save(folder / "b.npy", ok)
        labels = tmp_path / "labels.csv"
        text = {
            "label missing a file": "file,label\na.npy,1\n",
            "label for no image": "file,label\na.npy,1\nb.npy,0\nc.npy,1\n",
            "labelled twice": "file,label\na.npy,1\na.npy,0\nb.npy,0\n",
            "no label column": "file,class\na.npy,1\nb.npy,0\n",
            "empty label": "file,label\na.npy,\nb.npy,0\n",
            "no labels file": None,
        }[case]
        if text is not None:
            labels.write_text(text)
    return folder, labels


BAD = {
    "garbage dicom": ("scan.dcm", "unreadable DICOM: no 'DICM' preamble"),
    "no pixel data": ("rtplan.dcm", "without pixel data"),
    "truncated pixels": ("MR_truncated.dcm", "pixel data cannot be decoded"),
    "multi-frame": ("examples_ybr_color.dcm", "30 frames"),
    "no decoder": ("JPEGLSNearLossless_08.dcm", "cannot be decoded (JPEG-LS"),
    "empty folder": ("in", "no images found"),
    "object npy": ("x.npy", "unreadable NPY"),
    "3-d npy": ("x.npy", "array of shape (2, 8, 8)"),
    "nan npy": ("x.npy", "NaN or infinite"),
    "corrupt png": ("x.png", "unreadable PNG"),
    "label missing a file": ("labels.csv", "no label for image 'b.npy'"),
    "label for no image": ("labels.csv", "'c.npy' is not an image under"),
    "labelled twice": ("labels.csv", "'a.npy' is labelled twice"),
    "no label column": ("labels.csv", "needs columns 'file' and 'label' (found: file, class)"),
    "empty label": ("labels.csv", "no label"),
    "no labels file": ("labels.csv", "labels file not found"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_naming_the_file(tmp_path, case):
    folder, labels = _bad_folder(tmp_path, case)
    file, problem = BAD[case]
    with pytest.raises(InputError) as caught:
        ingest.load_images(folder, 16, labels_csv=labels)
    message = str(caught.value)
    assert "\n" not in message and problem in message, message
    assert message.split(": ")[0].endswith(file), message


def test_monochrome1_is_inverted_and_no_window_means_min_max(tmp_path):
    image = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    ds = phantoms.phantom_dataset(image, 0)
    del ds.WindowCenter, ds.WindowWidth
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm", enforce_file_format=True)
    got = ingest.load_images(tmp_path, 8).images[0]
    assert np.allclose(got, 1 - image, atol=1e-3)


def test_dicom_without_preamble_is_read(tmp_path):
    ds = pydicom.dcmread(DATA / "MR_small.dcm")
    ds.preamble = None
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.save_as(tmp_path / "old.dcm", implicit_vr=True, little_endian=True)
    assert (tmp_path / "old.dcm").read_bytes()[128:132] != b"DICM"
    got = ingest.load_images(tmp_path, 16)
    assert got.metadata["format"].tolist() == ["dicom"] and got.images.std() > 0


def test_dicom_without_suffix_found_by_its_preamble(tmp_path):
    _copy(tmp_path, "MR_small.dcm")
    (tmp_path / "MR_small.dcm").rename(tmp_path / "IM0001")
    got = ingest.load_images(tmp_path, 16)
    assert got.sources == ["IM0001"] and got.metadata["format"].tolist() == ["dicom"]
