"""Phantom DICOM folders with planted PHI, shared by the medical tests."""

from __future__ import annotations

import pytest

pytest.importorskip("pydicom")

from synthset.privacy.medical import phantoms  # noqa: E402

N_FILES = 6


@pytest.fixture(scope="session")
def phantom_set():
    """(images, labels) of the DICOM folder below: 6 phantoms at 32 px, seed 0."""
    return phantoms.make_phantoms(N_FILES, 32, seed=0)


@pytest.fixture(scope="session")
def dicom_folder(tmp_path_factory, phantom_set):
    """6 phantom DICOMs with fake PHI in every profile attribute and `labels.csv`."""
    folder = tmp_path_factory.mktemp("dicoms")
    images, labels = phantom_set
    phantoms.write_dicoms(folder, images, labels, seed=0)
    return folder


@pytest.fixture(scope="session")
def planted():
    """Every text value planted in the folder's files."""
    return phantoms.phi_values(N_FILES, seed=0)
