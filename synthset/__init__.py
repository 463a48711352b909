"""synthset: manifests of prompts → curated, versioned synthetic image datasets."""

from synthset.errors import DatasetNotFound, DigestMismatch, ManifestError, SynthsetError
from synthset.storage.pull import PulledDataset, pull

__version__ = "0.1.0"
__all__ = [
    "DatasetNotFound",
    "DigestMismatch",
    "ManifestError",
    "PulledDataset",
    "SynthsetError",
    "pull",
]
