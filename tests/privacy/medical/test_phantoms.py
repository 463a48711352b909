"""Demo and test data: phantoms with and without a lesion, and DICOM files of them carrying
fake PHI in every attribute of the de-identification profile."""

from __future__ import annotations

import csv

import numpy as np
import pydicom
import pytest

from synthset.privacy.medical import deid, phantoms


def test_phantoms_shape_range_labels_and_seeds():
    images, labels = phantoms.make_phantoms(40, 32, seed=0)
    assert images.shape == (40, 32, 32) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1 and labels.dtype == np.int64
    assert set(labels.tolist()) == {0, 1}
    again, again_labels = phantoms.make_phantoms(10, 32, seed=0)
    assert np.array_equal(again, images[:10]) and np.array_equal(again_labels, labels[:10])
    other, _ = phantoms.make_phantoms(10, 32, seed=1)
    assert np.abs(other - images[:10]).mean() > 0.05
    big, _ = phantoms.make_phantoms(2, 64, seed=0)
    assert big.shape == (2, 64, 64)
    assert all(img.std() > 0.05 for img in images)
    with pytest.raises(ValueError):
        phantoms.make_phantoms(2, 4)


def test_a_lesion_is_a_bright_spot_inside_the_body():
    """Same generator state, with and without the lesion: the difference is one small disc."""
    rng_a, rng_b = np.random.default_rng([7, 0]), np.random.default_rng([7, 0])
    rng_a.integers(2), rng_b.integers(2)
    with_lesion = phantoms._phantom(rng_a, 32, True)
    without = phantoms._phantom(rng_b, 32, False)
    diff = with_lesion - without
    changed = diff > 0.1
    assert 4 <= changed.sum() <= 40
    assert diff.min() > -0.1


def test_write_dicoms_plants_phi_everywhere(tmp_path, phantom_set):
    images, labels = phantom_set
    paths = phantoms.write_dicoms(tmp_path, images[:3], labels[:3], seed=2, burned_in=[0, 1, 0])
    assert [p.name for p in paths] == [f"phantom-{i:04d}.dcm" for i in range(3)]
    with (tmp_path / phantoms.LABELS_CSV).open() as stream:
        rows = list(csv.DictReader(stream))
    assert rows == [
        {"file": p.name, "label": str(int(v))} for p, v in zip(paths, labels[:3], strict=True)
    ]
    ds = pydicom.dcmread(paths[1])
    assert ds.BurnedInAnnotation == "YES" and pydicom.dcmread(paths[0]).BurnedInAnnotation == "NO"
    planted = [r for r in deid.profile_rules() if r.tag >> 16 not in (0x0000,)]
    missing = [
        r.name
        for r in planted
        if (0x50002500 if r.repeating and r.tag >> 16 == 0x5000 else r.tag)
        not in (ds.file_meta if r.tag >> 16 == 2 else ds)
    ]
    assert missing == []
    assert any(elem.tag.is_private for elem in ds.iterall())
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    values = phantoms.phi_values(3, seed=2)
    per_file = [set(phantoms._texts(phantoms.fake_header(i, seed=2))) for i in range(3)]
    assert len(per_file[0]) > 500 and set(values) == set.union(*per_file)
    found = set(deid.contains_phi(paths[2].read_bytes(), values))
    assert per_file[2] <= found
    tokens = {v for v in per_file[0] if v.startswith(("PHI", "FAM"))}
    assert len(tokens) > 250 and not found & tokens
    assert phantoms.phi_values(1, seed=3)[0] not in values
