"""Which version folder `synthset report` measures, and the version before it.

`NAME[@VERSION|@ALIAS]` is resolved by the registry; its folder is read under the datasets
folder when there, else pulled (verified) into the cache. Without a registry entry, the
datasets folder's own versions are used. A path to a version folder is taken as it is.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from synthset.errors import DatasetNotFound, SynthsetError
from synthset.layout import DatasetLayout
from synthset.quality.compare import previous_version


def _local(layout: DatasetLayout, ref: str | None) -> int:
    versions = layout.versions()
    if ref is None or ref == "latest":
        if not versions:
            raise DatasetNotFound(f"no dataset {layout.name!r} in the registry or {layout.root}")
        return versions[-1]
    if not re.fullmatch(r"v?\d+", ref) or int(ref.lstrip("v")) not in versions:
        known = ", ".join(f"v{v}" for v in versions) or "none"
        raise DatasetNotFound(f"{layout.name}@{ref} does not exist; versions here: {known}")
    return int(ref.lstrip("v"))


def locate(
    ref: str, datasets: Path, tracking_uri: str | None
) -> tuple[Path, Path | None, str | None]:
    """(version folder, previous version folder or None, why the previous one could not be
    read or None) for `ref`: a version folder, or `NAME[@VERSION|@ALIAS]`."""
    from synthset.storage.pull import pull
    from synthset.storage.versioning import parse_ref, resolve_version

    path = Path(ref).expanduser()
    registered = True
    if (path / "metadata.parquet").is_file():
        manifest = yaml.safe_load((path / "manifest.yaml").read_text()) or {}
        name, match = str(manifest.get("dataset", "")), re.fullmatch(r"v(\d+)", path.name)
        folder, number = path.resolve(), int(match.group(1)) if match else None
    elif path.exists():
        raise SynthsetError(f"{ref} is not a dataset version folder (no metadata.parquet)")
    else:
        name, version = parse_ref(ref)
        layout = DatasetLayout(datasets, name)
        try:
            number = resolve_version(name, version, tracking_uri).version
        except DatasetNotFound:
            if not layout.versions():
                raise
            number, registered = _local(layout, version), False
        folder = layout.version_dir(number)
        if not (folder / "metadata.parquet").is_file():
            folder = pull(name, number, tracking_uri=tracking_uri).path
    if not name or number is None:
        return folder, None, None
    if not registered:
        earlier = [v for v in DatasetLayout(datasets, name).versions() if v < number]
        return (
            folder,
            DatasetLayout(datasets, name).version_dir(earlier[-1]) if earlier else None,
            None,
        )
    try:
        found = previous_version(name, number, datasets, tracking_uri)
    except Exception as exc:
        return folder, None, f"The previous version cannot be read from the registry ({exc})."
    return folder, found[1] if found else None, None
