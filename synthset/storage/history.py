"""Earlier versions of a dataset as the registry knows them, wherever this run happens.

MLflow is the one list of versions. A version whose folder is under this run's datasets root
is read there; any other is fetched from its MLflow run: only `metadata.parquet` and `index/`
(hashes and the FAISS index; never images), into the cache, once per run id. A version that
cannot be fetched is named in the result, so that the run says it did not dedup against it.
"""

from __future__ import annotations

from pathlib import Path

from synthset.atomic import atomic_path
from synthset.curation.prior import Which, select_versions
from synthset.errors import DatasetNotFound
from synthset.layout import DatasetLayout, cache_dir
from synthset.storage.versioning import ARTIFACT_PATH, VersionInfo, _client, list_versions

FETCHED = ("metadata.parquet", "index")


def local_versions(layout: DatasetLayout, which: Which) -> dict[int, Path]:
    """The versions under `layout` on this disk (no registry), selected by `which`."""
    return {v: layout.version_dir(v) for v in select_versions(layout.versions(), which)}


def _fetch(info: VersionInfo, tracking_uri: str | None) -> Path:
    dest = cache_dir() / "history" / info.run_id
    if (dest / "metadata.parquet").is_file():
        return dest
    with atomic_path(dest, folder=True, keep_existing=True) as tmp:
        client = _client(tracking_uri)
        present = {Path(a.path).name for a in client.list_artifacts(info.run_id, ARTIFACT_PATH)}
        if "metadata.parquet" not in present:
            raise FileNotFoundError(f"run {info.run_id} has no {ARTIFACT_PATH}/metadata.parquet")
        for name in FETCHED:
            if name in present:
                client.download_artifacts(info.run_id, f"{ARTIFACT_PATH}/{name}", str(tmp))
    return dest


def earlier_versions(
    layout: DatasetLayout, which: Which, tracking_uri: str | None
) -> tuple[dict[int, Path], list[str]]:
    """{version: folder with its metadata and index} for the registry's versions selected by
    `which`, and one line per version that could not be read."""
    try:
        infos = {v.version: v for v in list_versions(layout.name, tracking_uri)}
    except DatasetNotFound:
        return {}, []
    folders, unreadable = {}, []
    for version in select_versions(list(infos), which):
        local = layout.version_dir(version)
        if (local / "metadata.parquet").is_file():
            folders[version] = local
            continue
        try:
            folders[version] = _fetch(infos[version], tracking_uri)
        except Exception as exc:
            unreadable.append(
                f"v{version}: cannot be read from the registry ({type(exc).__name__}: {exc}); "
                "this run does not dedup against it"
            )
    return folders, unreadable
