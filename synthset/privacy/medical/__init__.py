"""Private medical images → synthetic images that may be shared.

`ingest` reads a folder of DICOM, PNG or NPY images (with an optional label CSV) into arrays
and metadata safe to publish, de-identifying every DICOM header on the way (`deid`: the DICOM
PS3.15 Basic Application Level Confidentiality Profile, private tags dropped, burned-in
annotations refused). `memorization` is the gate that rejects synthetic images too close to a
training image. `phantoms` makes demo and test data: randomized phantoms with and without a
lesion, written as DICOMs with fake PHI in every attribute of the profile.

The release: `config` (the YAML), `train` (a class-conditional `UNet2DModel` DDPM, plain or
Opacus DP-SGD in one privacy ledger, optional public pretraining, resumable checkpoints),
`generate` (through the `unet2d` generator kind), `utility` (TSTR vs TRTR), `report`,
`publish` and `release` (the steps; `synthset.flows.medical` wires them into a Prefect flow,
`cli` into `synthset medical`).

The modality builds on the shared privacy pieces (`synthset.privacy.gate`, `dp`, `report`,
`publish`, `release`), never on another modality. pydicom, scikit-image and dicom-anonymizer
come with the `medical` extra.
"""

from __future__ import annotations


def missing_extra(package: str) -> ImportError:
    """The ImportError raised when the `[medical]` extra is not installed."""
    return ImportError(
        f"{package} is needed for medical images; "
        "install the extra: pip install 'synthset[medical]'"
    )
